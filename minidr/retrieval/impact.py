"""A Lucene impact index: learned term weights searched by an inverted index.

A learned sparse model (SPLADE, DeepCT, uniCOIL) gives every passage a
weight per vocabulary term. Lucene stores one integer per (term, passage)
posting, so the weights are *quantized*: multiplied by ``scale`` (100) and
rounded. A query's weights are quantized the same way, and Lucene's impact
search scores a passage by

    score(q, d) = sum over terms t of  q_t * d_t          (integers),

the dot product of the two quantized vectors: ``scale**2`` times the model's
own score, up to rounding. :meth:`ImpactIndex.search` divides by ``scale**2``,
so scores are in the model's units.

Built with Anserini's ``IndexCollection`` (``JsonVectorCollection``,
``-impact -pretokenized``), as pyserini's SPLADE indexes are; searched with
its ``SimpleImpactSearcher``. The index is cached under
``$MINIDR_CACHE/impact/<key>``, built in a temporary folder and renamed into
place, so an interrupted build leaves nothing behind.

Example::

    vectors = splade.encode(list(corpus.values()))        # (n, V) float
    index = ImpactIndex(vectors, list(corpus), splade.vocabulary, key="splade-tiny")
    run = index.search(splade.encode(queries.values()), list(queries), k=1000)

Reference:
    Lin & Ma (2021), A Few Brief Notes on DeepImpact, COIL, and a Conceptual
    Framework for Information Retrieval Techniques, arXiv 2106.14807 (impact
    indexes). Lin et al. (2021), Pyserini, SIGIR.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..core.atomic import atomic_dir
from ..core.paths import cache_root
from ..data.formats import Run
from .bm25 import import_pyserini

__all__ = ["quantize", "prune", "exact_search", "ImpactIndex"]


def quantize(vectors: sp.spmatrix, scale: int = 100) -> sp.csr_matrix:
    """Term weights as the integers Lucene stores: ``round(scale * w)``, zeros
    dropped.

    Shapes:
        (n, V) float -> (n, V) int32 CSR.

    Example::

        >>> q = quantize(sp.csr_matrix([[0.004, 0.016, 1.234]]))
        >>> q.toarray().tolist(), q.nnz
        ([[0, 2, 123]], 2)
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    out = sp.csr_matrix(vectors, dtype=np.float64, copy=True)
    out.data = np.rint(out.data * scale)
    out = out.astype(np.int32)
    out.eliminate_zeros()
    return out


