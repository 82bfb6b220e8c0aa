"""DeepCT: learned term weights, written into an ordinary BM25 index (chapter 12).

BM25 weighs a passage's words by how often they occur, which in a 60-word
passage is mostly once. DeepCT (Dai & Callan 2020) lets BERT decide how
important each word is *in its passage*, trained to predict the **query term
recall** of the word: of the queries for which the passage is relevant, the
share that contain it,

    QTR(t, d) = |{q in Q_d : t in q}| / |Q_d|,

by mean squared error over the passage's words (:func:`term_recall`,
:func:`mse_loss`). The predictions are scaled to integers and used as the
words' term frequencies (``tf = round(100 * weight)``, negatives dropped):
the passage is rewritten as each word repeated ``tf`` times
(:func:`weighted_text`) and indexed and searched with plain BM25, so query
time is unchanged (:mod:`minidr.retrieval.bm25`).

Targets here come from the training queries' positives: judged, plus the
teacher's top-1 for unlabeled queries (:func:`deepct_targets`); which ones a
run used is the experiment of chapter 12.

Reference:
    Dai & Callan (2020), Context-Aware Term Weighting For First Stage Passage
    Retrieval, SIGIR. Dai & Callan (2020), Context-Aware Document Term
    Weighting for Ad-Hoc Search, WWW (HDCT).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..models.encoder import pad_rows
from ..models.term_weighter import TermWeighter
from ..training.batches import EpochOrder, Example
from ..training.recipe import Budget, Recipe
from ..training.trainer import TrainConfig, fit, set_seed

__all__ = ["DeepCTRecipe", "RECIPE", "term_recall", "deepct_targets", "TermBatch",
           "TermBatches", "mse_loss", "train_deepct", "weighted_text",
           "weighted_corpus", "term_frequencies"]


@dataclass(frozen=True)
class DeepCTRecipe(Recipe):
    """Chapter 12's settings and budgets.

    Attributes:
        max_length: tokens read per passage (later words keep weight 0).
        scale: a weight ``w`` becomes the term frequency ``round(scale * w)``
            (DeepCT's 100).
        k1s, bs: the BM25 parameters searched for each index, chosen on dev
            queries (never on DL19).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8), "cpu": Budget(1500, 32), "gpu": Budget(5000, 64)})
    lr: float = 1e-4
    max_length: int = 128
    scale: int = 100
    k1s: tuple[float, ...] = (0.9, 2.0, 5.0, 10.0, 20.0)
    bs: tuple[float, ...] = (0.4, 0.7, 0.9)


RECIPE = DeepCTRecipe()


def term_recall(passage_words: Sequence[str],
                queries_words: Sequence[Sequence[str]]) -> dict[str, float]:
    """DeepCT's target: for each word of the passage, the share of its relevant
    queries that contain the word.

    Args:
        passage_words: the passage's words.
        queries_words: the words of each query for which it is relevant.

    Example::

        >>> term_recall(["the", "eiffel", "tower", "height"],
        ...             [["eiffel", "tower", "height"], ["how", "tall", "eiffel"]])
        {'the': 0.0, 'eiffel': 1.0, 'tower': 0.5, 'height': 0.5}
    """
    if not queries_words:
        raise ValueError("a passage needs at least one relevant query for a target")
    sets = [set(q) for q in queries_words]
    return {w: sum(w in q for q in sets) / len(sets) for w in passage_words}


def deepct_targets(examples: Sequence[Example], corpus: Corpus,
                   words: Callable[[str], list[str]]) -> dict[str, dict[str, float]]:
    """Query term recall of every passage that is some example's positive.

    Args:
        examples: (query, positive) pairs; a passage with several queries
            averages over them.
        corpus: pid -> text.
        words: text -> words (e.g. :meth:`TermWeighter.words`).

    Returns:
        pid -> word -> target, passages in first-seen order.
    """
    queries: dict[str, list[list[str]]] = {}
    for ex in examples:
        queries.setdefault(ex.positive, []).append(words(ex.query))
    return {pid: term_recall(words(corpus[pid]), qs) for pid, qs in queries.items()}


