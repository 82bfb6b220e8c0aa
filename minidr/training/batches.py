"""Training examples and the batches built from them, as typed records.

A training **example** is a query with one positive passage (:class:`Example`).
A batch source is a callable ``batches(i) -> batch``: batch ``i`` is a pure
function of ``i`` (examples are visited in a fresh shuffle per epoch, seeded by
the epoch), so a resumed run sees exactly the batches an uninterrupted one
would. Two batch kinds cover the book's methods:

* :class:`GroupedBatch` (DPR, ANCE, STAR, RocketQA, TAS-B ...): B queries and,
  for each, a *group* of G passages, its positive first then ``G - 1`` hard
  negatives; every passage is encoded by the model being trained;
* :class:`QueryBatch` (LTRe, ADORE): B queries and the index row of each
  positive; passages are rows of a fixed index, never re-encoded;
* :class:`PairBatch` (cross-encoders): the same groups as (query, passage) pairs.

Each batch reports its own cost (``counts()``: queries and passages encoded,
retrievals), which :func:`minidr.training.trainer.fit` charges to the cost meter.
Any encoder that satisfies :class:`minidr.models.encoder.RetrievalEncoder`
(a bi-encoder today; ColBERT or SPLADE later) tokenizes these batches.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data.formats import Corpus, Qrels

__all__ = ["Example", "training_examples", "examples_qrels", "EpochOrder",
           "EncodedCost", "GroupedBatch", "GroupedBatches", "QueryBatch",
           "QueryBatches", "PairBatch", "PairBatches"]


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


def training_examples(data,
                      teacher_labels: pd.DataFrame | None = None) -> list[Example]:
    """Judged pairs of the ``train`` split, plus teacher-labeled pairs if given.

    Args:
        data: a :class:`~minidr.data.minimarco.MiniMarco`.
        teacher_labels: ``DataFrame[qid, pid, ...]`` from
            :func:`minidr.data.teacher_labels.load_teacher_labels`; rows whose query or
            passage is not in ``data`` (e.g. the ci slice) are skipped.
    """
    train = data.splits["train"]
    examples = [Example(q, train.queries[q], p) for q, rel in train.qrels.items()
                for p, g in sorted(rel.items()) if g > 0]
    if teacher_labels is not None:
        pairs = zip(teacher_labels["qid"].astype(str),
                    teacher_labels["pid"].astype(str))
        examples += [Example(q, data.unlabeled_queries[q], p, teacher=True)
                     for q, p in pairs
                     if q in data.unlabeled_queries and p in data.corpus]
    return examples


def examples_qrels(examples: list[Example]) -> Qrels:
    """qid -> {positive pid: 1}: what negative samplers must never return."""
    qrels: Qrels = {}
    for ex in examples:
        qrels.setdefault(ex.qid, {})[ex.positive] = 1
    return qrels


class EpochOrder:
    """Which examples batch ``i`` holds: a fresh seeded shuffle per epoch.

    Every example is seen once per epoch; a batch that crosses an epoch's end
    continues with the next epoch's order. Subclasses change only
    :meth:`permutation` (e.g. TAS's topic-aware order, chapter 9).

    Args:
        examples: the training examples.
        batch_size: examples per batch (capped at ``len(examples)``).
        seed: the shuffling seed.
    """

    def __init__(self, examples: list[Example], batch_size: int, seed: int = 0):
        if not examples:
            raise ValueError("no training examples")
        self.examples, self.seed = examples, seed
        self.batch_size = min(batch_size, len(examples))
        self._cached: tuple[int, list[int]] = (-1, [])

    def permutation(self, epoch: int) -> list[int]:
        """The order of the example indices in ``epoch``: a seeded shuffle."""
        order = list(range(len(self.examples)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def _epoch(self, epoch: int) -> list[int]:
        if self._cached[0] != epoch:
            self._cached = (epoch, self.permutation(epoch))
        return self._cached[1]

    def select_with_epochs(self, i: int) -> list[tuple[int, Example]]:
        """The examples of batch ``i``, each with the epoch it is drawn in."""
        chosen = []
        for pos in range(i * self.batch_size, (i + 1) * self.batch_size):
            epoch, offset = divmod(pos, len(self.examples))
            chosen.append((epoch, self.examples[self._epoch(epoch)[offset]]))
        return chosen

    def select(self, i: int) -> list[Example]:
        """The examples of batch ``i``."""
        return [ex for _, ex in self.select_with_epochs(i)]


class EncodedCost:
    """The cost of a batch of token tensors ``queries`` and ``passages``: what a
    bi-encoder encodes for it (mixed into :class:`GroupedBatch` and the student's
    distillation batch)."""

    def counts(self) -> dict[str, int]:
        """What this batch costs: queries and passages encoded."""
        return {"queries_encoded": int(self.queries["input_ids"].shape[0]),
                "passages_encoded": int(self.passages["input_ids"].shape[0])}


@dataclass
class GroupedBatch(EncodedCost):
    """B queries, each with a group of G passages (its positive first).

    Attributes:
        queries: token tensors (B, Lq).
        passages: token tensors (B*G, Lp), laid out
            ``[pos_0, neg_0_1, ..., pos_1, ...]``.
        group: G, passages per query.
        qids: the B query ids.
        pids: the B*G passage ids, in the layout of ``passages``.
    """

    queries: Any
    passages: Any
    group: int
    qids: list[str] = field(default_factory=list)
    pids: list[str] = field(default_factory=list)



class GroupedBatches:
    """``batches(i)``: the i-th :class:`GroupedBatch` of queries,
    positives and hard negatives.

    Args:
        encoder: tokenizes (``tokenize_queries``, ``tokenize_passages``); may be
            ``None`` when only :meth:`texts` is used (e.g. by a cross-encoder).
        examples: from :func:`training_examples`.
        corpus: pid -> text.
        batch_size: queries per batch (B).
        n_hard: hard negatives per query (G = 1 + n_hard); 0 trains with
            in-batch negatives only.
        hard_negatives: qid -> candidate negative pids (e.g.
            :func:`minidr.training.negatives.bm25_negatives`). It may be set
            later (ANCE fills it at its first refresh), but must be set before
            a batch is drawn when ``n_hard > 0``. A query with too few
            candidates is topped up with random passages.
        seed: the sampling seed.

    Example::

        >>> ex = [Example("q1", "what is bm25", "p1"),
        ...       Example("q2", "who made faiss", "p2")]
        >>> corpus = {"p1": "BM25 ranks ...", "p2": "Faiss is ...", "p3": "Paris ..."}
        >>> b = GroupedBatches(None, ex, corpus, batch_size=2, n_hard=1,
        ...                    hard_negatives={"q1": ["p3"], "q2": ["p3"]})
        >>> sorted(e.qid for e in b.select(0))
        ['q1', 'q2']
        >>> _, passages, pids = b.texts(0)
        >>> pids[1::2]    # each query's hard negative follows its positive
        ['p3', 'p3']
    """

    def __init__(self, encoder, examples: list[Example], corpus: Corpus,
                 batch_size: int = 32, n_hard: int = 0,
                 hard_negatives: dict[str, list[str]] | None = None, seed: int = 0):
        if n_hard < 0:
            raise ValueError(f"n_hard must be >= 0, got {n_hard}")
        self.encoder, self.corpus, self.seed = encoder, corpus, seed
        self.order = EpochOrder(examples, batch_size, seed)
        self.n_hard, self.hard_negatives = n_hard, hard_negatives
        self._pids = list(corpus)

    @property
    def batch_size(self) -> int:
        return self.order.batch_size

    def select(self, i: int) -> list[Example]:
        """The examples of batch ``i``."""
        return self.order.select(i)

    def texts(self, i: int) -> tuple[list[str], list[str], list[str]]:
        """Batch ``i`` as texts: B queries, their B*G passages
        and the B*G passage ids."""
        if self.n_hard and self.hard_negatives is None:
            raise ValueError(f"n_hard={self.n_hard} needs hard negatives: pass "
                             "hard_negatives= or set .hard_negatives before drawing "
                             "a batch")
        rng = random.Random(self.seed * 7_919 + i)
        batch, pids = self.select(i), []
        for ex in batch:
            pids.append(ex.positive)
            if self.n_hard:
                pool = [p for p in self.hard_negatives.get(ex.qid, [])
                        if p != ex.positive]
                # too few hard negatives: top up at random
                while len(pool) < self.n_hard:
                    p = rng.choice(self._pids)
                    if p != ex.positive and p not in pool:
                        pool.append(p)
                pids += rng.sample(pool, self.n_hard)
        return [ex.query for ex in batch], [self.corpus[p] for p in pids], pids

    def __call__(self, i: int) -> GroupedBatch:
        queries, passages, pids = self.texts(i)
        return GroupedBatch(self.encoder.tokenize_queries(queries),
                            self.encoder.tokenize_passages(passages), 1 + self.n_hard,
                            [ex.qid for ex in self.select(i)], pids)


@dataclass
class QueryBatch:
    """B queries and the row of each one's positive in a fixed passage index.

    Attributes:
        queries: token tensors (B, Lq).
        qids: the B query ids.
        pos_rows: (B,) int64 index rows of the positives.
    """

    queries: Any
    qids: list[str]
    pos_rows: np.ndarray
    retrieves: bool = True

    def counts(self) -> dict[str, int]:
        """What this batch costs: queries encoded, and one full-index retrieval each
        unless its negatives were retrieved before training (``retrieves=False``)."""
        return {"queries_encoded": len(self.qids),
                "retrievals": len(self.qids) if self.retrieves else 0}


class QueryBatches:
    """``batches(i)``: the i-th :class:`QueryBatch` (LTRe, ADORE).

    Batches follow the same :class:`EpochOrder` as :class:`GroupedBatches`. No
    passage text is needed: passages are rows of the fixed index.

    Args:
        encoder: tokenizes the queries (``tokenize_queries``).
        examples: from :func:`training_examples`.
        ids: the index's passage ids (``index.ids``); every positive must be one.
        batch_size: queries per batch (B).
        seed: the sampling seed.
        retrieves: whether a step searches the index (``False`` for negatives
            retrieved once before training; see :class:`QueryBatch`).
    """

    def __init__(self, encoder, examples: list[Example], ids: list[str],
                 batch_size: int = 32, seed: int = 0, retrieves: bool = True):
        row_of = {pid: row for row, pid in enumerate(ids)}
        missing = sorted({ex.positive for ex in examples} - set(row_of))
        if missing:
            raise ValueError(f"{len(missing)} positives are not in the index, "
                             f"e.g. {missing[:3]}")
        self.encoder, self.row_of, self.retrieves = encoder, row_of, retrieves
        self.order = EpochOrder(examples, batch_size, seed)

    def __call__(self, i: int) -> QueryBatch:
        batch = self.order.select(i)
        return QueryBatch(self.encoder.tokenize_queries([ex.query for ex in batch]),
                          [ex.qid for ex in batch],
                          np.array([self.row_of[ex.positive] for ex in batch]),
                          self.retrieves)


@dataclass
class PairBatch:
    """B queries, each paired with its G passages, as one
    (query, passage) input per pair.

    Attributes:
        pairs: token tensors (B*G, L) of ``[CLS] q [SEP] p [SEP]``, positive first in
            each group of G.
        group: G, passages per query.
        teacher: (B, G) the teacher's scores of the same pairs, when the batches
            were given :class:`~minidr.training.teacher_targets.TeacherTargets`.
    """

    pairs: Any
    group: int
    teacher: Any = None

    def counts(self) -> dict[str, int]:
        """What this batch costs: (query, passage) pairs scored."""
        return {"pairs_scored": int(self.pairs["input_ids"].shape[0])}


class PairBatches:
    """``batches(i)``: the i-th :class:`PairBatch` for a cross-encoder.

    The groups are drawn exactly as :class:`GroupedBatches` draws them (same
    order, same negatives), so a cross-encoder and a bi-encoder trained with
    the same seed see the same queries, positives and negatives.

    Args:
        model: tokenizes pairs (``tokenize(queries, passages)``).
        examples, corpus, batch_size, seed: as in :class:`GroupedBatches`.
        n_neg: negatives per query (G = 1 + n_neg).
        negatives: qid -> negative pids.
        targets: when given, each batch carries the teacher's scores of its pairs
            (a :class:`~minidr.training.teacher_targets.TeacherTargets`).
    """

    def __init__(self, model, examples: list[Example], corpus: Corpus, batch_size: int,
                 n_neg: int, negatives: dict[str, list[str]], seed: int = 0,
                 targets=None):
        self.model, self.group, self.targets = model, 1 + n_neg, targets
        self.groups = GroupedBatches(None, examples, corpus, batch_size, n_neg,
                                     negatives, seed)

    def __call__(self, i: int) -> PairBatch:
        queries, passages, pids = self.groups.texts(i)
        repeated = [q for q in queries for _ in range(self.group)]         # (B*G,)
        teacher = None
        if self.targets is not None:
            qids = [ex.qid for ex in self.groups.select(i)]
            teacher = self.targets(qids, pids, self.group)                  # (B, G)
        return PairBatch(self.model.tokenize(repeated, passages), self.group, teacher)
