"""Choosing a setting on other queries: the best setting by hand, and
cross-fitting where no query helps choose its own setting."""
import numpy as np
import pytest

from minidr.evaluation.tuning import best_setting, cross_fitted


def _runs():
    # setting "a" ranks the relevant passage first for q1, q2; "b" for q3, q4, q5
    qrels = {q: {"rel": 1} for q in ("q1", "q2", "q3", "q4", "q5")}
    good, bad = {"rel": 2.0, "x": 1.0}, {"x": 2.0, "rel": 1.0}
    runs = {"a": {q: good if q in ("q1", "q2") else bad for q in qrels},
            "b": {q: bad if q in ("q1", "q2") else good for q in qrels}}
    return runs, qrels


def test_best_setting_by_hand_and_ties_go_first():
    runs, qrels = _runs()
    assert best_setting(runs, qrels, "MRR@10") == "b"                # 3 of 5 first
    assert best_setting(runs, {q: qrels[q] for q in ("q1", "q2")}, "MRR@10") == "a"
    tie = {q: qrels[q] for q in ("q1", "q3")}                        # 0.75 each
    assert best_setting(runs, tie, "MRR@10") == "a"
    assert best_setting(dict(reversed(runs.items())), tie, "MRR@10") == "b"
    with pytest.raises(ValueError, match="no settings"):
        best_setting({}, qrels, "MRR@10")


def test_cross_fitted_uses_the_other_folds_choice():
    runs, qrels = _runs()
    run, chosen = cross_fitted(runs, qrels, "MRR@10", folds=2, seed=0)
    qids = np.array(sorted(qrels))
    fold_of = np.random.default_rng(0).permutation(len(qids)) % 2
    assert set(run) == set(qrels)
    for f in range(2):
        other = {q: qrels[q] for q in qids[fold_of != f]}
        assert chosen[f] == best_setting(runs, other, "MRR@10")       # by hand
        for q in qids[fold_of == f]:
            assert run[q] == runs[chosen[f]][q]
