"""Bi-encoders (BERT_DOT) and cross-encoders (BERT_CAT) over Hugging Face backbones.

A **bi-encoder** (DPR, Karpukhin et al., 2020; Tevatron's ``EncoderModel``)
encodes query and passage *separately* into one vector each, scored by a dot
product or cosine: passages are encoded once and indexed. A **cross-encoder**
(monoBERT, Nogueira & Cho, 2019) reads ``[CLS] q [SEP] p [SEP]`` and outputs one
score: better, but nothing can be precomputed, so it re-ranks a first stage; it
lives in :mod:`minidr.models.cross_encoder` and shares this module's loading and
batched-inference helpers.

Training code calls ``encode_query`` / ``encode_passage`` (with gradients);
evaluation code calls ``encode_queries`` / ``encode_passages`` (texts in,
float32 numpy out, batched by length, no gradients).

Example::

    model = BiEncoder.from_pretrained("data/models/bert-L4-H256", pooling="cls")
    q = model.encode_query(**model.tokenize_queries(["what is a dense retriever"]))
    p = model.encode_passage(**model.tokenize_passages(passages))
    scores = model.score(q, p)    # q (1, H), p (B, H) -> scores (1, B)
    emb = model.encode_passages(list(corpus.values()))  # np.float32 (n, H), input order
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.atomic import atomic_dir
from .encoder import POOLINGS, Encoder, QueryPassageTokenizer, hash_parameters, pool
from .loading import (fit_lengths, load_backbone, quiet_transformers,
                      read_settings, resolve_model_path)

__all__ = ["BiEncoder", "SIMILARITIES", "BI_CONFIG"]

SIMILARITIES = ("dot", "cos")
BI_CONFIG = "minidr_biencoder.json"


class BiEncoder(QueryPassageTokenizer, Encoder):
    """A query tower and a passage tower (one shared module by default),
    pooling and similarity.

    Args:
        query_encoder: a Hugging Face encoder (``AutoModel``).
        tokenizer: its tokenizer.
        passage_encoder: a second encoder for passages; ``None`` shares
            ``query_encoder`` (Siamese, as in DPR's shared variant, Tevatron's default
            and Sentence-BERT).
        pooling: ``"cls"`` or ``"mean"`` (see :func:`pool`).
        similarity: ``"dot"`` (inner product, DPR) or ``"cos"`` (embeddings are
            L2-normalised; pair it with a temperature in the loss).
        max_query_len, max_passage_len: truncation lengths in tokens.

    Shapes:
        ``encode_query``/``encode_passage``: token tensors (B, L) -> (B, H).
        ``score``: (Bq, H), (Bp, H) -> (Bq, Bp).
    """

    def __init__(self, query_encoder, tokenizer, passage_encoder=None,
                 pooling: str = "cls", similarity: str = "dot",
                 max_query_len: int = 32, max_passage_len: int = 128):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; "
                             f"choose one of {SIMILARITIES}")
        self.query_encoder = query_encoder
        self.passage_encoder = (query_encoder if passage_encoder is None
                                else passage_encoder)
        self.tokenizer = tokenizer
        self.pooling, self.similarity = pooling, similarity
        self.max_query_len, self.max_passage_len = max_query_len, max_passage_len
        self.name_or_path = getattr(query_encoder, "name_or_path", "")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike,
                        shared: bool | None = None, pooling: str | None = None,
                        similarity: str | None = None, max_query_len: int | None = None,
                        max_passage_len: int | None = None) -> "BiEncoder":
        """A bi-encoder from a backbone (folder or hub id) or from a folder written by
        :meth:`save`.

        Arguments left at ``None`` take the saved value (for a folder written by
        :meth:`save`), else the defaults: shared towers, ``cls`` pooling, ``dot``
        similarity, 32 / 128 tokens. ``shared=False`` on a backbone starts both
        towers from the same weights (DPR's initialisation). A backbone of ours
        pretrained at fewer tokens caps the default lengths at its pretrained
        length, and refuses explicit longer ones
        (:func:`~minidr.models.loading.fit_lengths`).
        """
        path = resolve_model_path(name_or_path)
        saved = read_settings(Path(path) / BI_CONFIG)
        given = dict(shared=shared, pooling=pooling, similarity=similarity,
                     max_query_len=max_query_len, max_passage_len=max_passage_len)
        cfg = {"shared": True, "pooling": "cls", "similarity": "dot",
               "max_query_len": 32, "max_passage_len": 128,
               **{k: v for k, v in saved.items() if k in given},
               **{k: v for k, v in given.items() if v is not None}}
        if not saved:  # a plain backbone: never read past its pretrained positions
            lens = ("max_query_len", "max_passage_len")
            cfg.update(fit_lengths(path, {k: cfg[k] for k in lens},
                                   {k: given[k] for k in lens}))
        if saved and not saved["shared"]:
            if cfg["shared"]:
                raise ValueError(f"{name_or_path} has separate query and passage "
                                 "towers; it cannot be loaded with shared=True")
            q_enc, tokenizer = load_backbone(Path(path) / "query")
            p_enc, _ = load_backbone(Path(path) / "passage")
        else:
            q_enc, tokenizer = load_backbone(path)
            p_enc = None if cfg["shared"] else copy.deepcopy(q_enc)
        model = cls(q_enc, tokenizer, p_enc,
                    **{k: v for k, v in cfg.items() if k != "shared"})
        model.name_or_path = saved.get("base", str(name_or_path))
        return model

    # -- properties --------------------------------------------------------------------
    @property
    def shared(self) -> bool:
        """True when queries and passages go through the same module."""
        return self.passage_encoder is self.query_encoder

    @property
    def dim(self) -> int:
        """Embedding size H."""
        return self.passage_encoder.config.hidden_size

    @property
    def settings(self) -> dict:
        """What, besides the weights, decides the embeddings
        (saved in ``minidr_biencoder.json``)."""
        return {"pooling": self.pooling, "similarity": self.similarity,
                "shared": self.shared, "max_query_len": self.max_query_len,
                "max_passage_len": self.max_passage_len}

    # -- training: tensors in, tensors out, with gradients -----------------------------
    # (tokenize_queries / tokenize_passages: QueryPassageTokenizer)
    def _embed(self, encoder, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        hidden = encoder(**tokens).last_hidden_state                   # (B, L, H)
        emb = pool(hidden, tokens["attention_mask"], self.pooling)     # (B, H)
        return F.normalize(emb, dim=-1) if self.similarity == "cos" else emb

    def encode_query(self, **tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token tensors -> (B, H) query embeddings
        (unit length under ``cos``)."""
        return self._embed(self.query_encoder, tokens)

    def encode_passage(self, **tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token tensors -> (B, H) passage embeddings
        (unit length under ``cos``)."""
        return self._embed(self.passage_encoder, tokens)

    def score(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Similarity matrix: q (Bq, H), p (Bp, H) -> (Bq, Bp);
        cosine re-normalises (idempotent)."""
        if self.similarity == "cos":
            q, p = F.normalize(q, dim=-1), F.normalize(p, dim=-1)
        return q @ p.T

    # -- inference: texts in, float32 numpy out ----------------------------------------
    def _encode_texts(self, texts: Sequence[str], encoder, max_len: int,
                      batch_size: int, progress: bool, desc: str) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)     # (n, H)
        if texts:
            # unpadded
            features = self.tokenizer(texts, truncation=True, max_length=max_len)
            self._infer(features, lambda batch: self._embed(encoder, batch), out,
                        batch_size, progress, desc)
        return out

    def encode_queries(self, texts: Sequence[str], batch_size: int = 256,
                       progress: bool = True) -> np.ndarray:
        """Embed query texts without gradients: float32 (n, H),
        rows in the input order."""
        return self._encode_texts(texts, self.query_encoder, self.max_query_len,
                                  batch_size, progress, "encode queries")

    def encode_passages(self, texts: Sequence[str], batch_size: int = 256,
                        progress: bool = True) -> np.ndarray:
        """Embed passage texts without gradients: float32 (n, H),
        rows in the input order.

        Texts are tokenized once, sorted by token length and batched, so each
        batch pads only to its own longest text.
        """
        return self._encode_texts(texts, self.passage_encoder, self.max_passage_len,
                                  batch_size, progress, "encode passages")

    # -- saving ------------------------------------------------------------------------
    def _save_tower(self, encoder, folder: str | Path) -> None:
        encoder.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tower(s) (safetensors), the tokenizer and
        ``minidr_biencoder.json``, atomically.

        Shared towers go to ``path/`` itself (a plain Hugging Face folder too);
        separate ones to ``path/query/`` and ``path/passage/``.
        """
        with atomic_dir(path) as tmp:
            if self.shared:
                self._save_tower(self.query_encoder, tmp)
            else:
                self._save_tower(self.query_encoder, tmp / "query")
                self._save_tower(self.passage_encoder, tmp / "passage")
            (tmp / BI_CONFIG).write_text(
                json.dumps({**self.settings, "base": self.name_or_path}, indent=2)
                + "\n")
        return Path(path)

    def export_sentence_transformers(self, path: str | os.PathLike) -> Path:
        """Write a sentence-transformers folder: Transformer + Pooling
        (+ Normalize under ``cos``).

        ``SentenceTransformer(path).encode(texts)`` then equals
        ``encode_passages(texts)`` (queries too are truncated at ``max_passage_len``
        there).

        Raises:
            ValueError: the towers are separate
                (a sentence-transformers model has one encoder).
        """
        if not self.shared:
            raise ValueError("export_sentence_transformers needs shared towers "
                             "(a sentence-transformers model has one encoder); "
                             "use save() and BiEncoder.from_pretrained() instead")
        from sentence_transformers import SentenceTransformer
        try:  # sentence-transformers >= 5.4
            from sentence_transformers.sentence_transformer.modules import (
                Normalize, Pooling, Transformer)
        except ImportError:
            from sentence_transformers.models import Normalize, Pooling, Transformer

        with tempfile.TemporaryDirectory() as src, atomic_dir(path) as tmp:
            self._save_tower(self.passage_encoder, src)
            # its BertModel builds an unused pooler: not news
            with quiet_transformers():
                modules = [Transformer(src, max_seq_length=self.max_passage_len),
                           Pooling(self.dim, pooling_mode=self.pooling)]
            if self.similarity == "cos":
                modules.append(Normalize())
            st = SentenceTransformer(
                modules=modules, device="cpu",
                similarity_fn_name="cosine" if self.similarity == "cos" else "dot")
            st.save(str(tmp))
        return Path(path)

    def fingerprint(self) -> str:
        """Short sha256 of the settings, the vocabulary and every parameter:
        an embedding cache key."""
        h = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode())
        h.update(json.dumps(sorted(self.tokenizer.get_vocab().items())).encode())
        hash_parameters(h, self)
        return h.hexdigest()[:16]