@dataclass
class TermBatch:
    """Passages with a target per token.

    Attributes:
        input_ids, attention_mask: (B, L).
        targets: (B, L), the word's target at its first token, else 0.
        mask: (B, L), 1 at each word's first token (where the loss counts).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor

    def counts(self) -> dict[str, int]:
        """What this batch costs: passages encoded."""
        return {"passages_encoded": int(self.input_ids.shape[0])}


class TermBatches:
    """``batches(i)``: the i-th :class:`TermBatch`, a seeded shuffle per epoch
    of the target passages.

    Args:
        model: the :class:`TermWeighter` (tokenizes).
        targets: from :func:`deepct_targets`.
        corpus: pid -> text.
        batch_size: passages per batch.
        seed: the shuffling seed.
    """

    def __init__(self, model: TermWeighter, targets: dict[str, dict[str, float]],
                 corpus: Corpus, batch_size: int, seed: int = 0):
        self.model, self.targets, self.corpus = model, targets, corpus
        self.order = EpochOrder(list(targets), batch_size, seed)

    def __call__(self, i: int) -> TermBatch:
        pids = self.order.select(i)
        features, words, first = self.model.tokenize([self.corpus[p] for p in pids])
        ids = pad_rows(features["input_ids"], self.model.tokenizer.pad_token_id)
        targets = torch.zeros(ids.shape)                                  # (B, L)
        mask = torch.zeros(ids.shape)
        for row, pid in enumerate(pids):
            for w, pos in zip(words[row], first[row]):
                targets[row, pos] = self.targets[pid][w]
                mask[row, pos] = 1.0
        return TermBatch(ids, pad_rows(features["attention_mask"], 0), targets, mask)


def mse_loss(model: TermWeighter, batch: TermBatch) -> tuple[torch.Tensor, dict]:
    """Mean squared error between predicted and target weights over the
    batch's words (each word's first token), DeepCT's loss.

    Shapes:
        predictions and targets (B, L); the mask selects the words.
    """
    device = next(model.parameters()).device
    pred = model(batch.input_ids.to(device), batch.attention_mask.to(device))
    targets, mask = batch.targets.to(device), batch.mask.to(device)       # (B, L)
    loss = ((pred - targets) ** 2 * mask).sum() / mask.sum().clamp(min=1)
    return loss, {"mean_target": float((targets * mask).sum() / mask.sum())}


def train_deepct(backbone: str, targets: dict[str, dict[str, float]],
                 corpus: Corpus, profile, recipe: DeepCTRecipe = RECIPE,
                 cost: CostMeter | None = None, seed: int = 0,
                 device: str | None = None) -> tuple[TermWeighter, list[dict]]:
    """Train a :class:`TermWeighter` on ``targets`` within ``recipe``'s budget.

    Returns:
        ``(model, history)``; the model in eval mode.
    """
    budget = recipe.budget(profile)
    set_seed(seed)                                     # the head's initialisation
    model = TermWeighter.from_pretrained(backbone, recipe.max_length)
    batches = TermBatches(model, targets, corpus, budget.batch_size, seed)
    trainer = fit(model, mse_loss, batches,
                  TrainConfig(steps=budget.steps, lr=recipe.lr, seed=seed,
                              device=device), cost)
    return model.eval(), trainer.history


def weighted_text(weights: dict[str, float], scale: int = RECIPE.scale) -> str:
    """A passage rewritten for BM25: each word repeated ``scale * w`` times,
    rounded half up (a word with weight below ``0.5 / scale`` disappears).

    Example::

        >>> weighted_text({"eiffel": 0.031, "tower": 0.012, "the": -0.2})
        'eiffel eiffel eiffel tower'
    """
    tf = {w: math.floor(scale * x + 0.5) for w, x in weights.items()}  # half up
    return " ".join(" ".join([w] * n) for w, n in tf.items() if n > 0)


def weighted_corpus(model: TermWeighter, corpus: Corpus, scale: int = RECIPE.scale,
                    progress: bool = True) -> Corpus:
    """Every passage as :func:`weighted_text` of its predicted weights; the same
    ids, in the same order."""
    weights = model.word_weights(list(corpus.values()), progress=progress)
    return {pid: weighted_text(w, scale) for pid, w in zip(corpus, weights)}


def term_frequencies(text: str) -> Counter:
    """How often each word occurs in a :func:`weighted_text`
    (``weighted_text``'s inverse)."""
    return Counter(text.split())
