"""The cross-encoder (BERT_CAT, monoBERT): a query and a passage read together.

A cross-encoder (Nogueira & Cho, 2019) reads ``[CLS] q [SEP] p [SEP]`` and
outputs one relevance score. Every query-passage pair needs its own forward
pass, so nothing can be precomputed: it re-ranks a first stage's candidates.
Chapter 03 compares it with the bi-encoder of :mod:`minidr.models.bi_encoder`.

Example::

    ce = CrossEncoder.from_pretrained("data/models/bert-L4-H256") 
    ce.score([("what is bm25", "BM25 is a ranking function ...")])   # np.float32 (1,)
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.atomic import atomic_dir
from .encoder import Encoder
from .loading import fit_lengths, load_pretrained, read_settings, resolve_model_path

__all__ = ["CrossEncoder", "CROSS_CONFIG"]

CROSS_CONFIG = "minidr_crossencoder.json"


class CrossEncoder(Encoder):
    """BERT_CAT (monoBERT, Nogueira & Cho, 2019):
    ``[CLS] q [SEP] p [SEP]`` -> one score.

    Args:
        model: an ``AutoModelForSequenceClassification`` with one output
            (``num_labels=1``).
        tokenizer: its tokenizer.
        max_len: truncation length of the pair in tokens (the passage is cut first).

    Shapes:
        ``forward``: token tensors (B, L) -> (B,) scores (logits).
    """

    def __init__(self, model, tokenizer, max_len: int = 160):
        super().__init__()
        self.model, self.tokenizer, self.max_len = model, tokenizer, max_len

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike,
                        max_len: int | None = None) -> "CrossEncoder":
        """Load a cross-encoder (a folder from :meth:`save`, or a hub id such as
        ``cross-encoder/ms-marco-MiniLM-L-6-v2``), or start one from a plain BERT
        folder, which gets a fresh, untrained one-output head (with a warning)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model_path(name_or_path)
        saved = read_settings(Path(path) / CROSS_CONFIG)
        tokenizer = load_pretrained(AutoTokenizer, path)
        model, info = load_pretrained(AutoModelForSequenceClassification, path,
                                      num_labels=1, dtype=torch.float32,
                                      output_loading_info=True)
        if info["missing_keys"]:
            warnings.warn(f"{name_or_path}: new, untrained weights "
                          f"{sorted(info['missing_keys'])}: "
                          "train the cross-encoder before trusting its scores")
        length = max_len or saved.get("max_len", 160)
        if not saved:  # a plain backbone: never read past its pretrained positions
            length = fit_lengths(path, {"max_len": length}, {"max_len": max_len})[
                "max_len"]
        return cls(model, tokenizer, length)

    def tokenize(self, queries: Sequence[str], passages: Sequence[str],
                 max_len: int | None = None):
        """Padded ``BatchEncoding`` of the pairs: (B, L <= max_len) tensors,
        token_type_ids 0/1."""
        return self.tokenizer(list(queries), list(passages), padding=True,
                              truncation="longest_first",
                              max_length=max_len or self.max_len, return_tensors="pt")

    def forward(self, **tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token tensors -> (B,) relevance scores (logits), with gradients."""
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        return self.model(**tokens).logits.squeeze(-1)              # (B, 1) -> (B,)

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
              progress: bool = True) -> np.ndarray:
        """Score (query, passage) pairs without gradients: float32 (n,),
        in the input order."""
        pairs = list(pairs)
        out = np.empty(len(pairs), dtype=np.float32)                 # (n,)
        if pairs:
            features = self.tokenizer([q for q, _ in pairs], [p for _, p in pairs],
                                      truncation="longest_first",
                                      max_length=self.max_len)
            self._infer(features, lambda batch: self(**batch), out, batch_size,
                        progress, "cross-encode")
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model (safetensors), tokenizer and ``minidr_crossencoder.json``,
        atomically."""
        with atomic_dir(path) as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            (tmp / CROSS_CONFIG).write_text(
                json.dumps({"max_len": self.max_len}) + "\n")
        return Path(path)
