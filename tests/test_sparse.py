"""minidr.sparse: BM25 through pyserini on toy corpora and on the ci slice.

pyserini starts one JVM per process (~10 s, once); every index here is tiny,
except the ci slice (3,000 passages, a few seconds).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from minidr.evaluation.metrics import evaluate
from minidr.core.paths import cache_root
from minidr.data.formats import corpus_fingerprint
from minidr.retrieval.bm25 import BM25, import_pyserini

TOY = {
    "1": "the cat sat on the mat",
    "2": "a dog barked at the mailman",
    "3": "quantum chromodynamics describes gluons",
    "4": "the cat and the dog are friends",
    "5": "dogs and cats play in the garden",
}
# What Lucene's English analyzer keeps (stop words out, Porter stems), per passage:
# 1: cat sat mat | 2: dog bark mailman | 3: quantum chromodynam describ gluon
# 4: cat dog friend | 5: dog cat plai garden   -> 17 terms, avgdl 3.4; "cat" in 1, 4, 5
TOY_LENGTHS = {"1": 3, "2": 3, "3": 4, "4": 3, "5": 4}


def lucene_bm25(tf: int, df: int, dl: int, n: int, avgdl: float, k1: float,
                b: float) -> float:
    """Lucene's BM25Similarity (no (k1 + 1) factor in the numerator since Lucene 8)."""
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))


@pytest.fixture(scope="module")
def toy_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bm25-toy-cache")


@pytest.fixture(scope="module")
def toy(toy_cache):
    return BM25(TOY, cache_dir=toy_cache)


# --- ranking and scores ---------------------------------------------------------------

def test_rare_term_ranks_its_passage_first(toy):
    run = toy.search({"q": "cat gluons", "r": "dog mailman"}, k=10)
    assert max(run["q"], key=run["q"].get) == "3"
    assert max(run["r"], key=run["r"].get) == "2"
    assert set(run["q"]) == {"1", "3", "4", "5"}  # every passage with "cat" or "gluon"


def test_index_statistics(toy):
    assert toy.num_docs == 5
    stats = toy.collection_stats()
    assert stats["documents"] == 5 and stats["total_terms"] == sum(TOY_LENGTHS.values())
    assert stats["avgdl"] == pytest.approx(3.4)
    assert toy.analyze("Cats") == ["cat"]
    assert toy.term_stats("cat") == (3, 3)


@pytest.mark.parametrize("k1,b", [(0.9, 0.4), (1.5, 0.9), (0.3, 0.0)])
def test_scores_match_the_bm25_formula(toy, k1, b):
    run = toy.search({"q": "cat"}, k=10, k1=k1, b=b)
    assert set(run["q"]) == {"1", "4", "5"}
    for pid, score in run["q"].items():
        expected = lucene_bm25(1, 3, TOY_LENGTHS[pid], 5, 3.4, k1, b)
        # Anserini rounds to 1e-4
        assert score == pytest.approx(expected, abs=2e-4), pid


def test_k1_and_b_change_the_scores(toy):
    q = {"q": "cat dog"}
    default = toy.search(q, k=10)
    assert toy.search(q, k=10, k1=1.5) != default
    assert toy.search(q, k=10, b=0.9) != default
    # an override lasts one call only
    assert toy.search(q, k=10) == default


def test_instance_parameters_are_the_defaults(toy, toy_cache, monkeypatch):
    monkeypatch.setattr(BM25, "_build",
                        lambda self, corpus: pytest.fail("rebuilt a cached index"))
    other = BM25(TOY, k1=1.5, b=0.9, cache_dir=toy_cache)
    q = {"q": "cat dog garden"}
    assert other.search(q, k=10) == toy.search(q, k=10, k1=1.5, b=0.9)


def test_depth_and_no_match(toy):
    run = toy.search({"q": "cat", "stop": "the and of", "none": "zebra"}, k=2)
    assert len(run["q"]) == 2
    assert run["stop"] == {} and run["none"] == {}


def test_empty_corpus_raises(tmp_path):
    with pytest.raises(ValueError):
        BM25({}, cache_dir=tmp_path)


# --- the cache ------------------------------------------------------------------------

def test_index_lives_under_the_cache_keyed_by_fingerprint(toy, toy_cache):
    assert toy.index_dir == toy_cache / "bm25" / corpus_fingerprint(TOY)
    assert (toy.index_dir / "minidr-complete.txt").read_text() == "5\n"


