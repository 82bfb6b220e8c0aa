"""SPLADE: a text as a weighted bag of vocabulary terms, from BERT's MLM head.

BERT's masked-language-model head gives every position ``i`` of a text a
logit ``w_ij`` for every term ``j`` of its vocabulary: how well ``j`` would
fit there. SPLADE (Formal et al. 2021; max pooling as in SPLADE v2) turns
these into one weight per term for the whole text,

    w_j = max_i log(1 + relu(w_ij)),

saturated (the log), non-negative (the ReLU) and sparse: most terms get
exactly 0, and those that do not include terms absent from the text
(expansion). Query and passage are encoded the same way and scored by the
dot product of their term weights, which an inverted index computes
(:mod:`minidr.retrieval.impact`).

Example::

    splade = Splade.from_pretrained("data/models/splade-tiny")
    vectors = splade.encode(["what is a dense retriever"])   # (1, 30522) sparse
    splade.terms(vectors[0], top=5)                          # {'dense': 1.9, ...}

:class:`Splade` also speaks the training protocol of the bi-encoders
(``tokenize_queries`` / ``encode_query`` / ``score`` ...), so the book's
batches and losses train it (:mod:`minidr.methods.splade`).

Reference:
    Formal, Piwowarski & Clinchant (2021), SPLADE: Sparse Lexical and Expansion
    Model for First Stage Ranking, SIGIR. Formal et al. (2021), SPLADE v2,
    arXiv 2109.10086 (max pooling).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ..core.atomic import atomic_dir
from ..core.progress import progress_bar
from .encoder import Encoder, QueryPassageTokenizer, hash_parameters
from .loading import fit_lengths, load_pretrained, resolve_model_path

__all__ = ["splade_pool", "Splade", "SETTINGS_FILE"]

SETTINGS_FILE = "minidr_splade.json"        # the lengths, beside the weights


def splade_pool(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """SPLADE's term weights from MLM logits: ``max_i log(1 + relu(logit_ij))``
    over the text's real (unpadded) positions.

    Shapes:
        logits (B, L, V), attention_mask (B, L) -> (B, V).

    Example::

        >>> logits = torch.tensor([[[1.0, -2.0], [0.0, 3.0], [9.0, 9.0]]])
        >>> splade_pool(logits, torch.tensor([[1, 1, 0]]))   # position 3 is padding
        tensor([[0.6931, 1.3863]])
    """
    # log(1 + relu(x)) never decreases as x grows, so the max over positions can
    # be taken first, on the logits: the same weights, one pass over (B, L, V)
    pads = attention_mask.unsqueeze(-1) == 0                              # (B, L, 1)
    best = logits.masked_fill(pads, float("-inf")).max(dim=1).values      # (B, V)
    return torch.log1p(torch.relu(best))                                  # (B, V)


class Splade(QueryPassageTokenizer, Encoder):
    """A SPLADE encoder: a ``BertForMaskedLM`` and its tokenizer.

    Args:
        mlm: a masked-language model (its head scores the whole vocabulary).
        tokenizer: its tokenizer.
        max_length: tokens kept per passage (and per text in :meth:`encode`).
        max_query_len: tokens kept per query in training batches
            (:meth:`tokenize_queries`); ``None``: ``max_length``.

    Shapes:
        ``encode_query`` / ``encode_passage``: (B, L) -> (B, V) term weights;
        ``score``: (Bq, V), (Bp, V) -> (Bq, Bp).
    """

    def __init__(self, mlm, tokenizer, max_length: int = 256,
                 max_query_len: int | None = None):
        super().__init__()
        self.mlm, self.tokenizer, self.max_length = mlm, tokenizer, max_length
        self.max_query_len = max_length if max_query_len is None else max_query_len
        vocab = tokenizer.get_vocab()
        self.vocabulary = [""] * len(vocab)                 # term id -> term
        for term, i in vocab.items():
            self.vocabulary[i] = term

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike,
                        max_length: int | None = None,
                        max_query_len: int | None = None) -> "Splade":
        """Load a SPLADE model (e.g. ``data/models/splade-tiny`` or, in Colab,
        ``naver/splade-cocondenser-ensembledistil``), or start one from any
        masked-language model (e.g. ``data/models/bert-L2-H128``), in float32.

        Lengths left at ``None`` take the values saved by :meth:`save`, else
        256 tokens (a backbone of ours pretrained at fewer tokens caps them at
        its pretrained length, as :class:`~minidr.models.bi_encoder.BiEncoder`
        does).
        """
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        path = resolve_model_path(name_or_path)
        settings = Path(path) / SETTINGS_FILE
        saved = json.loads(settings.read_text()) if settings.exists() else {}
        given = {"max_length": max_length, "max_query_len": max_query_len}
        lengths = {"max_length": 256, **saved,
                   **{k: v for k, v in given.items() if v is not None}}
        lengths.setdefault("max_query_len", lengths["max_length"])
        if not saved:
            lengths = fit_lengths(path, lengths, given)
        mlm = load_pretrained(AutoModelForMaskedLM, path, dtype=torch.float32)
        return cls(mlm, load_pretrained(AutoTokenizer, path), **lengths)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the MLM (safetensors), the tokenizer and the lengths,
        atomically; :meth:`from_pretrained` reads them back."""
        with atomic_dir(path) as tmp:
            self.mlm.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            (tmp / SETTINGS_FILE).write_text(json.dumps(
                {"max_length": self.max_length,
                 "max_query_len": self.max_query_len}, indent=2) + "\n")
        return Path(path)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """Term weights of a batch of token ids.

        Shapes:
            input_ids, attention_mask (B, L) -> (B, V).
        """
        logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask).logits
        return splade_pool(logits, attention_mask)                        # (B, V)

    # -- training: the protocol of the book's losses (tensors in, tensors out) --------
    # (tokenize_queries / tokenize_passages: QueryPassageTokenizer)
    @property
    def max_passage_len(self) -> int:
        """Tokens kept per passage: ``max_length``."""
        return self.max_length

    def _weights(self, tokens) -> torch.Tensor:
        return self(tokens["input_ids"].to(self.device),
                    tokens["attention_mask"].to(self.device))            # (B, V)

    def encode_query(self, **tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token tensors -> (B, V) term weights, with gradients."""
        return self._weights(tokens)

    def encode_passage(self, **tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token tensors -> (B, V) term weights, with gradients."""
        return self._weights(tokens)

    def score(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Dot products of term weights: q (Bq, V), p (Bp, V) -> (Bq, Bp)."""
        return q @ p.T

    # -- inference: texts in, sparse matrices out -----------------------------------
    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32,
               progress: bool = True) -> sp.csr_matrix:
        """Term weights of ``texts``, without gradients, as a sparse matrix.

        Texts are sorted by length and batched, so each batch pads only to its
        own longest text; rows come back in the input order.

        Shapes:
            returns float32 CSR (n, V).
        """
        was_training = self.training
        self.eval()
        texts = list(texts)
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = ids["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")
        device = self.device
        batches = []                                    # in length order
        for start in progress_bar(range(0, len(texts), batch_size), desc="SPLADE",
                                  unit="batch", disable=not progress):
            chosen = order[start:start + batch_size]
            width = max(len(ids[i]) for i in chosen)
            input_ids = torch.zeros((len(chosen), width), dtype=torch.long)   # (b, L)
            mask = torch.zeros_like(input_ids)
            for row, i in enumerate(chosen):
                input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                mask[row, :len(ids[i])] = 1
            weights = self(input_ids.to(device), mask.to(device)).float().cpu()
            batches.append(sp.csr_matrix(weights.numpy()))                # (b, V)
        if was_training:
            self.train()
        if not batches:
            return sp.csr_matrix((0, len(self.vocabulary)), dtype=np.float32)
        # back to the input order: row k of the stack is text order[k]
        stacked = sp.vstack(batches, format="csr")
        return stacked[np.argsort(order)].astype(np.float32)

    def fingerprint(self) -> str:
        """Short sha256 of ``max_length``, the vocabulary and every parameter:
        a cache key for encoded corpora and indexes."""
        h = hashlib.sha256(f"splade:max_length={self.max_length}".encode())
        h.update(json.dumps(self.vocabulary).encode())
        hash_parameters(h, self)
        return h.hexdigest()[:16]

    def terms(self, vector: sp.csr_matrix, top: int | None = None) -> dict[str, float]:
        """One row of :meth:`encode` as ``term -> weight``, largest first."""
        row = sp.csr_matrix(vector)
        pairs = sorted(zip(row.indices, row.data), key=lambda x: (-x[1], x[0]))
        return {self.vocabulary[j]: float(w) for j, w in pairs[:top]}
