"""A bi-encoder teacher's scores of *any* (query, passage) pair of a batch.

The teacher's stored top-k (:mod:`minidr.training.teacher_targets`) scores a
query's own candidates only. In-batch supervision (TAS-B, chapter 9) needs the
teacher's score of a query against every passage of its batch: the other
queries' positives and negatives too. A bi-encoder teacher scores those
cheaply, because its score is a dot product of two embeddings: embed each
query and each passage once, keep the vectors, and any batch's ``(B, N)``
score matrix is one matrix product.

:class:`TeacherEmbeddings` keeps those vectors in memory and embeds what it
has not seen on first use. Several training runs over the same queries share
them (call :meth:`TeacherEmbeddings.prepare` once with every id they will
draw), and its ``cost`` says what the teacher spent.

Example::

    teacher = TeacherEmbeddings(load_teacher(), mm.corpus, queries)
    teacher.prepare(qids, pids)                 # one pass, with a progress bar
    t = teacher.scores(batch.qids, batch.pids)  # (B, B*G) cosines
    t = teacher.targets(batch.qids, batch.pids, batch.group)   # (B, G): own groups

``targets`` has the call signature of
:class:`~minidr.training.teacher_targets.TeacherTargets`, so it can stand in
for the stored top-k wherever a query has no stored scores (generated queries,
chapter 11): the teacher scores every pair exactly, with no bounds.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus

__all__ = ["TeacherEmbeddings"]


class TeacherEmbeddings:
    """The teacher's embedding of every query and passage it has been asked about.

    Args:
        teacher: a bi-encoder (``encode_queries``, ``encode_passages``), e.g.
            :func:`~minidr.models.teacher.load_teacher`; its scores are the dot
            products of its embeddings (cosines for unit-length ones).
        corpus: pid -> passage text.
        queries: qid -> query text, for every query that will be scored.

    Attributes:
        cost: the teacher's own cost (``queries_encoded``, ``passages_encoded``,
            seconds), kept apart from the student's.
    """

    def __init__(self, teacher, corpus: Corpus, queries: dict[str, str]):
        self.teacher, self.corpus, self.queries = teacher, corpus, queries
        self._q: dict[str, np.ndarray] = {}
        self._p: dict[str, np.ndarray] = {}
        self.cost = CostMeter()

    def prepare(self, qids, pids, progress: bool = False) -> None:
        """Embed every query and passage not embedded yet, in one pass each.

        Raises:
            KeyError: a qid not in ``queries`` or a pid not in ``corpus``.
        """
        new_q = sorted(set(qids) - self._q.keys())
        new_p = sorted(set(pids) - self._p.keys())
        for ids, texts, store in ((new_q, self.queries, self._q),
                                  (new_p, self.corpus, self._p)):
            missing = [i for i in ids if i not in texts]
            if missing:
                kind = "queries" if store is self._q else "corpus"
                raise KeyError(f"{len(missing)} ids are not in the teacher's "
                               f"{kind}, e.g. {missing[:3]}")
        with self.cost:
            if new_q:
                vectors = self.teacher.encode_queries(
                    [self.queries[q] for q in new_q], progress=progress)   # (nq, H)
                self._q.update(zip(new_q, vectors))
            if new_p:
                vectors = self.teacher.encode_passages(
                    [self.corpus[p] for p in new_p], progress=progress)    # (np, H)
                self._p.update(zip(new_p, vectors))
        self.cost.add(queries_encoded=len(new_q), passages_encoded=len(new_p))

    def add_passages(self, pids: list[str], vectors: np.ndarray) -> None:
        """Keep passage embeddings computed elsewhere (e.g. the teacher's cached
        corpus embeddings), so that :meth:`prepare` never embeds them again.

        Shapes:
            pids (N,), vectors (N, H) in the same order.

        Raises:
            ValueError: ``pids`` and ``vectors`` differ in length.
        """
        if len(pids) != len(vectors):
            raise ValueError(f"{len(pids)} pids but {len(vectors)} vectors")
        self._p.update(zip(pids, vectors))

    @property
    def dim(self) -> int:
        """The teacher's embedding size."""
        return int(self.teacher.dim)

    def query_vectors(self, qids: list[str]) -> np.ndarray:
        """The teacher's embeddings of ``qids``, in order: float32 (B, H)."""
        self.prepare(qids, ())
        return np.stack([self._q[q] for q in qids])

    def passage_vectors(self, pids: list[str]) -> np.ndarray:
        """The teacher's embeddings of ``pids``, in order: float32 (N, H)."""
        self.prepare((), pids)
        return np.stack([self._p[p] for p in pids])

    def scores(self, qids: list[str], pids: list[str]) -> torch.Tensor:
        """The teacher's score of every query against every passage.

        Shapes:
            qids (B,), pids (N,) -> float32 tensor (B, N).
        """
        q = torch.from_numpy(self.query_vectors(qids))                    # (B, H)
        p = torch.from_numpy(self.passage_vectors(pids))                  # (N, H)
        return q @ p.T                                                    # (B, N)

    def targets(self, qids: list[str], pids: list[str], group: int) -> torch.Tensor:
        """The teacher's score of each query's own group of a batch (as
        :class:`~minidr.training.teacher_targets.TeacherTargets`, but exact for
        every passage: nothing outside a stored top k).

        Shapes:
            qids (B,), pids (B*G,) laid out ``[pos_0, neg_0_1, ..., pos_1, ...]``
            -> float32 tensor (B, G).

        Raises:
            ValueError: ``pids`` is not ``B * group`` long.
        """
        if len(pids) != len(qids) * group:
            raise ValueError(f"expected {len(qids)} x {group} pids, got {len(pids)}")
        q = torch.from_numpy(self.query_vectors(qids))                    # (B, H)
        p = torch.from_numpy(self.passage_vectors(pids))                  # (B*G, H)
        return torch.einsum("bh,bgh->bg", q, p.view(len(qids), group, -1))  # (B, G)
