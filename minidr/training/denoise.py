"""Denoised hard negatives (RocketQA): drop mined "negatives" a stronger scorer
judges relevant.

A dense retriever's top-ranked passages that are not the judged positive make
hard negatives, but MS MARCO judges about one passage per query, so many of
them are relevant passages nobody labeled: training pushes them down as
negatives (false negatives). RocketQA (Qu et al. 2021, section 4.2) re-scores
the mined candidates with a cross-encoder and keeps as negatives only those it
scores below a confidence threshold; the same scorer with a threshold labels
unlabeled queries (data augmentation).

* :func:`denoise`: split each query's mined candidates into kept negatives and
  dropped likely positives, given the scorer's scores and a threshold. A
  judged positive is never a negative: it is removed before the scorer is
  asked, whatever its score.
* :func:`threshold_table`: how to choose the threshold, on labeled queries:
  for each threshold, the share of passages scored above it that are judged
  positives (a lower bound on precision: unjudged passages may be relevant
  too) and the share of judged positives above it (recall).

Example::

    >>> kept, dropped = denoise({"q": ["p1", "p2", "p3"]}, {"q": {"p1"}},
    ...                         lambda q, pids: [0.9, 0.2][:len(pids)], 0.5)
    >>> kept, dropped
    ({'q': ['p3']}, {'q': ['p2']})

Reference:
    Qu et al. (2021), RocketQA: An Optimized Training Approach to Dense Passage
    Retrieval for Open-Domain Question Answering, NAACL, section 4.2.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

__all__ = ["denoise", "threshold_table"]


def denoise(candidates: dict[str, list[str]], positives: dict[str, set[str]],
            score: Callable[[str, list[str]], Sequence[float]],
            threshold: float) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each query's mined candidates, split by a stronger scorer.

    Args:
        candidates: qid -> mined passage ids, best first (e.g. the dense
            retriever's top-k).
        positives: qid -> judged positive pids; never negatives, never dropped.
        score: ``(qid, pids) -> scores``, one per pid (e.g. the teacher's).
        threshold: a candidate scored at or above it is a likely positive.

    Returns:
        ``(kept, dropped)``: qid -> negatives kept (order kept), and qid ->
        candidates dropped as likely positives.
    """
    kept, dropped = {}, {}
    for qid, pids in candidates.items():
        pool = [p for p in pids if p not in positives.get(qid, ())]
        scores = np.asarray(score(qid, pool), dtype=float) if pool else np.zeros(0)
        if len(scores) != len(pool):
            raise ValueError(f"the scorer returned {len(scores)} scores for "
                             f"{len(pool)} passages of query {qid!r}")
        kept[qid] = [p for p, s in zip(pool, scores) if s < threshold]
        dropped[qid] = [p for p, s in zip(pool, scores) if s >= threshold]
    return kept, dropped


def threshold_table(judged: Sequence[float], others: Sequence[float],
                    thresholds: Sequence[float]) -> pd.DataFrame:
    """Precision and recall of "scored at or above the threshold = relevant".

    Args:
        judged: the scorer's scores of judged positives.
        others: its scores of the other candidates of the same queries.
        thresholds: the thresholds to tabulate.

    Returns:
        One row per threshold: ``above`` (passages at or above it),
        ``precision`` (share of those that are judged positives: a lower bound),
        ``recall`` (share of judged positives at or above it).

    Example::

        >>> t = threshold_table([0.9, 0.8], [0.85, 0.1, 0.2], [0.5])
        >>> int(t.loc[0.5, "above"]), round(float(t.loc[0.5, "precision"]), 3)
        (3, 0.667)
    """
    judged, others = np.asarray(judged, float), np.asarray(others, float)
    rows = []
    for t in thresholds:
        hits, rest = int((judged >= t).sum()), int((others >= t).sum())
        rows.append({"threshold": t, "above": hits + rest,
                     "precision": hits / (hits + rest) if hits + rest else np.nan,
                     "recall": hits / len(judged) if len(judged) else np.nan})
    return pd.DataFrame(rows).set_index("threshold")
