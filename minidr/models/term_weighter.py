"""A term weighter (DeepCT's model): BERT reads a passage and gives each word a weight.

DeepCT (Dai & Callan 2020) puts a linear layer on BERT's last hidden states
and regresses one number per token: how important that word is *in this
passage*. A word split into several WordPiece tokens takes the prediction of
its first piece (as DeepCT's conversion script does). The weights are then
written into an ordinary inverted index as term frequencies
(:mod:`minidr.methods.deepct`).

Words are BERT's own pre-tokenization of the text (lower-cased, accents
stripped, split at spaces and punctuation); words without a letter or digit
(punctuation) are dropped.

Example::

    weighter = TermWeighter.from_pretrained("data/models/splade-tiny")
    weighter.words("Hot-dogs, in Paris!")       # ['hot', 'dogs', 'in', 'paris']
    weighter.word_weights(["hot dogs in paris"])  # [{'hot': 0.1, ...}] (untrained)

Reference:
    Dai & Callan (2020), Context-Aware Term Weighting For First Stage Passage
    Retrieval, SIGIR (DeepCT).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.atomic import atomic_dir
from ..core.progress import progress_bar
from .encoder import hash_parameters, pad_rows
from .loading import load_backbone, read_settings, resolve_model_path

__all__ = ["TermWeighter", "WEIGHTER_CONFIG"]

WEIGHTER_CONFIG = "minidr_termweighter.json"
_HEAD = "term_head.safetensors"


class TermWeighter(torch.nn.Module):
    """A BERT encoder and a linear layer: one weight per token.

    Args:
        encoder: an ``AutoModel`` (its last hidden states are read).
        tokenizer: its fast tokenizer.
        max_length: tokens kept per passage (later words get no weight).

    Shapes:
        ``forward``: token tensors (B, L) -> (B, L) weights.
    """

    def __init__(self, encoder, tokenizer, max_length: int = 128):
        super().__init__()
        self.encoder, self.tokenizer, self.max_length = encoder, tokenizer, max_length
        self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike,
                        max_length: int | None = None) -> "TermWeighter":
        """A saved term weighter (:meth:`save`), or a fresh linear head on a
        backbone (``data/models/splade-tiny``, ``bert-base-uncased``)."""
        from safetensors.torch import load_file

        path = Path(resolve_model_path(name_or_path))
        saved = read_settings(path / WEIGHTER_CONFIG)
        encoder, tokenizer = load_backbone(path)
        model = cls(encoder, tokenizer, max_length or saved.get("max_length", 128))
        if (path / _HEAD).is_file():
            model.head.load_state_dict(load_file(str(path / _HEAD)))
        return model

    def save(self, path: str | os.PathLike) -> Path:
        """Write the encoder, tokenizer, head (safetensors) and settings, atomically."""
        from safetensors.torch import save_file

        with atomic_dir(path) as tmp:
            self.encoder.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            save_file({k: v.contiguous() for k, v in self.head.state_dict().items()},
                      str(tmp / _HEAD))
            (tmp / WEIGHTER_CONFIG).write_text(
                json.dumps({"max_length": self.max_length}) + "\n")
        return Path(path)

    def words(self, text: str) -> list[str]:
        """The words of ``text`` as BERT splits them, punctuation dropped."""
        backend = self.tokenizer.backend_tokenizer
        normalized = backend.normalizer.normalize_str(text)
        return [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)
                if any(c.isalnum() for c in w)]

    def tokenize(self, texts: Sequence[str]) -> tuple[dict, list[list[str]],
                                                      list[list[int]]]:
        """Token ids of ``texts`` and where each word starts.

        Returns:
            ``(features, words, first)``: the tokenizer's unpadded output; each
            text's words (those that fit in ``max_length``); and for each word
            the position of its first token.
        """
        split = [self.words(t) for t in texts]
        features = self.tokenizer(split, is_split_into_words=True, truncation=True,
                                  max_length=self.max_length)
        words, first = [], []
        for i, ws in enumerate(split):
            starts: dict[int, int] = {}
            for pos, w in enumerate(features.word_ids(i)):
                if w is not None and w not in starts:
                    starts[w] = pos
            kept = sorted(starts)                    # truncation drops the tail
            words.append([ws[w] for w in kept])
            first.append([starts[w] for w in kept])
        return ({"input_ids": features["input_ids"],
                 "attention_mask": features["attention_mask"]}, words, first)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """One weight per token.

        Shapes:
            input_ids, attention_mask (B, L) -> (B, L).
        """
        hidden = self.encoder(input_ids=input_ids,
                              attention_mask=attention_mask).last_hidden_state
        return self.head(hidden).squeeze(-1)                              # (B, L)

    @torch.inference_mode()
    def word_weights(self, texts: Sequence[str], batch_size: int = 128,
                     progress: bool = True) -> list[dict[str, float]]:
        """Each text's words with their predicted weight (a word that occurs
        more than once keeps its largest prediction); texts in input order."""
        features, words, first = self.tokenize(list(texts))
        order = np.argsort([-len(x) for x in features["input_ids"]], kind="stable")
        device = next(self.parameters()).device
        out: list[dict[str, float]] = [{} for _ in words]
        was_training = self.training
        self.eval()
        for start in progress_bar(range(0, len(order), batch_size), desc="DeepCT",
                                  unit="batch", disable=not progress):
            idx = order[start:start + batch_size]
            ids = pad_rows([features["input_ids"][i] for i in idx],
                           self.tokenizer.pad_token_id)                   # (b, L)
            mask = pad_rows([features["attention_mask"][i] for i in idx], 0)
            pred = self(ids.to(device), mask.to(device)).float().cpu().numpy()
            for row, i in enumerate(idx):
                for w, pos in zip(words[i], first[i]):
                    out[i][w] = max(out[i].get(w, -np.inf), float(pred[row, pos]))
        self.train(was_training)
        return out

    def fingerprint(self) -> str:
        """Short sha256 of ``max_length``, the vocabulary and every parameter."""
        h = hashlib.sha256(f"termweighter:max_length={self.max_length}".encode())
        h.update(json.dumps(sorted(self.tokenizer.get_vocab().items())).encode())
        hash_parameters(h, self)
        return h.hexdigest()[:16]
