"""Hybrid fusion: hand computations, pyserini's own rule, RRF, no tuning on test."""
from __future__ import annotations

import numpy as np
import pytest

from minidr.retrieval.fusion import (alpha_sweep, cross_fitted_fusion, fuse_linear,
                                     reciprocal_rank_fusion, top_k)

DENSE = {"q": {"a": 0.9, "b": 0.5, "c": 0.1}}
SPARSE = {"q": {"b": 20.0, "d": 12.0, "a": 10.0}}


def test_linear_fusion_by_hand_with_the_missing_passage_rule():
    fused = fuse_linear(DENSE, SPARSE, alpha=0.1, normalize=False)["q"]
    # c is missing from the sparse list: it takes that list's minimum, 10.0;
    # d is missing from the dense list: it takes 0.1
    want = {"a": 0.9 + 1.0, "b": 0.5 + 2.0, "c": 0.1 + 1.0, "d": 0.1 + 1.2}
    assert fused == pytest.approx(want)
    assert list(fused) == ["b", "a", "d", "c"]


def test_normalised_fusion_by_hand():
    fused = fuse_linear(DENSE, SPARSE, alpha=1.0)["q"]
    dense = lambda s: (s - 0.5) / 0.8                     # centre 0.5, range 0.8
    sparse = lambda s: (s - 15.0) / 10.0                  # centre 15, range 10
    want = {"a": dense(0.9) + sparse(10), "b": dense(0.5) + sparse(20),
            "c": dense(0.1) + sparse(10), "d": dense(0.1) + sparse(12)}
    assert fused == pytest.approx(want)
    assert fuse_linear(DENSE, SPARSE, alpha=1.0, k=2)["q"].keys() == {"a", "b"}


def test_alpha_zero_is_the_dense_ranking_and_empty_lists_are_safe():
    assert list(fuse_linear(DENSE, SPARSE, 0.0)["q"])[:3] == ["a", "b", "c"]
    only_dense = fuse_linear(DENSE, {}, 0.5)
    assert list(only_dense["q"]) == ["a", "b", "c"]
    flat = fuse_linear({"q": {"a": 1.0, "b": 1.0}}, {}, 0.5)["q"]
    assert list(flat) == ["a", "b"] and set(flat.values()) == {0.0}


def test_linear_fusion_is_pyserinis_hybrid_rule():
    from minidr.retrieval.bm25 import import_pyserini

    import_pyserini()
    from pyserini.search.faiss import DenseSearchResult
    from pyserini.search.hybrid import HybridSearcher

    rng = np.random.default_rng(0)
    pids = [f"p{i}" for i in range(40)]
    for normalize in (False, True):
        dense = {"q": {p: float(s) for p, s in zip(rng.choice(pids, 20, replace=False),
                                                    rng.uniform(-1, 1, 20))}}
        sparse = {"q": {p: float(s) for p, s in zip(rng.choice(pids, 20, replace=False),
                                                     rng.uniform(5, 30, 20))}}
        hits = lambda run: [DenseSearchResult(p, s) for p, s in run["q"].items()]
        theirs = HybridSearcher._hybrid_results(hits(dense), hits(sparse), 0.3, 25,
                                                normalization=normalize)
        ours = fuse_linear(dense, sparse, 0.3, k=25, normalize=normalize)["q"]
        assert [h.docid for h in theirs] == list(ours)
        assert [h.score for h in theirs] == pytest.approx(list(ours.values()))


def test_reciprocal_rank_fusion_by_hand_with_deterministic_ties():
    one = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    two = {"q": {"c": 9.0, "a": 5.0, "d": 5.0}}           # a and d tie: a ranks first
    fused = reciprocal_rank_fusion([one, two], c=60)["q"]
    want = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63}
    assert fused == pytest.approx(want)
    assert list(fused) == ["a", "c", "b", "d"]
    tied = reciprocal_rank_fusion([{"q": {"y": 1.0}}, {"q": {"x": 1.0}}])["q"]
    assert list(tied) == ["x", "y"]                        # equal sums: by passage id
    assert top_k({"b": 1.0, "a": 1.0, "c": 2.0}, 2) == {"c": 2.0, "a": 1.0}


def test_cross_fitting_never_tunes_alpha_on_the_queries_it_fuses():
    rng = np.random.default_rng(1)
    qrels, dense, sparse = {}, {}, {}
    for i in range(40):
        q = f"q{i}"
        qrels[q] = {"rel": 1}
        others = {f"n{j}": float(rng.uniform(0, 1)) for j in range(10)}
        dense[q] = {**others, "rel": float(rng.uniform(0, 1))}
        sparse[q] = {**{p: 10 * s for p, s in others.items()},
                     "rel": float(rng.uniform(0, 20))}
    alphas = [0.0, 0.5, 2.0]
    run, chosen = cross_fitted_fusion(dense, sparse, qrels, alphas, "MRR@10", folds=2)
    assert set(run) == set(qrels) and len(chosen) == 2
    assert set(chosen) <= set(alphas)
    qids = np.array(sorted(qrels))
    fold = np.random.default_rng(0).permutation(40) % 2
    for f in range(2):                 # each fold's alpha is the other fold's best
        tune = {q: qrels[q] for q in qids[fold != f]}
        assert chosen[f] == alpha_sweep(dense, sparse, tune, alphas, "MRR@10").idxmax()
        for q in qids[fold == f]:
            assert run[q] == fuse_linear({q: dense[q]}, {q: sparse[q]}, chosen[f])[q]
