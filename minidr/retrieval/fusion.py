"""Hybrid retrieval: fuse a dense and a sparse ranking of the same queries.

Two rules, both on the top-``k'`` lists the two retrievers already returned (no
re-scoring of anything else):

* **Linear fusion** (Ma et al., 2021; pyserini's ``HybridSearcher``): per query,
  ``s(p) = s_dense(p) + alpha * s_sparse(p)``. A passage that only one list
  holds takes the *other* list's minimum score in its top-``k'`` (it ranked
  below everything that list returned). With ``normalize``, each list's scores
  are first centred and scaled by their range, ``(s - (min + max) / 2) / (max -
  min)``, so that cosine scores in [-1, 1] and BM25 scores near 20 are on one
  scale and ``alpha`` means the same for every query.
* **Reciprocal rank fusion** (Cormack et al., 2009): ``s(p) = sum_r 1 / (c +
  rank_r(p))`` over the runs that hold ``p``; ranks only, no scores, no weight
  to tune (``c = 60`` in the paper).

Ties are broken by passage id, so a fused run is a pure function of its inputs.

Example::

    fused = fuse_linear(dense_run, bm25_run, alpha=0.3)
    fused = reciprocal_rank_fusion([dense_run, bm25_run])

References:
    Ma et al. (2021), A Replication Study of Dense Passage Retriever,
    arXiv 2104.05740 (section 3: hybrid retrieval).
    Cormack, Clarke and Buettcher (2009), Reciprocal Rank Fusion Outperforms
    Condorcet and Individual Rank Learning Methods, SIGIR.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..data.formats import Qrels, Run

__all__ = ["top_k", "fuse_linear", "reciprocal_rank_fusion", "alpha_sweep",
           "cross_fitted_fusion"]


def top_k(scores: dict[str, float], k: int) -> dict[str, float]:
    """The ``k`` highest-scored passages, best first, ties broken by passage id."""
    return dict(sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k])


def _centred(scores: dict[str, float], normalize: bool):
    """``(min, f)``: the list's minimum and its score map ``f`` (identity, or centred
    and divided by the range; a list of one distinct score maps to 0)."""
    if not scores:
        return 0.0, lambda s: 0.0
    lo, hi = min(scores.values()), max(scores.values())
    if not normalize:
        return lo, lambda s: s
    if hi == lo:
        return lo, lambda s: 0.0
    return lo, lambda s: (s - (lo + hi) / 2) / (hi - lo)


def fuse_linear(dense: Run, sparse: Run, alpha: float, k: int = 1000,
                normalize: bool = True) -> Run:
    """``s_dense + alpha * s_sparse`` per query, the missing-passage rule of Ma et al.

    Args:
        dense, sparse: runs (qid -> pid -> score) of the same queries, each a
            top-``k'`` list; a query missing from one run fuses with an empty list.
        alpha: the sparse list's weight (0: the dense ranking of the union).
        k: depth of the fused run.
        normalize: centre and range-scale each list's scores first.

    Returns:
        Run: qid -> the ``k`` best fused passages.
    """
    fused = {}
    for qid in sorted(dense.keys() | sparse.keys()):
        d, s = dense.get(qid, {}), sparse.get(qid, {})
        d_min, d_norm = _centred(d, normalize)
        s_min, s_norm = _centred(s, normalize)
        fused[qid] = top_k({p: d_norm(d.get(p, d_min)) + alpha * s_norm(s.get(p, s_min))
                            for p in d.keys() | s.keys()}, k)
    return fused


def reciprocal_rank_fusion(runs: Sequence[Run], c: float = 60.0,
                           k: int = 1000) -> Run:
    """Reciprocal rank fusion of any number of runs.

    Args:
        runs: runs of the same queries; ranks are 1-based, by score, ties in a run
            broken by passage id.
        c: the damping constant (60 in Cormack et al.).
        k: depth of the fused run.

    Returns:
        Run: qid -> pid -> ``sum_r 1 / (c + rank_r(pid))``, the ``k`` best.
    """
    fused = {}
    for qid in sorted(set().union(*(run.keys() for run in runs))):
        scores: dict[str, float] = {}
        for run in runs:
            ranked = top_k(run.get(qid, {}), len(run.get(qid, {})))
            for rank, pid in enumerate(ranked, start=1):
                scores[pid] = scores.get(pid, 0.0) + 1.0 / (c + rank)
        fused[qid] = top_k(scores, k)
    return fused


def alpha_sweep(dense: Run, sparse: Run, qrels: Qrels, alphas: Sequence[float],
                measure: str, min_rel: int = 1) -> pd.Series:
    """The mean ``measure`` of :func:`fuse_linear` at each ``alpha``, on ``qrels``'
    queries (pass the tuning queries only: never the queries you report on).

    Returns:
        ``pd.Series`` indexed by alpha.
    """
    from ..evaluation.metrics import evaluate

    dense = {q: r for q, r in dense.items() if q in qrels}     # fuse only these
    sparse = {q: r for q, r in sparse.items() if q in qrels}
    return pd.Series({a: evaluate(fuse_linear(dense, sparse, a), qrels, (measure,),
                                  min_rel=min_rel)[measure] for a in alphas},
                     name=measure).rename_axis("alpha")


def cross_fitted_fusion(dense: Run, sparse: Run, qrels: Qrels,
                        alphas: Sequence[float], measure: str, folds: int = 2,
                        seed: int = 0, min_rel: int = 1) -> tuple[Run, list[float]]:
    """Linear fusion of ``qrels``' queries where no query helps choose its own alpha.

    The queries are split into ``folds`` seeded folds; each fold is fused with the
    alpha that is best (by :func:`alpha_sweep`) on the other folds. The result can
    be evaluated on all of ``qrels`` without tuning on the test queries.

    Returns:
        ``(run, alpha_of_each_fold)``.
    """
    from ..evaluation.tuning import cross_fitted

    dense = {q: r for q, r in dense.items() if q in qrels}     # fuse only these
    sparse = {q: r for q, r in sparse.items() if q in qrels}
    runs = {float(a): fuse_linear(dense, sparse, a) for a in alphas}
    return cross_fitted(runs, qrels, measure, folds, seed, min_rel)
