"""DPR training: a bi-encoder trained with in-batch (and hard) negatives.

Dense Passage Retrieval (Karpukhin et al., 2020) trains a bi-encoder with a
softmax over the passages of the batch. For query ``q_i`` with positive
``p_i`` and the batch's other passages as negatives,

    L = - log  exp(s(q_i, p_i) / tau) / sum_j exp(s(q_i, p_j) / tau),

where ``j`` runs over every passage in the batch: the other queries'
positives (*in-batch negatives*) and, optionally, ``n_hard`` hard negatives
per query (DPR: BM25 passages without the answer).

This module is the at-scale version of what chapter 04 writes by hand:
:class:`DPRBatches` builds the batches (a pure function of the step, so the
trainer can resume exactly), :func:`dpr_loss` scores them, :func:`train_dpr`
runs the book's :class:`~minidr.train.Trainer`. Later chapters (ANCE, STAR,
RocketQA, TAS-B) change only where the negatives come from or how batches
are composed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import pandas as pd

from .cost import CostMeter
from .formats import Corpus, Qrels
from .losses import embedding_stats, in_batch_targets, info_nce
from .train import TrainConfig, Trainer

__all__ = ["Example", "training_examples", "examples_qrels", "DPRBatches", "dpr_loss", "train_dpr",
           "metered_trainer"]


@dataclass(frozen=True)
class Example:
    """One training pair: a query and one positive passage id.

    Attributes:
        teacher: True when the positive is a teacher label, not a judgment.
    """

    qid: str
    query: str
    positive: str
    teacher: bool = False


def training_examples(data, teacher_labels: pd.DataFrame | None = None) -> list[Example]:
    """Judged pairs of the ``train`` split, plus teacher-labeled pairs if given.

    Args:
        data: a :class:`~minidr.data.MiniMarco`.
        teacher_labels: ``DataFrame[qid, pid, ...]`` from :func:`minidr.teacher.read_labels`;
            rows whose query or passage is not in ``data`` (e.g. the ci slice) are skipped.
    """
    train = data.splits["train"]
    examples = [Example(q, train.queries[q], p) for q, rel in train.qrels.items()
                for p, g in sorted(rel.items()) if g > 0]
    if teacher_labels is not None:
        examples += [Example(q, data.unlabeled_queries[q], p, teacher=True)
                     for q, p in zip(teacher_labels["qid"].astype(str), teacher_labels["pid"].astype(str))
                     if q in data.unlabeled_queries and p in data.corpus]
    return examples


def examples_qrels(examples: list[Example]) -> Qrels:
    """qid -> {positive pid: 1}: what negative samplers must never return."""
    qrels: Qrels = {}
    for ex in examples:
        qrels.setdefault(ex.qid, {})[ex.positive] = 1
    return qrels


class DPRBatches:
    """``batches(i)``: the i-th batch of queries, their positives and hard negatives.

    Examples are visited in a fresh random order each epoch (seeded by the
    epoch), so every example is seen once per epoch and batch ``i`` depends on
    ``i`` alone.

    Args:
        encoder: a :class:`~minidr.models.BiEncoder` (its tokenizer is used).
        examples: from :func:`training_examples`.
        corpus: pid -> text.
        batch_size: queries per batch (B).
        hard_negatives: qid -> candidate negative pids (e.g. :func:`minidr.negatives.bm25_negatives`);
            ``None`` trains with in-batch negatives only.
        n_hard: hard negatives per query; the group of a query is its positive
            followed by them (G = 1 + n_hard).
        seed: the sampling seed.

    Returns (per call):
        ``{"queries": tokens (B, Lq), "passages": tokens (B*G, Lp), "group": G}``
        with passages laid out ``[pos_0, neg_0_1, ..., pos_1, ...]``.
    """

    def __init__(self, encoder, examples: list[Example], corpus: Corpus, batch_size: int = 32,
                 hard_negatives: dict[str, list[str]] | None = None, n_hard: int = 1, seed: int = 0):
        if not examples:
            raise ValueError("no training examples")
        self.encoder, self.examples, self.corpus = encoder, examples, corpus
        self.batch_size = min(batch_size, len(examples))
        self.hard = hard_negatives
        self.n_hard = n_hard if hard_negatives is not None else 0
        self.seed = seed
        self._pids = list(corpus)
        self._order: tuple[int, list[int]] = (-1, [])

    def _epoch_order(self, epoch: int) -> list[int]:
        if self._order[0] != epoch:
            order = list(range(len(self.examples)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            self._order = (epoch, order)
        return self._order[1]

    def select(self, i: int) -> list[Example]:
        """The examples of batch ``i`` (wrapping into the next epoch's order if needed)."""
        start = i * self.batch_size
        chosen = []
        for pos in range(start, start + self.batch_size):
            epoch, offset = divmod(pos, len(self.examples))
            chosen.append(self.examples[self._epoch_order(epoch)[offset]])
        return chosen

    def texts(self, i: int) -> tuple[list[str], list[str]]:
        """Batch ``i`` as texts: B queries and their B*G passages (positive first in each group)."""
        batch = self.select(i)
        rng = random.Random(self.seed * 7_919 + i)
        passages = []
        for ex in batch:
            passages.append(self.corpus[ex.positive])
            if self.n_hard:
                pool = [p for p in self.hard.get(ex.qid, []) if p != ex.positive]
                while len(pool) < self.n_hard:  # too few hard negatives: fill with random passages
                    p = rng.choice(self._pids)
                    if p != ex.positive and p not in pool:
                        pool.append(p)
                passages += [self.corpus[p] for p in rng.sample(pool, self.n_hard)]
        return [ex.query for ex in batch], passages

    def __call__(self, i: int) -> dict:
        queries, passages = self.texts(i)
        return {"queries": self.encoder.tokenize_queries(queries),
                "passages": self.encoder.tokenize_passages(passages), "group": 1 + self.n_hard}


def dpr_loss(encoder, batch: dict, temperature: float = 1.0):
    """In-batch softmax loss of one batch (see the module docstring) and diagnostics.

    Shapes:
        queries (B, Lq) -> q (B, H); passages (B*G, Lp) -> p (B*G, H); scores (B, B*G).
    """
    q = encoder.encode_query(**batch["queries"])                    # (B, H)
    p = encoder.encode_passage(**batch["passages"])                 # (B*G, H)
    scores = encoder.score(q, p)                                    # (B, B*G)
    targets = in_batch_targets(q.shape[0], batch["group"], device=scores.device)  # (B,)
    loss, stats = info_nce(scores, targets, temperature)
    stats.update(embedding_stats(q.detach(), "q_"))
    stats.update(embedding_stats(p.detach(), "p_"))
    return loss, stats


def train_dpr(encoder, examples: list[Example], corpus: Corpus, steps: int, batch_size: int = 32,
              lr: float = 2e-5, hard_negatives: dict[str, list[str]] | None = None, n_hard: int = 1,
              temperature: float = 1.0, seed: int = 0, checkpoint_dir: str | None = None,
              cost: CostMeter | None = None, callbacks=(), device: str | None = None) -> Trainer:
    """Train ``encoder`` with DPR's loss; returns the trainer (``.history``, ``.cost``).

    Args:
        encoder: a :class:`~minidr.models.BiEncoder`, trained in place.
        examples, corpus, batch_size, hard_negatives, n_hard, seed: see :class:`DPRBatches`.
        steps, lr: optimisation (AdamW, 10% warm-up, linear decay; see :class:`~minidr.train.TrainConfig`).
        temperature: softmax temperature (1 for dot products; ~0.05 for cosine).
        checkpoint_dir: resume point.
        cost: charged the training time, steps, queries and passages encoded.

    Reference:
        Karpukhin et al. (2020), Dense Passage Retrieval for Open-Domain Question Answering, EMNLP.
    """
    batches = DPRBatches(encoder, examples, corpus, batch_size, hard_negatives, n_hard, seed)
    trainer = metered_trainer(encoder, batches, lambda m, b: dpr_loss(m, b, temperature), steps, lr,
                              seed, cost, callbacks, device, checkpoint_dir)
    trainer.fit()
    return trainer


def metered_trainer(encoder, batches, loss, steps: int, lr: float, seed: int = 0,
                    cost: CostMeter | None = None, callbacks=(), device: str | None = None,
                    checkpoint_dir: str | None = None) -> Trainer:
    """A :class:`~minidr.train.Trainer` (not started) over :class:`DPRBatches`-shaped batches.

    Shared by DPR, ANCE and STAR, which differ only in their negatives and
    their ``loss``: every step charges ``cost`` the queries and passages the
    batch encodes.

    Args:
        encoder: the :class:`~minidr.models.BiEncoder` to train.
        batches: ``batches(i) -> {"queries": tokens (B, Lq), "passages": tokens (B*G, Lp), ...}``.
        loss: ``loss(model, batch) -> (loss, stats)``, e.g. :func:`dpr_loss`.
        steps, lr, seed, device: see :class:`~minidr.train.TrainConfig`.
        cost: a :class:`~minidr.cost.CostMeter` (a new one if ``None``).
        callbacks: trainer callbacks.
        checkpoint_dir: resume point (a checkpoint every ``max(steps // 5, 50)`` steps).
    """
    cost = cost or CostMeter()

    def compute_loss(model, batch):
        cost.add(queries_encoded=batch["queries"]["input_ids"].shape[0],
                 passages_encoded=batch["passages"]["input_ids"].shape[0])
        return loss(model, batch)

    config = TrainConfig(steps=steps, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
                         checkpoint_every=max(steps // 5, 50) if checkpoint_dir else 0, device=device)
    return Trainer(encoder, compute_loss, batches, config, callbacks=callbacks, cost=cost)