def test_cache_root_reads_minidr_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDR_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("MINIDR_CACHE")
    assert cache_root() == Path.home() / ".cache" / "minidr"


def test_second_construction_reuses_the_index(toy, toy_cache, monkeypatch):
    marker = toy.index_dir / "minidr-complete.txt"
    before = (os.stat(toy.index_dir).st_mtime_ns, os.stat(marker).st_mtime_ns)
    monkeypatch.setattr(BM25, "_build",
                        lambda self, corpus: pytest.fail("rebuilt a cached index"))
    again = BM25(dict(TOY), cache_dir=toy_cache)
    assert again.index_dir == toy.index_dir
    assert (os.stat(toy.index_dir).st_mtime_ns, os.stat(marker).st_mtime_ns) == before
    assert again.search({"q": "gluons"}, k=3) == toy.search({"q": "gluons"}, k=3)


def test_fingerprint_depends_on_ids_texts_and_order():
    fp = corpus_fingerprint(TOY)
    assert fp == corpus_fingerprint(dict(TOY))
    assert fp != corpus_fingerprint({**TOY, "5": TOY["5"] + "!"})
    assert fp != corpus_fingerprint({("6" if p == "5" else p): t
                                     for p, t in TOY.items()})
    assert fp != corpus_fingerprint(dict(reversed(list(TOY.items()))))


def test_fingerprint_has_no_separator_collisions():
    assert (corpus_fingerprint({"1": "a\n2\tb"})
            != corpus_fingerprint({"1": "a", "2": "b"}))


def test_incomplete_index_dir_is_rebuilt(tmp_path):
    corpus = {"1": "incomplete index dirs are rebuilt", "2": "anything else"}
    stale = tmp_path / "bm25" / corpus_fingerprint(corpus)
    stale.mkdir(parents=True)
    (stale / "junk").write_text("left by an old version")
    bm25 = BM25(corpus, cache_dir=tmp_path)
    assert not (stale / "junk").exists()
    assert (stale / "minidr-complete.txt").exists()
    assert bm25.num_docs == 2


def test_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    import_pyserini()
    import pyserini.index.lucene as lucene

    real = lucene.LuceneIndexer
    seen = []

    class InterruptedIndexer:
        """Writes the batch for real into the temp dir, then fails as a crash would."""

        def __init__(self, index_dir, *args, **kwargs):
            seen.append(index_dir)
            self._inner = real(index_dir, *args, **kwargs)

        def add_batch_dict(self, docs):
            self._inner.add_batch_dict(docs)
            self._inner.close()
            assert any(os.scandir(seen[0])), "the real indexer wrote nothing"
            raise RuntimeError("simulated interruption")

        def close(self):
            self._inner.close()

    corpus = {"1": "an interrupted build", "2": "leaves no index behind"}
    monkeypatch.setattr(lucene, "LuceneIndexer", InterruptedIndexer)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        BM25(corpus, cache_dir=tmp_path)
    assert seen, "the build did not go through LuceneIndexer"
    # neither the index nor its temp dir
    assert list((tmp_path / "bm25").iterdir()) == []
    assert not os.path.exists(seen[0])

    monkeypatch.setattr(lucene, "LuceneIndexer", real)
    bm25 = BM25(corpus, cache_dir=tmp_path)  # and the next run builds it whole
    assert bm25.num_docs == 2
    assert ([p.name for p in (tmp_path / "bm25").iterdir()]
            == [corpus_fingerprint(corpus)])


# --- the ci slice ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def ci_bm25(ci):
    """Cached under the session's MINIDR_CACHE, so test_cli's bm25 command reuses it."""
    return BM25(ci.corpus, threads=2)


def test_bm25_on_the_ci_slice(ci, ci_bm25):
    assert ci_bm25.num_docs == 3_000
    assert str(ci_bm25.index_dir).startswith(str(cache_root()))
    split = ci.splits["dl19"]
    run = ci_bm25.search(split.queries, k=100)
    assert set(run) == set(split.queries)
    assert all(0 < len(docs) <= 100 for docs in run.values())
    assert all(p in ci.corpus for docs in run.values() for p in docs)
    metrics = evaluate(run, split)
    assert metrics["nDCG@10"] > 0.3  # a random ranking scores ~0
    assert metrics["R@100"] > 0.5
