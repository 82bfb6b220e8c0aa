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
