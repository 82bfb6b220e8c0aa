"""One evaluator for the whole book: ir_measures metrics and paired comparisons.

Every chapter reports the same measures, computed the same way:

* ``nDCG@10`` with graded gains (the primary measure on TREC DL 2019);
* ``MRR@10``, ``R@100``, ``R@1000`` counting a passage as relevant from the
  split's ``min_rel`` (grade >= 2 on DL19, the track's convention; >= 1 on dev).

Queries that a run does not answer score 0: a system is charged for silence.

Example::

    >>> from minidr import compare, evaluate
    >>> evaluate(mm.runs["dl19.bm25"], mm.splits["dl19"])        # doctest: +SKIP
    {'nDCG@10': 0.5058, 'MRR@10': 0.7024, 'R@100': 0.4906, 'R@1000': 0.4906}
    >>> compare({"bm25": run_a, "dpr": run_b}, mm.splits["dl19"],
    ...         baseline="bm25")                                 # doctest: +SKIP
"""
from __future__ import annotations

import ir_measures
import numpy as np
import pandas as pd
from scipy import stats

from ..data.formats import Qrels, Run, read_trec_run, write_trec_run
from ..data.minimarco import Split

__all__ = ["MEASURE_NAMES", "measures_for", "per_query", "evaluate", "evaluate_splits",
           "compare", "SPLIT_MEASURES", "compare_splits", "mean_interval",
           "detectable_difference", "read_trec_run", "write_trec_run"]

MEASURE_NAMES = ("nDCG@10", "MRR@10", "R@100", "R@1000")


def measures_for(min_rel: int = 1, names=MEASURE_NAMES) -> dict[str, object]:
    """Display name -> ir_measures measure, with binary measures at ``rel >= min_rel``.

    Known names: ``nDCG@k``, ``MRR@k``, ``R@k``, ``P@k``, ``Judged@k``.
    """
    out = {}
    for name in names:
        kind, _, cutoff = name.partition("@")
        if not cutoff.isdigit():
            raise ValueError(f"unknown measure {name!r}; use nDCG@k, MRR@k, R@k, P@k "
                             "or Judged@k, k a whole number")
        k = int(cutoff)
        rel = {"rel": min_rel} if min_rel > 1 else {}
        factory = {"nDCG": lambda: ir_measures.nDCG @ k,
                   "MRR": lambda: ir_measures.RR(**rel) @ k,
                   "R": lambda: ir_measures.R(**rel) @ k,
                   "P": lambda: ir_measures.P(**rel) @ k,
                   "Judged": lambda: ir_measures.Judged @ k}.get(kind)
        if factory is None:
            raise ValueError(f"unknown measure {name!r}; use nDCG@k, MRR@k, R@k, P@k "
                             "or Judged@k")
        out[name] = factory()
    return out


def _qrels_and_min_rel(target: Split | Qrels, min_rel: int | None) -> tuple[Qrels, int]:
    if isinstance(target, Split):
        return target.qrels, target.min_rel if min_rel is None else min_rel
    return target, 1 if min_rel is None else min_rel


def per_query(run: Run, target: Split | Qrels, names=MEASURE_NAMES,
              min_rel: int | None = None) -> pd.DataFrame:
    """Per-query scores: one row per judged query (0 where the run is silent).

    Args:
        run: qid -> pid -> score.
        target: a :class:`~minidr.data.minimarco.Split` or qrels.
        names: measure names (see :func:`measures_for`).
        min_rel: override the split's relevance threshold for binary measures.

    Returns:
        DataFrame, index ``qid`` (every query with judgments), one column per measure.
    """
    qrels, min_rel = _qrels_and_min_rel(target, min_rel)
    qrels = {q: r for q, r in qrels.items() if r}
    measures = measures_for(min_rel, names)
    by_measure = {str(m): name for name, m in measures.items()}
    table = pd.DataFrame(0.0, index=pd.Index(sorted(qrels), name="qid"),
                         columns=list(measures))
    run = {q: docs for q, docs in run.items() if q in qrels and docs}
    for row in ir_measures.iter_calc(list(measures.values()), qrels, run):
        table.loc[row.query_id, by_measure[str(row.measure)]] = row.value
    return table


def evaluate(run: Run, target: Split | Qrels, names=MEASURE_NAMES,
             min_rel: int | None = None) -> dict[str, float]:
    """Mean of each measure over all judged queries. See :func:`per_query`."""
    return {k: float(v)
            for k, v in per_query(run, target, names, min_rel).mean().items()}


def evaluate_splits(runs: dict[str, Run], splits: dict[str, Split],
                    names=MEASURE_NAMES) -> dict[str, dict[str, float]]:
    """``{split: metrics}`` for a run per split name
    (the shape a result record stores)."""
    return {s: evaluate(run, splits[s], names) for s, run in runs.items()}


