"""Choosing a setting on some queries and reporting on others.

A setting (BM25's ``k1`` and ``b``, a fusion weight) tuned on the queries it
is then scored on measures the tuning as much as the method. Two honest uses
of one query set:

* :func:`best_setting`: the setting with the best mean on *tuning* queries
  (e.g. all of dev), then applied to other queries (DL19);
* :func:`cross_fitted`: the set itself, split into seeded folds, each fold
  scored with the setting that is best on the other folds, so that no query
  helps choose its own setting.

Example::

    runs = {(k1, b): bm25.search(dev.queries, k1=k1, b=b) for k1, b in grid}
    best = best_setting(runs, dev.qrels, "MRR@10")
    dev_run, chosen = cross_fitted(runs, dev.qrels, "MRR@10")
"""
from __future__ import annotations

from typing import Hashable

import numpy as np

from ..data.formats import Qrels, Run
from .metrics import evaluate

__all__ = ["best_setting", "cross_fitted"]


def best_setting(runs: dict[Hashable, Run], qrels: Qrels, measure: str,
                 min_rel: int = 1) -> Hashable:
    """The key of ``runs`` whose run has the best mean ``measure`` on ``qrels``'
    queries; ties go to the first key (the order of ``runs``).

    Example::

        >>> qrels = {"q": {"a": 1}}
        >>> best_setting({0.5: {"q": {"b": 2.0, "a": 1.0}},
        ...               0.9: {"q": {"a": 2.0, "b": 1.0}}}, qrels, "MRR@10")
        0.9
    """
    if not runs:
        raise ValueError("no settings to choose from")
    scores = {key: evaluate({q: r for q, r in run.items() if q in qrels}, qrels,
                            (measure,), min_rel=min_rel)[measure]
              for key, run in runs.items()}
    best = max(scores.values())
    return next(key for key, s in scores.items() if s == best)


def cross_fitted(runs: dict[Hashable, Run], qrels: Qrels, measure: str,
                 folds: int = 2, seed: int = 0,
                 min_rel: int = 1) -> tuple[Run, list[Hashable]]:
    """One run over ``qrels``' queries in which each fold of queries comes from
    the setting that is best on the other folds.

    Args:
        runs: setting -> run over (at least) ``qrels``' queries.
        qrels: the queries to split and score.
        measure: the measure to choose by.
        folds: number of seeded folds.

    Returns:
        ``(run, setting_of_each_fold)``.
    """
    qids = np.array(sorted(qrels))
    fold_of = np.random.default_rng(seed).permutation(len(qids)) % folds
    run: Run = {}
    chosen = []
    for f in range(folds):
        tune = {q: qrels[q] for q in qids[fold_of != f]}
        best = best_setting(runs, tune, measure, min_rel)
        chosen.append(best)
        run.update({q: runs[best][q] for q in qids[fold_of == f] if q in runs[best]})
    return run, chosen
