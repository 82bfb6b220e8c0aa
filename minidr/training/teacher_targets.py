"""The teacher's scores as training targets: its candidates and what it thinks of each.

Distillation trains a model on the teacher's *scores*, not only on its top-1
label: how much better the positive is than each negative. Both pieces come
from the stored top-k of every training query
(:class:`~minidr.data.teacher_scores.TeacherScores`):

* :func:`teacher_negatives`: each query's candidates from the teacher's ranks
  ``[lo, hi)``, its positive removed (a negative sampler's ``qid -> [pid]``);
* :class:`TeacherTargets`: the teacher's score of every (query, passage) of a
  batch laid out in groups, ``(B, G)``: the target of listwise KL
  (:func:`~minidr.training.losses.distill_kl`) or Margin-MSE
  (:func:`~minidr.training.losses.margin_mse`).

The teacher scored only its own top ``k`` passages per query. Two rules fill
the gaps, and both are bounds, not guesses: a passage outside the top ``k``
gets the query's ``k``-th score (it scored at most that), and a judged positive
that the teacher missed gets the query's top score (the judgment outranks the
teacher).

Example::

    >>> import numpy as np
    >>> from minidr.data.teacher_scores import TeacherScores
    >>> s = TeacherScores(np.array([1]), np.array([[7, 8, 9]]),
    ...                   np.array([[0.9, 0.8, 0.1]], dtype=np.float16))
    >>> teacher_negatives(s, [Example("1", "q", "7")], ["7", "8", "9"], ranks=(1, 3))
    {'1': ['8']}
    >>> t = TeacherTargets(s)(["1"], ["7", "9", "5"], group=3)   # "5": not in its top 3
    >>> t.shape, [round(float(v), 2) for v in t[0]]
    (torch.Size([1, 3]), [0.9, 0.1, 0.1])
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from ..data.teacher_scores import TeacherScores
from .batches import Example

__all__ = ["teacher_negatives", "TeacherTargets"]


def teacher_negatives(scores: TeacherScores, examples: list[Example],
                      corpus: Iterable[str],
                      ranks: tuple[int, int] = (3, 30)) -> dict[str, list[str]]:
    """Each example's negatives: the teacher's ranks ``[lo, hi)`` (1-based) of its
    query, without its positive and without passages outside ``corpus``.

    The top ranks are left out by default: the passages the teacher ranks just
    below its top-1 are often relevant too (see
    :func:`~minidr.training.negatives.likely_false_negatives`).

    Args:
        scores: the teacher's stored top-k.
        examples: the training examples (a query without teacher scores gets none).
        corpus: the passage ids that may be used (e.g. the ``ci`` slice's).
        ranks: ``[lo, hi)``, with ``1 <= lo < hi <= k + 1``.

    Returns:
        qid -> negative pids, best-scored first.
    """
    lo, hi = ranks
    if not 1 <= lo < hi <= scores.k + 1:
        raise ValueError(f"ranks [lo, hi) must satisfy 1 <= lo < hi <= k + 1 "
                         f"(the teacher kept k={scores.k} per query), "
                         f"got {ranks}")
    rows, keep = scores.row_of(), set(corpus)
    out: dict[str, list[str]] = {}
    for ex in examples:
        row = rows.get(ex.qid)
        if row is not None:
            out[ex.qid] = [p for p in map(str, scores.pids[row, lo - 1:hi - 1])
                           if p != ex.positive and p in keep]
    return out


class TeacherTargets:
    """``targets(qids, pids, group) -> (B, G)``: the teacher's scores of a batch.

    Args:
        scores: the teacher's stored top-k per query.

    Shapes:
        qids ``(B,)``, pids ``(B*G,)`` laid out ``[pos_0, neg_0_1, ..., pos_1, ...]``
        (as :class:`~minidr.training.batches.GroupedBatches` lays them out);
        returns a float32 tensor ``(B, G)``.

    Raises:
        ValueError: a query the teacher never scored (distil only queries in
            ``scores``), or pids that are not ``B * group`` long.
    """

    def __init__(self, scores: TeacherScores):
        self.scores, self.rows = scores, scores.row_of()
        self._cache: dict[str, dict[str, float]] = {}

    def of_query(self, qid: str) -> dict[str, float]:
        """The teacher's stored scores of ``qid``: pid -> score, best first."""
        if qid not in self._cache:
            if qid not in self.rows:
                raise ValueError(f"the teacher has no scores for query {qid!r}: "
                                 "distil only the queries of the teacher scores "
                                 "(python -m minidr teacher-scores)")
            row = self.rows[qid]
            self._cache[qid] = {str(p): float(s) for p, s in
                                zip(self.scores.pids[row], self.scores.scores[row])}
        return self._cache[qid]

    def scores_of(self, qid: str, pids: list[str]) -> np.ndarray:
        """The teacher's stored score of each of ``pids``, and for a passage
        outside its stored top k the query's k-th score (an upper bound).

        Shapes:
            pids (n,) -> float32 (n,).
        """
        known = self.of_query(qid)
        floor = next(reversed(known.values()))
        return np.array([known.get(pid, floor) for pid in pids], dtype=np.float32)

    def group(self, qid: str, pids: list[str]) -> np.ndarray:
        """The teacher's scores of one query's group, its positive first, with
        the two bounds for passages outside its stored top k.

        Shapes:
            pids (G,) -> float32 (G,).
        """
        known = self.of_query(qid)
        scores = self.scores_of(qid, pids)
        # positive (first) missed by the teacher: its top score
        if len(pids) and pids[0] not in known:
            scores[0] = next(iter(known.values()))
        return scores

    def __call__(self, qids: list[str], pids: list[str], group: int) -> torch.Tensor:
        if len(pids) != len(qids) * group:
            raise ValueError(f"expected {len(qids)} x {group} pids, got {len(pids)}")
        out = np.stack([self.group(qid, pids[i * group:(i + 1) * group])
                        for i, qid in enumerate(qids)])                   # (B, G)
        return torch.from_numpy(out)
