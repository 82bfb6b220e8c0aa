"""Dense retrieval with faiss: an exact or a compressed inner-product index.

A dense retriever scores a passage by the inner product of two embeddings,
``score(q, p) = <E_Q(q), E_P(p)>``, so retrieval is maximum-inner-product
search over the encoded corpus. Faiss does the search; this module adds the
passage ids and the two index kinds the book compares:

* ``"flat"``: ``faiss.IndexFlatIP``, exact search over the raw float32 vectors
  (``4 * d`` bytes per passage). The default, and what the leaderboard uses.
* ``"ivfpq"``: ``faiss.IndexIVFPQ``, approximate: k-means splits the corpus
  into ``nlist`` cells and a query visits only the ``nprobe`` nearest cells
  (IVF); each vector is stored as ``m`` one-byte codes (product quantization,
  Jegou et al., 2011), about ``m + 8`` bytes per passage.

Inner product, not cosine: normalise the embeddings first if the model was
trained with cosine similarity.

Encoding the corpus is the expensive part, so
:mod:`minidr.retrieval.embedding_cache` keeps passage embeddings on disk. ANCE
re-encodes the corpus with a checkpoint and rebuilds the index to refresh its
hard negatives; LTRe and ADORE encode it once with a fixed passage encoder and
train the query encoder against that index.

Example::

    >>> import numpy as np
    >>> emb = np.random.default_rng(0).standard_normal((1000, 32)).astype("float32")
    >>> index = DenseIndex.build(emb, [f"p{i}" for i in range(1000)])
    >>> scores, ids = index.search(emb[:2], k=3)
    >>> ids[0][0], ids[1][0]            # each vector is its own best match (here)
    ('p0', 'p1')
"""
from __future__ import annotations

import math

import faiss
import numpy as np

from ..data.formats import Run

__all__ = ["DenseIndex", "ivfpq_defaults"]


