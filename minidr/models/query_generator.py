"""A query generator: a sequence-to-sequence model that reads a passage and writes
queries it could answer (doc2query's and GPL's model).

Offline there is no T5 to download, so the book warm-starts a BERT2BERT
encoder-decoder (Rothe et al. 2020) from a BERT it has: the encoder is the
BERT, the decoder is a copy of it with causal self-attention and new
cross-attention layers, and the output layer is tied to the decoder's word
embeddings (:meth:`QueryGenerator.from_backbone`). Trained by teacher forcing
on (passage, query) pairs, it generates by top-k sampling as docTTTTTquery
does (:meth:`QueryGenerator.generate`). In Colab the same class loads the
published ``castorini/doc2query-t5-base-msmarco`` (:meth:`from_pretrained`).

Example::

    gen = QueryGenerator.from_backbone("data/models/bert-L2-H128")   # untrained
    batch = gen.tokenize(["The Eiffel tower is 330 m tall."], ["eiffel height"])
    gen(batch)                                   # teacher-forced cross-entropy
    gen.generate(["The Eiffel tower is 330 m tall."], n=3, seed=0)  # [[q, q, q]]

References:
    Rothe, Narayan & Severyn (2020), Leveraging Pre-trained Checkpoints for
    Sequence Generation Tasks, TACL (BERT2BERT warm starts).
    Nogueira, Yang, Lin & Cho (2019), Document Expansion by Query Prediction,
    arXiv 1904.08375 (doc2query). Nogueira & Lin (2019), From doc2query to
    docTTTTTquery (T5, top-k sampling with k = 10).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch

from ..core.atomic import atomic_dir
from .encoder import hash_parameters, pad_rows
from .loading import (load_pretrained, quiet_transformers, read_settings,
                      resolve_model_path)

__all__ = ["QueryGenerator", "GENERATOR_CONFIG", "HUB_GENERATOR"]

GENERATOR_CONFIG = "minidr_generator.json"
HUB_GENERATOR = "castorini/doc2query-t5-base-msmarco"


class QueryGenerator(torch.nn.Module):
    """A seq2seq model and its tokenizer: passages in, queries out.

    Args:
        model: a ``transformers`` encoder-decoder (``EncoderDecoderModel``,
            ``T5ForConditionalGeneration``) whose ``generation_config`` knows
            its start, end and padding tokens.
        tokenizer: its fast tokenizer.
        max_passage_len: passage tokens read (the rest is cut).
        max_query_len: query tokens trained on and generated.

    Shapes:
        ``forward``: ``input_ids``/``attention_mask`` (B, L) and ``labels``
        (B, T) -> a scalar loss.
    """

    def __init__(self, model, tokenizer, max_passage_len: int = 128,
                 max_query_len: int = 32):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.max_passage_len, self.max_query_len = max_passage_len, max_query_len

    @classmethod
    def from_backbone(cls, name_or_path: str | os.PathLike, layers: int | None = None,
                      **settings) -> "QueryGenerator":
        """A BERT2BERT generator warm-started from one BERT (Rothe et al. 2020).

        Args:
            name_or_path: a BERT folder or hub id (``data/models/bert-L2-H128``).
            layers: keep only the bottom ``layers`` layers of encoder and decoder
                (``None``: all).
            settings: ``max_passage_len``, ``max_query_len``.

        Returns:
            An untrained generator: cross-attention is random, the rest is BERT.
        """
        from transformers import (AutoTokenizer, BertLMHeadModel, BertModel,
                                  EncoderDecoderModel)

        path = resolve_model_path(name_or_path)
        cut = {"dtype": torch.float32,
               **({} if layers is None else {"num_hidden_layers": layers})}
        encoder = load_pretrained(BertModel, path, add_pooling_layer=False, **cut)
        decoder = load_pretrained(BertLMHeadModel, path, is_decoder=True,
                                  add_cross_attention=True, **cut)
        tokenizer = load_pretrained(AutoTokenizer, path)
        model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
        for config in (model.config, model.generation_config):
            config.decoder_start_token_id = tokenizer.cls_token_id   # [CLS] starts
            config.eos_token_id = tokenizer.sep_token_id             # [SEP] ends
            config.pad_token_id = tokenizer.pad_token_id
        return cls(model, tokenizer, **settings)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = HUB_GENERATOR,
                        **settings) -> "QueryGenerator":
        """A saved generator (:meth:`save`) or a hub seq2seq model (Colab:
        ``castorini/doc2query-t5-base-msmarco``)."""
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        path = resolve_model_path(name_or_path)
        saved = read_settings(Path(path) / GENERATOR_CONFIG)
        model = load_pretrained(AutoModelForSeq2SeqLM, path, dtype=torch.float32)
        if getattr(getattr(model, "encoder", None), "pooler", None) is not None:
            model.encoder.pooler = None   # BERT2BERT never uses it; loading adds one
        tokenizer = load_pretrained(AutoTokenizer, path)
        return cls(model, tokenizer, **{**saved, **settings}).eval()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model (safetensors), tokenizer and settings, atomically."""
        with atomic_dir(path) as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            (tmp / GENERATOR_CONFIG).write_text(json.dumps(
                {"max_passage_len": self.max_passage_len,
                 "max_query_len": self.max_query_len}) + "\n")
        return Path(path)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def _end(self) -> int:
        return self.model.generation_config.eos_token_id

    def tokenize(self, passages: Sequence[str], queries: Sequence[str]) -> dict:
        """Padded tensors for teacher forcing.

        Args:
            passages, queries: aligned lists of texts.

        Returns:
            ``input_ids``, ``attention_mask`` (B, L) of the passages and
            ``labels`` (B, T): each query's tokens and the end token, padding
            marked ``-100`` (ignored by the loss); ``decoder_attention_mask``
            (B, T): which decoder inputs (the start token, then the labels
            shifted right) are real.
        """
        if len(passages) != len(queries):
            raise ValueError(f"{len(passages)} passages but {len(queries)} queries")
        x = self.tokenizer(list(passages), truncation=True, padding=True,
                           max_length=self.max_passage_len, return_tensors="pt")
        rows = [ids[: self.max_query_len - 1] + [self._end] for ids in self.tokenizer(
            list(queries), add_special_tokens=False)["input_ids"]]
        labels = pad_rows(rows, -100)                                   # (B, T)
        # the decoder reads the start token and labels[:, :-1]; padding is masked
        seen = torch.cat([torch.ones_like(labels[:, :1]), labels[:, :-1] != -100], 1)
        return {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"],
                "labels": labels, "decoder_attention_mask": seen.long()}

    def forward(self, batch: dict) -> torch.Tensor:
        """Mean cross-entropy of each next query token given the passage and the
        query's earlier tokens (the model shifts ``labels`` right itself)."""
        with warnings.catch_warnings():   # transformers' notes on its own internals
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            return self.model(**batch).loss

    @torch.no_grad()
    def generate(self, passages: Sequence[str], n: int = 1, top_k: int = 10,
                 seed: int = 0) -> list[list[str]]:
        """``n`` queries per passage by top-k sampling (docTTTTTquery: k = 10).

        Args:
            passages: texts.
            n: queries per passage.
            top_k: sample each token from the ``top_k`` most likely ones.
            seed: the sampling seed (same seed, same queries).

        Returns:
            One list of ``n`` queries per passage.
        """
        was_training = self.training
        self.eval()
        torch.manual_seed(seed)
        x = self.tokenizer(list(passages), truncation=True, padding=True,
                           max_length=self.max_passage_len,
                           return_tensors="pt").to(self.device)
        with quiet_transformers():   # its note on padded decoder inputs
            out = self.model.generate(input_ids=x["input_ids"],
                                      attention_mask=x["attention_mask"],
                                      do_sample=True, top_k=top_k,
                                      num_return_sequences=n,
                                      max_new_tokens=self.max_query_len)  # (B * n, T)
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        self.train(was_training)
        return [[t.strip() for t in texts[i * n:(i + 1) * n]]
                for i in range(len(passages))]

    def fingerprint(self) -> str:
        """Short sha256 of the settings, the vocabulary and every parameter."""
        h = hashlib.sha256(f"generator:{self.max_passage_len}:{self.max_query_len}"
                           .encode())
        h.update(json.dumps(sorted(self.tokenizer.get_vocab().items())).encode())
        hash_parameters(h, self)
        return h.hexdigest()[:16]
