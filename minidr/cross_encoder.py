"""The cross-encoder (BERT_CAT, monoBERT): a query and a passage read together.

A cross-encoder (Nogueira & Cho, 2019) reads ``[CLS] q [SEP] p [SEP]`` and
outputs one relevance score. Every query-passage pair needs its own forward
pass, so nothing can be precomputed: it re-ranks a first stage's candidates.
Chapter 03 compares it with the bi-encoder of :mod:`minidr.models`.

Example::

    >>> ce = CrossEncoder.from_pretrained("data/models/bert-L4-H256")   # doctest: +SKIP
    >>> ce.score([("what is bm25", "BM25 is a ranking function ...")])   # np.float32 (1,)
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .atomic import atomic_dir
from .models import _Encoder, _load, _read_json, resolve_model_path

__all__ = ["CrossEncoder", "CROSS_CONFIG", "cross_encoder_loss", "train_cross_encoder", "rerank"]

CROSS_CONFIG = "minidr_crossencoder.json"


class CrossEncoder(_Encoder):
    """BERT_CAT (monoBERT, Nogueira & Cho, 2019): ``[CLS] q [SEP] p [SEP]`` -> one score.

    Args:
        model: an ``AutoModelForSequenceClassification`` with one output (``num_labels=1``).
        tokenizer: its tokenizer.
        max_len: truncation length of the pair in tokens (the passage is cut first).

    Shapes:
        ``forward``: token tensors (B, L) -> (B,) scores (logits).
    """

    def __init__(self, model, tokenizer, max_len: int = 160):
        super().__init__()
        self.model, self.tokenizer, self.max_len = model, tokenizer, max_len

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, max_len: int | None = None) -> "CrossEncoder":
        """Load a cross-encoder (a folder from :meth:`save`, or a hub id such as
        ``cross-encoder/ms-marco-MiniLM-L-6-v2``), or start one from a plain BERT
        folder, which gets a fresh, untrained one-output head (with a warning)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model_path(name_or_path)
        saved = _read_json(Path(path) / CROSS_CONFIG)
        tokenizer = _load(AutoTokenizer, path)
        model, info = _load(AutoModelForSequenceClassification, path, num_labels=1,
                            dtype=torch.float32, output_loading_info=True)
        if info["missing_keys"]:
            warnings.warn(f"{name_or_path}: new, untrained weights {sorted(info['missing_keys'])}: "
                          "train the cross-encoder before trusting its scores")
        return cls(model, tokenizer, max_len or saved.get("max_len", 160))

    def tokenize(self, queries: Sequence[str], passages: Sequence[str], max_len: int | None = None):
        """Padded ``BatchEncoding`` of the pairs: (B, L <= max_len) tensors, token_type_ids 0/1."""
        return self.tokenizer(list(queries), list(passages), padding=True, truncation="longest_first",
                              max_length=max_len or self.max_len, return_tensors="pt")

    def forward(self, **tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token tensors -> (B,) relevance scores (logits), with gradients."""
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        return self.model(**tokens).logits.squeeze(-1)              # (B, 1) -> (B,)

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
              progress: bool = True) -> np.ndarray:
        """Score (query, passage) pairs without gradients: float32 (n,), in the input order."""
        pairs = list(pairs)
        out = np.empty(len(pairs), dtype=np.float32)                 # (n,)
        if pairs:
            features = self.tokenizer([q for q, _ in pairs], [p for _, p in pairs],
                                      truncation="longest_first", max_length=self.max_len)
            self._infer(features, lambda batch: self(**batch), out, batch_size, progress, "cross-encode")
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model (safetensors), tokenizer and ``minidr_crossencoder.json``, atomically."""
        with atomic_dir(path) as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            (tmp / CROSS_CONFIG).write_text(json.dumps({"max_len": self.max_len}) + "\n")
        return Path(path)


# -- training and re-ranking -------------------------------------------------------------------

def cross_encoder_loss(model: CrossEncoder, batch: dict):
    """Softmax cross-entropy over each query's group [positive, negatives...] (LCE).

    Shapes:
        pairs (B*G, L) -> scores (B*G,) -> (B, G), the positive in column 0.

    Reference:
        Gao, Dai & Callan (2021), Rethink Training of BERT Rerankers in Multi-Stage
        Retrieval Pipeline (localized contrastive estimation), ECIR.
    """
    from .losses import info_nce

    scores = model(**batch["pairs"]).view(-1, batch["group"])                # (B, G)
    targets = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)  # (B,)
    return info_nce(scores, targets)


def train_cross_encoder(model: CrossEncoder, examples, corpus, negatives: dict[str, list[str]],
                        steps: int, batch_size: int = 16, n_neg: int = 3, lr: float = 3e-5,
                        seed: int = 0, cost=None, checkpoint_dir: str | None = None,
                        device: str | None = None):
    """Train a cross-encoder on (query, positive, ``n_neg`` negatives) groups; returns the trainer.

    The groups are sampled exactly as DPR's batches (:class:`~minidr.dpr.DPRBatches`),
    so both sides of chapter 03 see the same queries, positives and negatives.
    """
    from .cost import CostMeter
    from .dpr import DPRBatches
    from .train import TrainConfig, Trainer

    if not negatives:
        raise ValueError("a cross-encoder needs negatives to contrast with (e.g. BM25 negatives)")
    sampler = DPRBatches(None, examples, corpus, batch_size, negatives, n_neg, seed)
    cost = cost or CostMeter()
    group = 1 + n_neg

    def make_batch(i: int) -> dict:
        queries, passages = sampler.texts(i)
        return {"pairs": model.tokenize([q for q in queries for _ in range(group)], passages),
                "group": group}

    def compute_loss(m, batch):
        cost.add(pairs_scored=batch["pairs"]["input_ids"].shape[0])
        return cross_encoder_loss(m, batch)

    config = TrainConfig(steps=steps, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
                         checkpoint_every=max(steps // 5, 50) if checkpoint_dir else 0, device=device)
    trainer = Trainer(model, compute_loss, make_batch, config, cost=cost)
    trainer.fit()
    return trainer


def rerank(model: CrossEncoder, run: dict[str, dict[str, float]], queries: dict[str, str],
           corpus: dict[str, str], depth: int = 100, batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Re-score the top-``depth`` passages of each query of ``run`` with the cross-encoder.

    Returns:
        A run over the same (at most ``depth``) passages per query, with cross-encoder scores.
    """
    from .formats import rank

    top = rank(run, depth)
    pairs = [(qid, pid) for qid, pids in top.items() if qid in queries for pid in pids]
    scores = model.score([(queries[q], corpus[p]) for q, p in pairs], batch_size=batch_size)
    out: dict[str, dict[str, float]] = {}
    for (qid, pid), s in zip(pairs, scores):
        out.setdefault(qid, {})[pid] = float(s)
    return out
