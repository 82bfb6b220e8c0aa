"""Re-ranking: a cross-encoder re-scores the top of a first-stage run.

A cross-encoder (:class:`~minidr.models.cross_encoder.CrossEncoder`) cannot
index a corpus: every (query, passage) pair needs its own forward pass. It
re-scores the first ``depth`` passages a first stage (BM25, a bi-encoder)
retrieved, trading latency for quality (chapter 03).

Reference:
    Nogueira & Cho (2019), Passage Re-ranking with BERT, arXiv 1901.04085.
"""
from __future__ import annotations

from ..data.formats import rank
from ..models.cross_encoder import CrossEncoder

__all__ = ["rerank"]


def rerank(model: CrossEncoder, run: dict[str, dict[str, float]],
           queries: dict[str, str], corpus: dict[str, str], depth: int = 100,
           batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Re-score the top-``depth`` passages of each query of ``run`` with the
    cross-encoder.

    Returns:
        A run over the same (at most ``depth``) passages per query,
        with cross-encoder scores.
    """
    top = rank(run, depth)
    pairs = [(qid, pid) for qid, pids in top.items() if qid in queries for pid in pids]
    scores = model.score([(queries[q], corpus[p]) for q, p in pairs],
                         batch_size=batch_size)
    out: dict[str, dict[str, float]] = {}
    for (qid, pid), s in zip(pairs, scores):
        out.setdefault(qid, {})[pid] = float(s)
    return out