def ivfpq_defaults(n: int, d: int) -> tuple[int, int, int]:
    """Reasonable ``(nlist, m, nprobe)`` for ``n`` vectors of dimension ``d``.

    * ``nlist ~ 4 * sqrt(n)`` cells (the faiss wiki's rule of thumb), at most ``n``;
    * ``m``: the divisor of ``d`` whose sub-vectors are closest to 8 dimensions
      (8-16 dims per one-byte code keeps the quantization error moderate);
    * ``nprobe = nlist // 4``: a quarter of the cells is visited, favouring
      recall over speed at the book's corpus sizes.

    Example::

        >>> ivfpq_defaults(43_076, 256)
        (830, 32, 207)
    """
    nlist = max(1, min(n, round(4 * math.sqrt(n))))
    m = min((m for m in range(1, d + 1) if d % m == 0), key=lambda m: abs(d // m - 8))
    return nlist, m, max(1, nlist // 4)


class DenseIndex:
    """Passage ids plus a faiss inner-product index over their embeddings.

    Build it with :meth:`build`; faiss numbers the vectors ``0 .. n-1`` and
    ``ids`` maps those numbers back to passage ids.

    Attributes:
        index: the faiss index.
        ids: passage id of each row of the embeddings.
        kind: ``"flat"`` or ``"ivfpq"``.
    """

    def __init__(self, index: faiss.Index, ids: list[str], kind: str):
        self.index, self.ids, self.kind = index, list(ids), kind

    @classmethod
    def build(cls, embeddings: np.ndarray, ids: list[str], kind: str = "flat",
              nlist: int | None = None, m: int | None = None, nbits: int = 8,
              nprobe: int | None = None, seed: int = 0) -> "DenseIndex":
        """Index ``embeddings`` (one row per passage).

        Args:
            embeddings: passage embeddings, row ``i`` for ``ids[i]``.
            ids: passage ids, distinct.
            kind: ``"flat"`` (exact) or ``"ivfpq"`` (compressed, approximate).
            nlist, m, nprobe: IVF cells, PQ sub-vectors (must divide ``d``) and
                cells visited per query; ``None``: :func:`ivfpq_defaults`.
            nbits: bits per PQ code (8: 256 centroids per sub-vector; needs at
                least ``2 ** nbits`` training vectors).
            seed: seed of the k-means runs that train the IVF-PQ index.

        Shapes:
            embeddings ``(n, d)``, converted to float32.

        References:
            Johnson et al. (2019), Billion-scale similarity search with GPUs
            (faiss). Jegou et al. (2011), Product Quantization for Nearest
            Neighbor Search, TPAMI.
        """
        x = np.ascontiguousarray(embeddings, dtype=np.float32)      # (n, d)
        if x.ndim != 2 or len(x) != len(ids):
            raise ValueError("expected embeddings (n, d) with n = len(ids) = "
                             f"{len(ids)}, got {x.shape}")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be distinct")
        n, d = x.shape
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "ivfpq":
            default_nlist, default_m, _ = ivfpq_defaults(n, d)
            nlist, m = nlist or default_nlist, m or default_m
            if d % m or n < max(nlist, 2 ** nbits):
                raise ValueError("IVF-PQ needs m dividing d and "
                                 "n >= max(nlist, 2**nbits): "
                                 f"got n={n}, d={d}, m={m}, nlist={nlist}, "
                                 f"nbits={nbits}. Use kind='flat' for small "
                                 "corpora, or a smaller nbits.")
            quantizer = faiss.IndexFlatIP(d)             # assigns vectors to IVF cells
            index = faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits,
                                     faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = index.pq.cp.seed = seed      # the k-means of IVF and of PQ
            index.train(x)
            index.nprobe = min(nlist, nprobe or max(1, nlist // 4))
        else:
            raise ValueError(f"kind must be 'flat' or 'ivfpq', got {kind!r}")
        index.add(x)
        return cls(index, ids, kind)

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def memory_bytes(self) -> int:
        """Size of the serialized index (vectors or codes, centroids, codebooks),
        in bytes."""
        return int(faiss.serialize_index(self.index).nbytes)

    def reconstruct_all(self) -> np.ndarray:
        """The stored vectors as the index sees them, row ``i`` for ``ids[i]``.

        ``"flat"``: exactly the embeddings it was built from. ``"ivfpq"``: their
        reconstructions (IVF centroid + decoded PQ residual), the vectors whose
        inner products the index actually returns as scores. LTRe trains a
        query encoder against these to fit a compressed index.

        An IVF index keeps its vectors in per-cell lists, so faiss needs a
        *direct map* (row -> cell and offset) to fetch them by row; it is built
        for the call and dropped afterwards, leaving the index (and
        :attr:`memory_bytes`) as it was.

        Shapes:
            returns ``(n, d)`` float32.
        """
        n = self.index.ntotal
        if self.kind != "ivfpq":
            return self.index.reconstruct_n(0, n)                   # (n, d)
        self.index.make_direct_map()
        try:
            return self.index.reconstruct_n(0, n)                   # (n, d)
        finally:
            self.index.make_direct_map(False)

    def search_rows(self, queries: np.ndarray, k: int,
                    batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of highest inner product with each query (faiss numbering).

        Args:
            queries: query embeddings.
            k: results per query.
            batch_size: queries per faiss call (bounds memory on big query sets).

        Shapes:
            queries ``(q, d)``; returns scores ``(q, k)`` float32, descending, and
            rows ``(q, k)`` int64. A row is ``-1`` (score ``-inf``) when faiss found
            fewer than ``k`` (``k`` larger than the index, or too few vectors in the
            visited IVF cells).
        """
        x = np.ascontiguousarray(queries, dtype=np.float32)  # (q, d)
        if x.ndim != 2 or x.shape[1] != self.index.d:
            raise ValueError(f"expected queries (q, {self.index.d}), got {x.shape}")
        scores = np.empty((len(x), k), dtype=np.float32)     # (q, k)
        rows = np.empty((len(x), k), dtype=np.int64)         # (q, k), -1: no result
        for start in range(0, len(x), batch_size):
            batch = slice(start, start + batch_size)
            scores[batch], rows[batch] = self.index.search(x[batch], k)
        scores[rows < 0] = -np.inf
        return scores, rows

    def search(self, queries: np.ndarray, k: int,
               batch_size: int = 4096) -> tuple[np.ndarray, list[list[str]]]:
        """The ``k`` passages of highest inner product with each query.

        Args:
            queries, k, batch_size: as in :meth:`search_rows`.

        Shapes:
            queries ``(q, d)``; returns scores ``(q, k)`` float32, descending.

        Returns:
            ``(scores, ids)``: ``ids[i]`` lists query ``i``'s passage ids, best
            first. It is shorter than ``k`` when faiss found fewer; the matching
            scores are ``-inf``.
        """
        scores, rows = self.search_rows(queries, k, batch_size)
        ids = [[self.ids[r] for r in row if r >= 0] for row in rows]
        return scores, ids

    def search_run(self, qids: list[str], queries: np.ndarray, k: int) -> Run:
        """:meth:`search`, returned as a run: qid -> pid -> score
        (``queries[i]`` is ``qids[i]``)."""
        if len(qids) != len(queries):
            raise ValueError(f"{len(qids)} qids but {len(queries)} query embeddings")
        scores, ids = self.search(queries, k)
        return {qid: {pid: float(s) for pid, s in zip(row_ids, row_scores)}
                for qid, row_ids, row_scores in zip(qids, ids, scores)}
