"""RocketQA's denoising: judged positives are never negatives; the threshold splits."""
import math

import pytest

from minidr.training.denoise import denoise, threshold_table

CANDIDATES = {"q1": ["a", "b", "c", "d"], "q2": ["e", "f"], "q3": []}
POSITIVES = {"q1": {"b"}, "q2": {"e", "f"}}
SCORES = {"a": 0.9, "b": 0.95, "c": 0.1, "d": 0.5, "e": 0.0, "f": 0.99}


def by_table(qid, pids):
    return [SCORES[p] for p in pids]


def test_a_judged_positive_is_never_kept_nor_dropped():
    for threshold in (-1.0, 0.5, 2.0):       # whatever the scorer says
        kept, dropped = denoise(CANDIDATES, POSITIVES, by_table, threshold)
        for qid, positives in POSITIVES.items():
            assert not positives & set(kept[qid])
            assert not positives & set(dropped[qid])
        # every other candidate is in exactly one of the two
        for qid, pids in CANDIDATES.items():
            rest = [p for p in pids if p not in POSITIVES.get(qid, ())]
            assert sorted(kept[qid] + dropped[qid]) == sorted(rest)


def test_the_threshold_drops_likely_positives_and_keeps_order():
    asked = []

    def scorer(qid, pids):
        asked.append((qid, list(pids)))
        return by_table(qid, pids)

    kept, dropped = denoise(CANDIDATES, POSITIVES, scorer, 0.5)
    assert kept == {"q1": ["c"], "q2": [], "q3": []}
    assert dropped == {"q1": ["a", "d"], "q2": [], "q3": []}   # 0.5 is "at or above"
    assert ("q1", ["a", "c", "d"]) in asked               # the positive never asked
    assert all(qid != "q2" for qid, _ in asked)           # nothing left to score


def test_a_scorer_of_the_wrong_length_is_an_error():
    with pytest.raises(ValueError, match="returned 1 scores for 3 passages"):
        denoise(CANDIDATES, POSITIVES, lambda q, pids: [0.0], 0.5)


def test_threshold_table_by_hand():
    table = threshold_table([0.9, 0.7], [0.95, 0.6, 0.1, 0.0], [0.5, 0.8, 1.0])
    assert table.loc[0.5, "above"] == 4
    assert math.isclose(table.loc[0.5, "precision"], 2 / 4)
    assert math.isclose(table.loc[0.8, "precision"], 1 / 2)
    assert math.isclose(table.loc[0.8, "recall"], 1 / 2)
    assert table.loc[1.0, "above"] == 0 and math.isnan(table.loc[1.0, "precision"])