def prune(vectors: sp.spmatrix, keep: int) -> sp.csr_matrix:
    """Keep each row's ``keep`` largest weights and drop the rest (sparsity after
    the fact, without training; ties broken by term id).

    Shapes:
        (n, V) -> (n, V), at most ``keep`` non-zeros per row.

    Example::

        >>> prune(sp.csr_matrix([[0.5, 2.0, 1.0, 0.0]]), 2).toarray().tolist()
        [[0.0, 2.0, 1.0, 0.0]]
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    vectors = sp.csr_matrix(vectors, copy=True)
    for i in range(vectors.shape[0]):
        lo, hi = vectors.indptr[i], vectors.indptr[i + 1]
        if hi - lo > keep:
            row = vectors.data[lo:hi]                   # a view: zeroed in place
            row[np.argsort(-row, kind="stable")[keep:]] = 0
    vectors.eliminate_zeros()
    return vectors


def exact_search(query_vectors: sp.spmatrix, passage_vectors: sp.spmatrix,
                 qids: Sequence[str], pids: Sequence[str], k: int = 1000,
                 chunk: int = 128) -> Run:
    """Top-``k`` passages per query by the exact float dot product of sparse term
    weights (no index, no quantization: what :class:`ImpactIndex` approximates).

    Args:
        query_vectors: (m, V) query term weights.
        passage_vectors: (n, V) passage term weights.
        qids, pids: their ids, in row order.
        k: depth.
        chunk: queries scored at once (memory: ``chunk * n`` floats).

    Returns:
        qid -> pid -> score; ties broken by passage row.

    Example::

        >>> q = sp.csr_matrix([[1.0, 0.0, 2.0]])
        >>> p = sp.csr_matrix([[0.0, 1.0, 1.0], [3.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
        >>> exact_search(q, p, ["q1"], ["a", "b", "c"], k=2)
        {'q1': {'b': 3.0, 'a': 2.0}}
    """
    if query_vectors.shape[0] != len(qids) or passage_vectors.shape[0] != len(pids):
        raise ValueError(f"{query_vectors.shape[0]} query vectors for {len(qids)} qids "
                         f"and {passage_vectors.shape[0]} passage vectors for "
                         f"{len(pids)} pids")
    pids, passages_t = np.asarray(pids), sp.csc_matrix(passage_vectors).T   # (V, n)
    k = min(k, len(pids))
    run: Run = {}
    for start in range(0, len(qids), chunk):
        scores = (sp.csr_matrix(query_vectors[start:start + chunk])
                  @ passages_t).toarray()                               # (c, n)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]         # (c, k)
        for row, qid in enumerate(qids[start:start + chunk]):
            run[str(qid)] = {str(pids[j]): float(scores[row, j]) for j in top[row]}
    return run


class ImpactIndex:
    """An inverted index of quantized term weights (Lucene impact postings).

    Args:
        vectors: (n, V) term weights of the passages (e.g. ``Splade.encode``).
        pids: the n passage ids, in row order.
        vocabulary: term id -> term (``V`` entries).
        key: names the cached index; it must change whenever the model or the
            corpus does (e.g. a model name plus the corpus fingerprint).
        scale: quantization (100: two decimals).
        threads: indexing and search threads.
        cache_dir: root of the cache (default :func:`~minidr.core.paths.cache_root`).
    """

    def __init__(self, vectors: sp.spmatrix, pids: Sequence[str],
                 vocabulary: Sequence[str], key: str, scale: int = 100,
                 threads: int = 2, cache_dir: str | os.PathLike | None = None):
        vectors = sp.csr_matrix(vectors)
        if vectors.shape != (len(pids), len(vocabulary)):
            raise ValueError(f"vectors are {vectors.shape}, but there are {len(pids)} "
                             f"passages and {len(vocabulary)} terms")
        if "/" in key or not key:
            raise ValueError(f"key must be a non-empty folder name, got {key!r}")
        self.scale, self.threads, self.vocabulary = scale, threads, list(vocabulary)
        self.index_dir = Path(cache_dir or cache_root()) / "impact" / f"{key}-q{scale}"
        if not (self.index_dir / "minidr-complete.txt").exists():
            self._build(quantize(vectors, scale), list(pids))
        import_pyserini()
        from pyserini.pyclass import autoclass

        # a query is one Lucene clause per term, and Lucene refuses queries of more
        # than 1,024 clauses (a SPLADE that is barely sparse has thousands of terms)
        searcher = autoclass("org.apache.lucene.search.IndexSearcher")
        searcher.setMaxClauseCount(max(searcher.getMaxClauseCount(), len(vocabulary)))
        self._searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(
            str(self.index_dir / "index"))

    def _json(self, row: sp.csr_matrix) -> dict[str, int]:
        return {self.vocabulary[j]: int(w) for j, w in zip(row.indices, row.data)}

    def _build(self, postings: sp.csr_matrix, pids: list[str]) -> None:
        import_pyserini()
        from pyserini.pyclass import autoclass

        started = time.perf_counter()
        with atomic_dir(self.index_dir) as tmp:
            collection = tmp / "collection"
            collection.mkdir()
            with open(collection / "docs.jsonl", "w") as f:
                for i, pid in enumerate(pids):
                    f.write(json.dumps({"id": pid, "contents": "",
                                        "vector": self._json(postings[i])}) + "\n")
            autoclass("io.anserini.index.IndexCollection").main([
                "-collection", "JsonVectorCollection", "-input", str(collection),
                "-index", str(tmp / "index"), "-generator",
                "DefaultLuceneDocumentGenerator", "-threads", str(self.threads),
                "-impact", "-pretokenized", "-quiet"])     # no INFO lines
            (collection / "docs.jsonl").unlink()
            collection.rmdir()
            seconds = round(time.perf_counter() - started, 1)
            (tmp / "minidr-complete.txt").write_text(json.dumps(
                {"passages": len(pids), "build_seconds": seconds}) + "\n")

    @property
    def build_seconds(self) -> float | None:
        """Seconds the index took to build (writing the postings and Lucene's
        indexing), recorded when it was built, so a cached index still reports
        its cost; ``None`` for an index cached before minidr recorded it."""
        try:
            marker = json.loads((self.index_dir / "minidr-complete.txt").read_text())
        except json.JSONDecodeError:                      # the older marker: a count
            return None
        return marker.get("build_seconds") if isinstance(marker, dict) else None

    @property
    def size_bytes(self) -> int:
        """Bytes of the Lucene index on disk."""
        return sum(p.stat().st_size for p in (self.index_dir / "index").iterdir())

    def search(self, query_vectors: sp.spmatrix, qids: Sequence[str],
               k: int = 1000) -> Run:
        """Top-``k`` passages per query by the quantized dot product.

        Args:
            query_vectors: (m, V) query term weights, quantized here.
            qids: the m query ids.
            k: depth.

        Returns:
            qid -> pid -> score, in the model's units (divided by ``scale**2``).
            A query with no term left after quantization maps to ``{}``.
        """
        from pyserini.pyclass import JArrayList, JHashMap, JInt

        queries = quantize(query_vectors, self.scale)
        if queries.shape[0] != len(qids):
            raise ValueError(f"{queries.shape[0]} query vectors for {len(qids)} qids")
        query_list, qid_list = JArrayList(), JArrayList()
        for i, qid in enumerate(qids):
            weights = JHashMap()
            for term, w in self._json(queries[i]).items():
                weights.put(term, JInt(w))
            query_list.add(weights)
            qid_list.add(str(qid))
        hits = self._searcher.batch_search(query_list, qid_list, int(k),
                                           int(self.threads))
        found = {r.getKey(): r.getValue() for r in hits.entrySet().toArray()}
        norm = float(self.scale) ** 2
        return {str(q): {h.docid: float(h.score) / norm for h in found.get(str(q), [])}
                for q in qids}
