"""minidr.index: faiss search equals brute force; IVF-PQ is compressed and close;
the embedding cache."""
from __future__ import annotations

import os

import faiss
import numpy as np
import pytest

import minidr.retrieval.embedding_cache
from minidr.retrieval.embedding_cache import cached_embeddings, embedding_key
from minidr.retrieval.index import DenseIndex, ivfpq_defaults

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    """Vectors near 20 centres of an 8-dimensional subspace:
    embedding-like, low intrinsic dim."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).standard_normal((8, d))          # (8, d), shared
    centres = np.random.default_rng(98).standard_normal((20, 8)) * 2   # (20, 8), shared
    z = centres[rng.integers(0, 20, n)] + rng.standard_normal((n, 8))  # (n, 8)
    return (z @ basis).astype(np.float32)                              # (n, d)


def test_flat_search_equals_brute_force_top_k():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((500, 16)).astype(np.float32)          # (n, d)
    queries = rng.standard_normal((20, 16)).astype(np.float32)       # (q, d)
    ids = [f"doc{i}" for i in range(500)]
    index = DenseIndex.build(emb, ids)
    scores, got = index.search(queries, k=10)

    full = queries @ emb.T                                  # (q, n)
    top = np.argsort(-full, axis=1, kind="stable")[:, :10]  # (q, 10)
    assert scores.shape == (20, 10) and scores.dtype == np.float32
    assert got == [[ids[j] for j in row] for row in top]
    np.testing.assert_allclose(scores, np.take_along_axis(full, top, axis=1),
                               rtol=1e-5, atol=1e-5)
    assert len(index) == 500 and index.kind == "flat"
    assert index.memory_bytes >= 500 * 16 * 4               # the raw float32 vectors


def test_search_in_batches_equals_one_call():
    rng = np.random.default_rng(1)
    # float64 is converted
    emb, queries = rng.standard_normal((100, 8)), rng.standard_normal((9, 8))
    index = DenseIndex.build(emb, [str(i) for i in range(100)])
    s1, i1 = index.search(queries, k=5)
    s2, i2 = index.search(queries, k=5, batch_size=2)
    assert i1 == i2 and np.array_equal(s1, s2)


def test_search_drops_missing_results():
    emb = np.array([[3, 0], [2, 0], [1, 0]], dtype=np.float32)
    index = DenseIndex.build(emb, ["a", "b", "c"])
    # k > passages
    scores, ids = index.search(np.array([[1, 0]], dtype=np.float32), k=5)
    assert ids == [["a", "b", "c"]]
    assert scores.shape == (1, 5) and np.isneginf(scores[0, 3:]).all()
    np.testing.assert_array_equal(scores[0, :3], [3, 2, 1])


def test_search_run_format():
    emb = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    index = DenseIndex.build(emb, ["p1", "p2", "p3"])
    run = index.search_run(["q1", "q2"], np.array([[2, 0], [0, 1]], dtype=np.float32),
                           k=2)
    assert run == {"q1": {"p1": 2.0, "p3": 2.0}, "q2": {"p2": 1.0, "p3": 1.0}}
    assert all(type(s) is float for docs in run.values() for s in docs.values())
    with pytest.raises(ValueError, match="qids"):
        index.search_run(["q1"], np.zeros((2, 2), dtype=np.float32), k=1)


def test_ivfpq_close_to_flat_and_much_smaller():
    emb, queries = clustered(3000, 64, seed=0), clustered(50, 64, seed=1)
    ids = [f"p{i}" for i in range(3000)]
    flat = DenseIndex.build(emb, ids)
    ivfpq = DenseIndex.build(emb, ids, kind="ivfpq", seed=0)
    _, exact = flat.search(queries, 10)
    scores, approx = ivfpq.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    assert recall > 0.5, recall
    assert ivfpq.kind == "ivfpq" and len(ivfpq) == 3000
    assert ivfpq.index.metric_type == faiss.METRIC_INNER_PRODUCT
    assert ivfpq.memory_bytes < flat.memory_bytes / 4
    assert (np.diff(scores, axis=1) <= 1e-4).all()                    # best first

    again = DenseIndex.build(emb, ids, kind="ivfpq", seed=0)  # same seed, same index
    assert again.search(queries, 10)[1] == approx


def test_ivfpq_defaults_and_errors():
    nlist, m, nprobe = ivfpq_defaults(10_000, 768)
    assert nlist == 400 and 768 % m == 0 and 8 <= 768 // m <= 16 and nprobe == 100
    assert ivfpq_defaults(10, 12)[0] <= 10  # never more cells than vectors
    with pytest.raises(ValueError, match="nbits"):
        DenseIndex.build(np.zeros((100, 16), np.float32), [str(i) for i in range(100)],
                         kind="ivfpq")
    with pytest.raises(ValueError, match="kind"):
        DenseIndex.build(np.zeros((2, 4), np.float32), ["a", "b"], kind="hnsw")
    with pytest.raises(ValueError, match="distinct"):
        DenseIndex.build(np.zeros((2, 4), np.float32), ["a", "a"])
    with pytest.raises(ValueError, match="len"):
        DenseIndex.build(np.zeros((2, 4), np.float32), ["a"])


# -- embedding cache -------------------------------------------------------------------

def test_cached_embeddings_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(4, 3)

    first = cached_embeddings("m-abc", compute, cache_dir=tmp_path)
    second = cached_embeddings("m-abc", compute, cache_dir=tmp_path)
    assert len(calls) == 1
    assert np.array_equal(first, second) and second.dtype == np.float32
    assert os.listdir(tmp_path) == ["m-abc.npy"]


def test_cached_embeddings_default_dir_is_under_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDR_CACHE", str(tmp_path))
    cached_embeddings("k", lambda: np.ones((2, 2), np.float32))
    assert (tmp_path / "embeddings" / "k.npy").is_file()


def test_cached_embeddings_leaves_nothing_when_compute_raises(tmp_path):
    def compute():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_embeddings("k", compute, cache_dir=tmp_path)
    assert not tmp_path.exists() or os.listdir(tmp_path) == []


def test_cached_embeddings_leaves_nothing_when_save_fails(tmp_path, monkeypatch):
    def save(f, arr, allow_pickle):
        f.write(b"\x93NUMPY half")  # a truncated write...
        raise OSError("disk full")  # ...then the failure

    monkeypatch.setattr(minidr.retrieval.embedding_cache.np, "save", save)
    with pytest.raises(OSError, match="disk full"):
        cached_embeddings("k", lambda: np.ones((2, 2), np.float32), cache_dir=tmp_path)
    assert os.listdir(tmp_path) == []


def test_cached_embeddings_refuses_object_arrays(tmp_path):
    with pytest.raises(ValueError):
        cached_embeddings("k", lambda: np.array([{"a": 1}], dtype=object),
                          cache_dir=tmp_path)
    assert os.listdir(tmp_path) == []


def test_embedding_key():
    assert embedding_key("bert-l4-step500", "0123abcd") == "bert-l4-step500-0123abcd"
    for model, corpus in [("google/bert", "0123"), ("", "0123"), ("m", "a-b"),
                          ("m", "../x")]:
        with pytest.raises(ValueError):
            embedding_key(model, corpus)
    with pytest.raises(ValueError):
        cached_embeddings("../escape", lambda: np.zeros(1))
