"""minidr.evaluate: published figures, hand-computed toy cases, and compare()."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from minidr.data.minimarco import Split
from minidr.evaluation.metrics import (MEASURE_NAMES, SPLIT_MEASURES, compare,
                                       compare_splits, evaluate, mean_interval,
                                       evaluate_splits, measures_for, per_query)

# The README of the data directory: (nDCG@10, RR@10 at rel>=2, R@100 at rel>=2) on DL19.
# Two of its figures were rounded twice (0.67248 -> 0.6725 -> 0.673 for bm25-rm3 RR,
# 0.62345 -> 0.624 for ada2 R@100), so the table is checked to 1e-3; the headline
# figures are checked to 3 decimals exactly below.
PUBLISHED = {
    "dl19.bm25": (0.506, 0.702, 0.491),
    "dl19.bm25-rm3": (0.522, 0.673, 0.526),
    "dl19.tasb": (0.721, 0.875, 0.610),
    "dl19.ada2": (0.704, 0.835, 0.624),
    "dl19.splade-pp-ed": (0.731, 0.919, 0.639),
    "dl19.repllama": (0.738, 0.908, 0.658),
}


def _run(*pids: str) -> dict[str, float]:
    """A ranking as a run: the first pid gets the highest score, no ties."""
    return {p: float(len(pids) - i) for i, p in enumerate(pids)}


# --- published DL19 figures -----------------------------------------------------------

@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_dl19_figures(full, name):
    got = evaluate(full.runs[name], full.splits["dl19"])
    assert list(got) == list(MEASURE_NAMES)
    ndcg, rr, r100 = PUBLISHED[name]
    assert got["nDCG@10"] == pytest.approx(ndcg, abs=1e-3)
    assert got["MRR@10"] == pytest.approx(rr, abs=1e-3)
    assert got["R@100"] == pytest.approx(r100, abs=1e-3)
    assert got["R@1000"] == pytest.approx(got["R@100"])  # the runs are 100 deep


def test_headline_dl19_figures_to_three_decimals(full):
    bm25 = evaluate(full.runs["dl19.bm25"], full.splits["dl19"])
    tasb = evaluate(full.runs["dl19.tasb"], full.splits["dl19"])
    assert round(bm25["nDCG@10"], 3) == 0.506
    assert round(bm25["MRR@10"], 3) == 0.702
    assert round(bm25["R@100"], 3) == 0.491
    assert round(tasb["nDCG@10"], 3) == 0.721


def test_dl19_binary_measures_use_grade_2(full):
    """RR at rel>=1 differs from the split's default (rel>=2):
    min_rel is really applied."""
    split = full.splits["dl19"]
    strict = evaluate(full.runs["dl19.bm25"], split, names=("MRR@10",))["MRR@10"]
    lenient = evaluate(full.runs["dl19.bm25"], split, names=("MRR@10",),
                       min_rel=1)["MRR@10"]
    assert strict == pytest.approx(0.702, abs=5e-4)
    assert lenient > strict + 0.05


# --- hand-computed toy cases ----------------------------------------------------------

QRELS = {"q1": {"a": 3, "b": 1, "c": 2, "d": 0},
         "q2": {"x": 1, "y": 1}}
TOY_RUN = {"q1": _run("b", "d", "a", "c"),   # grades 1, 0, 3, 2
           "q2": _run("z", "x")}             # unjudged, then relevant


def test_ndcg_at_10_by_hand():
    dcg = 1 / math.log2(2) + 0 / math.log2(3) + 3 / math.log2(4) + 2 / math.log2(5)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    q2 = (1 / math.log2(3)) / (1 / math.log2(2) + 1 / math.log2(3))
    table = per_query(TOY_RUN, QRELS, names=("nDCG@10",))
    assert table.loc["q1", "nDCG@10"] == pytest.approx(dcg / idcg)
    assert table.loc["q2", "nDCG@10"] == pytest.approx(q2)
    mean = evaluate(TOY_RUN, QRELS, names=("nDCG@10",))["nDCG@10"]
    assert mean == pytest.approx((dcg / idcg + q2) / 2)


def test_mrr_at_10_by_hand_and_min_rel():
    assert (evaluate(TOY_RUN, QRELS, names=("MRR@10",))["MRR@10"]
            == pytest.approx((1 + 1 / 2) / 2))
    # at rel >= 2 the first relevant passage of q1 is "a", at rank 3
    q1 = {"q1": QRELS["q1"]}
    assert (evaluate(TOY_RUN, q1, names=("MRR@10",), min_rel=2)["MRR@10"]
            == pytest.approx(1 / 3))
    split = Split("dl19", {"q1": "text"}, q1, min_rel=2)
    assert evaluate(TOY_RUN, split, names=("MRR@10",))["MRR@10"] == pytest.approx(1 / 3)
    assert (evaluate(TOY_RUN, split, names=("MRR@10",), min_rel=1)["MRR@10"]
            == pytest.approx(1.0))


def test_recall_by_hand():
    got = evaluate(TOY_RUN, QRELS, names=("R@2", "R@100"))
    # q1: relevant (rel>=1) a, b, c; the top 2 (b, d) hold one, the run all three.
    # q2: relevant x, y; the run retrieves only x (rank 2).
    assert got["R@2"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert got["R@100"] == pytest.approx((1 + 1 / 2) / 2)
    split = Split("dl19", {"q1": "t"}, {"q1": QRELS["q1"]}, min_rel=2)
    # at rel >= 2: relevant a, c; the top 3 (b, d, a) hold one of them
    assert evaluate(TOY_RUN, split, names=("R@3",))["R@3"] == pytest.approx(1 / 2)


def test_cutoff_is_applied():
    pids = [f"n{i}" for i in range(10)] + ["rel"]
    got = evaluate({"q": _run(*pids)}, {"q": {"rel": 1}},
                   names=("nDCG@10", "MRR@10", "R@100"))
    assert got == {"nDCG@10": 0.0, "MRR@10": 0.0, "R@100": 1.0}


def test_query_absent_from_run_counts_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    run = {"q1": _run("a"), "q3": {}, "extra": _run("zzz")}  # q2 absent, q3 empty
    table = per_query(run, qrels)
    assert list(table.index) == ["q1", "q2", "q3"]  # the judged queries, not "extra"
    assert table.loc["q1"].tolist() == [1.0] * len(MEASURE_NAMES)
    assert table.loc[["q2", "q3"]].to_numpy().sum() == 0.0
    assert evaluate(run, qrels)["nDCG@10"] == pytest.approx(1 / 3)


def test_unjudged_query_is_not_averaged():
    qrels = {"q1": {"a": 1}, "q9": {}}
    assert list(per_query({"q1": _run("a")}, qrels).index) == ["q1"]
    assert evaluate({"q1": _run("a")}, qrels)["MRR@10"] == 1.0


def test_evaluate_splits_shape():
    splits = {"dl19": Split("dl19", {"q1": "t"}, {"q1": QRELS["q1"]}, 2),
              "dev": Split("dev", {"q2": "t"}, {"q2": QRELS["q2"]}, 1)}
    got = evaluate_splits({"dl19": TOY_RUN, "dev": TOY_RUN}, splits)
    assert set(got) == {"dl19", "dev"}
    assert got["dl19"]["MRR@10"] == pytest.approx(1 / 3)
    assert got["dev"]["MRR@10"] == pytest.approx(1 / 2)
    assert all(isinstance(v, float) for m in got.values() for v in m.values())


@pytest.mark.parametrize("name", ["MAP@10", "nDCG", "@10"])
def test_unknown_measure_raises_value_error(name):
    with pytest.raises(ValueError):
        evaluate(TOY_RUN, QRELS, names=(name,))


def test_measures_for_known_names():
    assert set(measures_for(2, ("nDCG@5", "MRR@10", "R@20", "P@3", "Judged@10"))) == {
        "nDCG@5", "MRR@10", "R@20", "P@3", "Judged@10"}


# --- compare --------------------------------------------------------------------------

def _ranked_split(n: int = 20) -> Split:
    """n queries, each with one relevant passage "rel"."""
    qrels = {f"q{i:02d}": {"rel": 1} for i in range(n)}
    return Split("dev", {q: "t" for q in qrels}, qrels, 1)


def _run_with_rel_at(ranks: dict[str, int]) -> dict:
    return {q: _run(*[f"n{i}" for i in range(r - 1)], "rel") for q, r in ranks.items()}


def test_compare_identical_runs():
    split = _ranked_split()
    base = _run_with_rel_at({q: 1 + i % 4 for i, q in enumerate(split.queries)})
    table = compare({"base": base, "same": {q: dict(d) for q, d in base.items()}},
                    split, "base")
    assert table.index.name == "run"
    assert list(table.index) == ["base", "same"]
    for col in (*MEASURE_NAMES, "delta", "ci_low", "ci_high", "differs"):
        assert col in table.columns
    assert table.loc["base", "differs"] == "baseline"
    assert table.loc["same", "differs"] == "no (noise)"
    for name in ("base", "same"):
        assert (table.loc[name, ["delta", "ci_low", "ci_high"]].tolist()
                == [0.0, 0.0, 0.0])


def test_compare_constant_margin_is_a_difference():
    split = _ranked_split()
    base = _run_with_rel_at({q: 2 for q in split.queries})    # RR 1/2 everywhere
    better = _run_with_rel_at({q: 1 for q in split.queries})  # RR 1 everywhere
    table = compare({"base": base, "better": better}, split, "base", measure="MRR@10")
    row = table.loc["better"]
    assert row["delta"] == pytest.approx(0.5)
    assert row["ci_low"] > 0 and row["ci_high"] >= row["ci_low"]
    assert row["differs"] == "yes"
    assert (row["MRR@10"] == pytest.approx(1.0)
            and table.loc["base", "MRR@10"] == pytest.approx(0.5))


def test_compare_better_everywhere_by_varying_margins():
    """The bootstrap branch: every resampled mean is positive, so the CI is too."""
    split = _ranked_split()
    qids = list(split.queries)
    base = _run_with_rel_at({q: 2 + i % 5 for i, q in enumerate(qids)})
    better = _run_with_rel_at({q: 1 for q in qids})
    worse = _run_with_rel_at({q: 8 for q in qids})
    table = compare({"base": base, "better": better, "worse": worse}, split, "base",
                    measure="MRR@10", n_resamples=2000)
    assert table.loc["better", "ci_low"] > 0
    # a real interval
    assert table.loc["better", "ci_low"] < table.loc["better", "ci_high"]
    assert table.loc["better", "differs"] == "yes"
    assert table.loc["worse", "ci_high"] < 0
    assert table.loc["worse", "differs"] == "yes"


def test_compare_noise_crosses_zero():
    split = _ranked_split()
    qids = list(split.queries)
    base = _run_with_rel_at({q: 2 for q in qids})
    # +1/2, -1/2
    mixed = _run_with_rel_at({q: 1 if i % 2 else 12 for i, q in enumerate(qids)})
    table = compare({"base": base, "mixed": mixed}, split, "base", measure="MRR@10",
                    n_resamples=2000)
    row = table.loc["mixed"]
    assert row["delta"] == pytest.approx(0.0)
    assert row["ci_low"] < 0 < row["ci_high"]
    assert row["differs"] == "no (noise)"


def test_compare_published_runs_reproducible(full):
    runs = {n: full.runs[n] for n in ("dl19.bm25", "dl19.tasb", "dl19.bm25-rm3")}
    split = full.splits["dl19"]
    a = compare(runs, split, "dl19.bm25", n_resamples=2000, seed=0)
    b = compare(runs, split, "dl19.bm25", n_resamples=2000, seed=0)
    pd.testing.assert_frame_equal(a, b)
    c = compare(runs, split, "dl19.bm25", n_resamples=2000, seed=1)
    assert (c.loc["dl19.tasb", "ci_low"], c.loc["dl19.tasb", "ci_high"]) != \
        (a.loc["dl19.tasb", "ci_low"], a.loc["dl19.tasb", "ci_high"])
    tasb = a.loc["dl19.tasb"]
    assert tasb["delta"] == pytest.approx(tasb["nDCG@10"]
                                          - a.loc["dl19.bm25", "nDCG@10"])
    assert tasb["delta"] == pytest.approx(0.721 - 0.506, abs=1e-3)
    assert 0 < tasb["ci_low"] < tasb["delta"] < tasb["ci_high"]
    assert tasb["differs"] == "yes"
    rm3 = a.loc["dl19.bm25-rm3"]  # +0.016 on 43 queries: noise
    assert rm3["ci_low"] < 0 < rm3["ci_high"] and rm3["differs"] == "no (noise)"


def test_compare_measure_outside_names_is_added():
    split = _ranked_split()
    base = _run_with_rel_at({q: 2 for q in split.queries})
    table = compare({"base": base}, split, "base", measure="R@1", names=("nDCG@10",))
    assert "R@1" in table.columns and "nDCG@10" in table.columns
    assert table.loc["base", "R@1"] == 0.0


def test_compare_unknown_measure_raises():
    split = _ranked_split()
    base = _run_with_rel_at({q: 2 for q in split.queries})
    with pytest.raises(ValueError):
        compare({"base": base}, split, "base", measure="MAP@10")


def test_compare_missing_baseline_raises_key_error():
    split = _ranked_split()
    base = _run_with_rel_at({q: 2 for q in split.queries})
    with pytest.raises(KeyError, match="bm25"):
        compare({"dense": base}, split, "bm25")


def test_detectable_difference_shrinks_with_more_queries():
    import numpy as np

    from minidr.evaluation.metrics import detectable_difference

    rng = np.random.default_rng(0)
    dl19_like, dev_like = rng.normal(0, 0.2, 43), rng.normal(0, 0.2, 583)
    assert detectable_difference(dl19_like) > 3 * detectable_difference(dev_like)
    assert np.isnan(detectable_difference([0.1]))
    # (1.96 + 0.84) * sd / sqrt(n), by hand
    d = np.array([0.0, 0.2, 0.4, 0.2])
    assert detectable_difference(d) == pytest.approx(2.8016 * d.std(ddof=1) / 2,
                                                     rel=1e-3)


def test_compare_splits_compares_each_split_on_its_measure():
    dl19, dev = _ranked_split(12), _ranked_split(15)
    data = SimpleNamespace(splits={"dl19": dl19, "dev": dev})
    runs = {name: {s: _run_with_rel_at({q: r for q in split.queries})
                   for s, split in (("dl19", dl19), ("dev", dev))}
            for name, r in (("control", 2), ("method", 1))}
    tables = compare_splits(runs, data, baseline="control")
    assert list(tables) == list(SPLIT_MEASURES) == ["dl19", "dev"]
    for split, table in tables.items():
        assert list(table.index) == ["control", "method"]
        assert list(table.columns) == ["nDCG@10", "MRR@10", "R@100", "delta",
                                       "ci_low", "ci_high", "detectable", "differs"]
        assert table.loc["control", "differs"] == "baseline"
    # dev's delta is on MRR@10 (1 - 1/2); DL19's on nDCG@10 (1 - 1/log2(3))
    assert tables["dev"].loc["method", "delta"] == pytest.approx(0.5)
    assert tables["dl19"].loc["method", "delta"] == pytest.approx(1 - 1 / math.log2(3))
    with pytest.raises(KeyError, match="baseline"):
        compare_splits(runs, data, baseline="missing")


def test_mean_interval_brackets_the_mean_and_is_seeded():
    split = _ranked_split(20)
    run = _run_with_rel_at({q: 1 + i % 4 for i, q in enumerate(split.queries)})
    mean, low, high = mean_interval(run, split, "MRR@10")
    assert mean == pytest.approx(evaluate(run, split)["MRR@10"])
    assert low < mean < high
    assert mean_interval(run, split, "MRR@10") == (mean, low, high)
    flat = _run_with_rel_at({q: 2 for q in split.queries})
    assert mean_interval(flat, split, "MRR@10") == (0.5, 0.5, 0.5)
