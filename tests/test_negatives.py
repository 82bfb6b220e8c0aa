"""minidr.negatives: never a positive, never a duplicate, deterministic,
the right count and depth."""
from __future__ import annotations

import math
import random

import pytest

from minidr.training.negatives import (bm25_negatives, positives_of, random_negatives,
                                       top_k_negatives)

PIDS = [f"p{i}" for i in range(60)]
QIDS = [f"q{i}" for i in range(30)]


def toy_qrels(seed: int) -> dict[str, dict[str, int]]:
    """Each query: 1-5 positives (grades 1-3)
    and a few judged non-relevant (grade 0)."""
    rng = random.Random(seed)
    qrels = {}
    for qid in QIDS[:-3]:  # the last three queries have no qrels
        judged = rng.sample(PIDS, 8)
        qrels[qid] = {pid: (rng.randint(1, 3) if i < rng.randint(1, 5) else 0)
                      for i, pid in enumerate(judged)}
    return qrels


def toy_run(seed: int, size: int = 40) -> dict[str, dict[str, float]]:
    """Each query ranks ``size`` random passages, positives often near the top."""
    rng = random.Random(seed)
    return {qid: {pid: rng.random() for pid in rng.sample(PIDS, size)} for qid in QIDS}


def check(negatives, qrels, n, candidates_of):
    """The three promises, plus the count when enough candidates exist."""
    for qid, negs in negatives.items():
        positives = positives_of(qrels, qid)
        assert not positives & set(negs), (qid, positives & set(negs))
        assert len(negs) == len(set(negs)), negs
        allowed = [p for p in candidates_of(qid) if p not in positives]
        assert set(negs) <= set(allowed)
        assert len(negs) == min(n, len(allowed))


def test_positives_of():
    assert positives_of({"q": {"a": 2, "b": 0, "c": 1}}, "q") == {"a", "c"}
    assert positives_of({}, "q") == set()


@pytest.mark.parametrize("seed", range(20))
def test_random_negatives_properties(seed):
    qrels = toy_qrels(seed)
    for n in (1, 7, 55, 100):  # 100: more than there are candidates
        # duplicate pids too
        negs = random_negatives(QIDS, PIDS + PIDS[:5], qrels, n, seed=seed)
        assert list(negs) == QIDS
        check(negs, qrels, n, lambda qid: PIDS)


@pytest.mark.parametrize("seed", range(20))
def test_top_k_negatives_properties(seed):
    qrels, run = toy_qrels(seed), toy_run(seed)
    ranked = {q: sorted(docs, key=lambda p: (-docs[p], p)) for q, docs in run.items()}
    for n, depth, skip in [(1, 10, 0), (3, 20, 2), (5, 5, 0), (50, 100, 10),
                           (4, 12, 11)]:
        for sample in (True, False):
            negs = top_k_negatives(run, qrels, n, depth=depth, skip=skip, seed=seed,
                                   sample=sample)
            assert list(negs) == list(run)
            check(negs, qrels, n, lambda qid: ranked[qid][skip:depth])


def test_samplers_are_deterministic_for_a_seed():
    qrels, run = toy_qrels(0), toy_run(0)
    rand = lambda seed: random_negatives(QIDS, PIDS, qrels, 5, seed=seed)
    top = lambda seed: top_k_negatives(run, qrels, 5, depth=30, seed=seed)
    assert rand(3) == rand(3) and top(3) == top(3)
    assert rand(3) != rand(4) and top(3) != top(4)


def test_a_querys_negatives_do_not_depend_on_the_other_queries():
    qrels, run = toy_qrels(1), toy_run(1)
    alone = random_negatives(["q7"], PIDS, qrels, 5, seed=2)
    assert alone["q7"] == random_negatives(QIDS, PIDS, qrels, 5, seed=2)["q7"]
    assert (top_k_negatives({"q7": run["q7"]}, qrels, 5, depth=30, seed=2)["q7"]
            == top_k_negatives(run, qrels, 5, depth=30, seed=2)["q7"])


def test_random_negatives_cover_the_corpus():
    # Uniform over the corpus: over many seeds every non-positive passage shows up.
    qrels = {"q": {"p0": 1}}
    seen = set()
    for seed in range(200):
        seen.update(random_negatives(["q"], PIDS, qrels, 3, seed=seed)["q"])
    assert seen == set(PIDS) - {"p0"}


def test_bm25_negatives_respects_depth_and_skip():
    # d1 is rank 1, ..., d100 rank 100
    run = {"q": {f"d{r}": 100.0 - r for r in range(1, 101)}}
    qrels = {"q": {"d3": 1, "d5": 0}}  # d5 is judged non-relevant: allowed
    rank_of = {f"d{r}": r for r in range(1, 101)}
    seen = set()
    for seed in range(100):
        negs = bm25_negatives(run, qrels, n=4, depth=10, skip=2, seed=seed)["q"]
        assert len(negs) == 4
        assert all(3 <= rank_of[p] <= 10 for p in negs) and "d3" not in negs
        # rank order
        assert [rank_of[p] for p in negs] == sorted(rank_of[p] for p in negs)
        seen.update(negs)
    # ranks 3..10 minus the positive d3
    assert seen == {f"d{r}" for r in (4, 5, 6, 7, 8, 9, 10)}


def test_bm25_negatives_top_without_sampling_is_dprs_choice():
    run = {"q": {"a": 9.0, "b": 8.0, "c": 7.0, "d": 6.0}, "empty": {}}
    qrels = {"q": {"a": 1}}
    assert bm25_negatives(run, qrels, n=1, sample=False) == {"q": ["b"], "empty": []}
    assert (bm25_negatives(run, qrels, n=2, skip=2, sample=False)
            == {"q": ["c", "d"], "empty": []})
    # only 2 candidates
    assert top_k_negatives(run, qrels, n=10, depth=3)["q"] == ["b", "c"]


def test_top_k_negatives_ties_are_broken_by_pid():
    run = {"q": {"z": 1.0, "y": 1.0, "x": 1.0}}
    assert top_k_negatives(run, {}, n=2, depth=2, sample=False) == {"q": ["x", "y"]}


def test_bad_depth_and_skip():
    with pytest.raises(ValueError):
        top_k_negatives({"q": {"a": 1.0}}, {}, n=1, depth=5, skip=5)
    with pytest.raises(ValueError):
        bm25_negatives({"q": {"a": 1.0}}, {}, n=1, depth=5, skip=-1)


def test_likely_false_negatives_counts_the_teachers_top_passages():
    import numpy as np

    from minidr.data.teacher_scores import TeacherScores
    from minidr.training.negatives import likely_false_negatives
    scores = TeacherScores(np.array([1, 2]), np.array([[7, 8, 9], [3, 4, 5]]),
                           np.array([[0.9, 0.8, 0.1], [0.7, 0.6, 0.5]],
                                    dtype=np.float16))
    negatives = {"1": ["8", "9"], "2": ["5", "6"], "unscored": ["7", "8"]}
    assert likely_false_negatives(negatives, scores, top=2) == pytest.approx(1 / 4)
    assert likely_false_negatives(negatives, scores, top=3) == pytest.approx(3 / 4)
    assert math.isnan(likely_false_negatives({"unscored": ["7"]}, scores))