def mean_interval(run: Run, target: Split | Qrels, measure: str,
                  n_resamples: int = 10_000,
                  seed: int = 0) -> tuple[float, float, float]:
    """A run's mean ``measure`` and its 95% percentile bootstrap interval over
    queries: the band around one point of a quality curve.

    A band says how much the point would move with other queries of the same
    kind. Two points' bands overlapping does not mean that the runs do not
    differ (a paired test, :func:`compare`, is stronger); it says how far to
    trust the curve's shape.

    Returns:
        ``(mean, low, high)``.
    """
    values = per_query(run, target, (measure,))[measure].to_numpy()   # (n_queries,)
    if np.allclose(values, values[0]):                 # no spread: nothing to resample
        return float(values[0]), float(values[0]), float(values[0])
    ci = stats.bootstrap((values,), np.mean, n_resamples=n_resamples,
                         confidence_level=0.95, method="percentile",
                         rng=np.random.default_rng(seed)).confidence_interval
    return float(values.mean()), float(ci.low), float(ci.high)


def detectable_difference(diffs, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest mean difference a paired test on these queries would detect.

    With ``n`` queries whose paired differences have standard deviation ``sd``,
    a true mean difference smaller than ``(z_{1-alpha/2} + z_{power}) * sd /
    sqrt(n)`` is found significant less than ``power`` of the time: the query
    set is too small to see it. 43 DL19 queries see far less than 583 dev ones.

    Args:
        diffs: per-query differences (run - baseline) of one measure.
        alpha: two-sided level (0.05).
        power: the chance of detecting a difference of the returned size (0.8).

    Shapes:
        diffs ``(n_queries,)``.

    Reference:
        Webber, Moffat and Zobel (2008), Statistical Power in Retrieval
        Experimentation, CIKM.

    Example::

        >>> round(detectable_difference([0.1, -0.1] * 50), 3)   # sd 0.1, n 100
        0.028
    """
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return float("nan")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * d.std(ddof=1) / np.sqrt(d.size))


def compare(runs: dict[str, Run], target: Split | Qrels, baseline: str,
            measure: str = "nDCG@10", names=MEASURE_NAMES, n_resamples: int = 10_000,
            seed: int = 0, min_rel: int | None = None) -> pd.DataFrame:
    """Runs side by side, each against ``baseline`` with a paired bootstrap interval.

    For each run, ``delta`` is the mean over queries of (run - baseline) on
    ``measure``; ``ci_low`` / ``ci_high`` is its 95% percentile bootstrap
    interval, resampling *queries* (scipy.stats.bootstrap). With 43 DL19
    queries, differences whose interval crosses 0 are indistinguishable from
    noise: the ``differs`` column says so.

    Args:
        runs: name -> run; must contain ``baseline``.
        target: a split or qrels.
        baseline: the name of the reference run.
        measure: the measure the differences are taken on.
        n_resamples, seed: bootstrap size and seed (fixed: tables are reproducible).

    Returns:
        DataFrame indexed by run name: the measures' means, then ``delta``,
        ``ci_low``, ``ci_high``, ``differs``.
    """
    if baseline not in runs:
        raise KeyError(f"baseline {baseline!r} is not among the runs {list(runs)}")
    if measure not in names:
        names = (*names, measure)
    tables = {name: per_query(run, target, names, min_rel)
              for name, run in runs.items()}
    base = tables[baseline][measure].to_numpy()
    rows = []
    for name, table in tables.items():
        diff = table[measure].to_numpy() - base  # (n_queries,), paired by qid
        row = {**table.mean().to_dict(), "delta": diff.mean()}
        if name == baseline or np.allclose(diff, diff[0]):
            row.update(ci_low=diff.mean(), ci_high=diff.mean())
        else:
            ci = stats.bootstrap((diff,), np.mean, n_resamples=n_resamples,
                                 confidence_level=0.95, method="percentile",
                                 rng=np.random.default_rng(seed)).confidence_interval
            row.update(ci_low=ci.low, ci_high=ci.high)
        row["detectable"] = (float("nan") if name == baseline
                             else detectable_difference(diff))
        row["differs"] = ("baseline" if name == baseline else
                          "yes" if row["ci_low"] > 0 or row["ci_high"] < 0
                          else "no (noise)")
        rows.append(pd.Series(row, name=name))
    return pd.DataFrame(rows).rename_axis("run")


SPLIT_MEASURES = {"dl19": "nDCG@10", "dev": "MRR@10"}


def compare_splits(runs: dict[str, dict[str, Run]], data, baseline: str,
                   measures: dict[str, str] = SPLIT_MEASURES,
                   columns=("nDCG@10", "MRR@10", "R@100")) -> dict[str, pd.DataFrame]:
    """:func:`compare` on each split, each on its headline measure: a technique
    against its control, with paired intervals on DL19 *and* dev.

    Args:
        runs: name -> ``{split: run}`` (e.g. :func:`minidr.retrieval.dense.dense_runs`);
            must contain ``baseline``.
        data: a :class:`~minidr.data.minimarco.MiniMarco` (its ``splits``).
        baseline: the control's name.
        measures: split -> the measure the differences are taken on
            (DL19: nDCG@10, 43 deeply judged queries; dev: MRR@10, 583 queries
            with about one judged passage each).
        columns: the measures shown before the comparison columns.

    Returns:
        split -> the :func:`compare` table, with ``columns`` then ``delta``,
        ``ci_low``, ``ci_high``, ``detectable``, ``differs``.
    """
    out = {}
    for split, measure in measures.items():
        table = compare({name: r[split] for name, r in runs.items()},
                        data.splits[split], baseline=baseline, measure=measure)
        out[split] = table[[*columns, "delta", "ci_low", "ci_high", "detectable",
                            "differs"]]
    return out
