"""Dense retrieval end to end: encode the corpus (cached), index it, search the splits.

Every dense chapter evaluates the same way::

    runs = dense_runs(encoder, mm, splits=("dl19", "dev"), cost=cost)   # {split: Run}

Passage embeddings are cached per (model fingerprint, corpus fingerprint), so
re-running a chapter with an unchanged model does not re-encode 43k passages;
the cost meter is charged only for passages actually encoded.
"""
from __future__ import annotations

import numpy as np

from ..core.cost import CostMeter
from ..data.formats import Corpus, Queries, Run
from .embedding_cache import cached_embeddings, corpus_cache_key
from .index import DenseIndex

__all__ = ["encode_corpus", "corpus_index", "dense_runs", "search_splits",
           "search_queries"]


def encode_corpus(encoder, corpus: Corpus, cache: bool = True,
                  cost: CostMeter | None = None, batch_size: int = 256) -> np.ndarray:
    """Passage embeddings of ``corpus`` in its order, ``(n_passages, dim)`` float32.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder` (anything with
            ``encode_passages`` and ``fingerprint``).
        corpus: pid -> text.
        cache: read/write the embedding cache (``$MINIDR_CACHE/embeddings``).
        cost: charged ``passages_encoded`` when the corpus is actually encoded.
    """
    def compute() -> np.ndarray:
        if cost is not None:
            cost.add(passages_encoded=len(corpus))
        return encoder.encode_passages(list(corpus.values()), batch_size=batch_size)

    if not cache:
        return compute()
    return cached_embeddings(corpus_cache_key(encoder, corpus), compute)


def dense_runs(encoder, data, splits=("dl19", "dev"), k: int = 1000, kind: str = "flat",
               cost: CostMeter | None = None, cache: bool = True) -> dict[str, Run]:
    """Retrieve the top-``k`` passages for every query of ``splits`` with ``encoder``.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`.
        data: a :class:`~minidr.data.minimarco.MiniMarco`.
        splits: split names to search.
        k: ranking depth.
        kind: ``"flat"`` (exact inner product) or ``"ivfpq"`` (compressed).
        cost: charged passages and queries encoded.

    Returns:
        ``{split: Run}``.
    """
    index = corpus_index(encoder, data.corpus, kind, cost, cache)
    return search_splits(encoder, index, data, splits, k, cost)


def corpus_index(encoder, corpus: Corpus, kind: str = "flat",
                 cost: CostMeter | None = None, cache: bool = True) -> DenseIndex:
    """``corpus`` encoded by ``encoder`` (through the embedding cache) and indexed.

    Shapes:
        the index holds ``(len(corpus), dim)`` passage embeddings.
    """
    emb = encode_corpus(encoder, corpus, cache=cache, cost=cost)            # (n, dim)
    return DenseIndex.build(emb, list(corpus), kind=kind)


def _search(encoder, index: DenseIndex, queries: Queries, k: int,
            cost: CostMeter | None) -> Run:
    """Encode ``queries`` with the query tower and search ``index``."""
    q_emb = encoder.encode_queries(list(queries.values()), progress=False)  # (q, dim)
    if cost is not None:
        cost.add(queries_encoded=len(queries))
    return index.search_run(list(queries), q_emb, k)


def search_splits(encoder, index: DenseIndex, data, splits=("dl19", "dev"),
                  k: int = 1000, cost: CostMeter | None = None) -> dict[str, Run]:
    """Search a ready passage index with ``encoder``'s query tower: ``{split: Run}``.

    :func:`dense_runs` builds the index from the encoder's own passage
    embeddings; LTRe and ADORE keep the passage index *fixed* and train only
    the query encoder, so they evaluate with this function and the index they
    trained against.

    Args:
        encoder: anything with ``encode_queries``.
        index: a :class:`~minidr.retrieval.index.DenseIndex` over ``data.corpus``.
        data, splits, k, cost: as in :func:`dense_runs`.
    """
    return {split: _search(encoder, index, data.splits[split].queries, k, cost)
            for split in splits}


def search_queries(encoder, corpus: Corpus, queries: Queries, k: int = 1000,
                   kind: str = "flat", cost: CostMeter | None = None,
                   cache: bool = True) -> Run:
    """The top-``k`` passages of ``corpus`` for any ``queries``, by ``encoder``.

    What :func:`dense_runs` does for a MiniMARCO split, for a query set of your
    own (the ``search`` command): the corpus is encoded through the embedding
    cache, indexed, and searched with the query tower.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`.
        corpus: pid -> text.
        queries: qid -> text.
        k: ranking depth (a query gets fewer when the corpus is smaller).
        kind: ``"flat"`` (exact inner product) or ``"ivfpq"`` (compressed).
        cost: charged passages and queries encoded.
        cache: read/write the embedding cache.

    Returns:
        Run: qid -> pid -> score.

    Shapes:
        corpus embeddings ``(n_passages, dim)``, query embeddings ``(n_queries, dim)``.
    """
    index = corpus_index(encoder, corpus, kind, cost, cache)
    return _search(encoder, index, queries, k, cost)
