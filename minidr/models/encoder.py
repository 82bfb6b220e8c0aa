"""What every encoder provides: the :class:`Encoder` base and the retrieval protocol.

Two kinds of model score a query against a passage in this book:

* a **bi-encoder** (:class:`~minidr.models.bi_encoder.BiEncoder`; later
  multi-vector and sparse encoders) encodes each side *separately*, so
  passages are encoded once and indexed; it satisfies :class:`RetrievalEncoder`;
* a **cross-encoder** (:class:`~minidr.models.cross_encoder.CrossEncoder`) reads
  the pair together and can only re-rank.

Both derive from :class:`Encoder`, which gives a device and batched,
length-sorted inference. The training losses and the search code talk to a
:class:`RetrievalEncoder` only: ``tokenize_queries`` / ``tokenize_passages``
(texts -> padded token tensors), ``encode_query`` / ``encode_passage`` (tokens ->
representations, with gradients), ``score`` (all queries against all passages),
``encode_queries`` / ``encode_passages`` (texts -> numpy, for indexing) and
``save``. A ColBERT (one vector per token, MaxSim ``score``) or a SPLADE
(vocabulary-sized sparse vectors, dot-product ``score``) plugs into the same
losses by implementing the same seven methods.

Reference:
    Gao et al. (2023), Tevatron: An Efficient and Flexible Toolkit for Neural
    Retrieval, SIGIR (its ``EncoderModel``, which subclasses fill in).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from ..core.progress import progress_bar

__all__ = ["Encoder", "QueryPassageTokenizer", "RetrievalEncoder", "pool", "pad_rows",
           "hash_parameters", "POOLINGS"]

POOLINGS = ("cls", "mean")


@runtime_checkable
class RetrievalEncoder(Protocol):
    """What losses, negative miners and search code need from a first-stage encoder.

    Shapes:
        ``tokenize_*``: B texts -> token tensors (B, L);
        ``encode_query`` / ``encode_passage``: (B, L) -> (B, ...) representations;
        ``score``: (Bq, ...), (Bp, ...) -> (Bq, Bp);
        ``encode_queries`` / ``encode_passages``: n texts -> float32 numpy (n, ...).
    """

    def tokenize_queries(self, texts: Sequence[str]): ...
    def tokenize_passages(self, texts: Sequence[str]): ...
    def encode_query(self, **tokens: torch.Tensor) -> torch.Tensor: ...
    def encode_passage(self, **tokens: torch.Tensor) -> torch.Tensor: ...
    def score(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor: ...
    def encode_queries(self, texts: Sequence[str], batch_size: int = ...,
                       progress: bool = ...) -> np.ndarray: ...
    def encode_passages(self, texts: Sequence[str], batch_size: int = ...,
                        progress: bool = ...) -> np.ndarray: ...
    def save(self, path: str | os.PathLike) -> Path: ...


def hash_parameters(h, module: torch.nn.Module) -> None:
    """Feed every parameter of ``module`` (name, dtype, shape, bytes) to the
    hash ``h`` (e.g. ``hashlib.sha256()``): the model half of a cache key."""
    for name, p in module.named_parameters():
        h.update(f"{name}:{p.dtype}:{tuple(p.shape)}".encode())
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def pad_rows(rows: list[list[int]], value: int) -> torch.Tensor:
    """Right-pad lists of ids into a (b, longest row) int64 tensor."""
    arr = np.full((len(rows), max(map(len, rows))), value, dtype=np.int64)
    for r, row in enumerate(rows):
        arr[r, :len(row)] = row
    return torch.from_numpy(arr)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor,
         pooling: str) -> torch.Tensor:
    """One vector per text from the token vectors.

    Args:
        hidden: (B, L, H) last hidden states.
        attention_mask: (B, L), 1 for real tokens, 0 for padding.
        pooling: ``"cls"`` (the first token's vector, DPR) or ``"mean"`` (the mean
            over real tokens, Sentence-BERT; padding is excluded).

    Returns:
        (B, H).
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")


class QueryPassageTokenizer:
    """``tokenize_queries`` / ``tokenize_passages`` for a model that encodes the
    two sides apart (a bi-encoder, SPLADE): it provides ``tokenizer``,
    ``max_query_len`` and ``max_passage_len``."""

    def _tokenize(self, texts: Sequence[str], max_len: int):
        return self.tokenizer(list(texts), padding=True, truncation=True,
                              max_length=max_len, return_tensors="pt")

    def tokenize_queries(self, texts: Sequence[str]):
        """Padded, truncated ``BatchEncoding`` of (B, L <= max_query_len) tensors."""
        return self._tokenize(texts, self.max_query_len)

    def tokenize_passages(self, texts: Sequence[str]):
        """Padded, truncated ``BatchEncoding`` of (B, L <= max_passage_len) tensors."""
        return self._tokenize(texts, self.max_passage_len)


class Encoder(torch.nn.Module):
    """What both model kinds share: a device and batched, length-sorted inference."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.inference_mode()
    def _infer(self, features, forward, out: np.ndarray, batch_size: int,
               progress: bool, desc: str) -> np.ndarray:
        """Fill ``out`` (rows in input order) with ``forward(batch)``, in eval mode.

        ``features`` is a tokenizer's unpadded output (one list of ids per text). Rows
        are sorted by token length, so a batch pads only to its own longest row;
        longest first, so a batch too big for memory fails at once.
        """
        lengths = np.array([len(ids) for ids in features["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        was_training = self.training
        self.eval()                                                   # no dropout
        try:
            with progress_bar(total=len(out), desc=desc, unit="text",
                              disable=not progress) as bar:
                for start in range(0, len(order), batch_size):
                    idx = order[start:start + batch_size]
                    batch = {k: pad_rows([rows[i] for i in idx],
                                         self.tokenizer.pad_token_id
                                         if k == "input_ids" else 0)
                             for k, rows in features.items()}
                    # batch (b, L) -> (b, ...)
                    out[idx] = forward(batch).float().cpu().numpy()
                    bar.update(len(idx))
        finally:
            self.train(was_training)
        return out
