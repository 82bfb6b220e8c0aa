"""Hard negatives mined from a model's own ranking of the corpus.

What a dense retriever gets wrong are *its own* top-ranked passages. ANCE
re-mines them periodically from the model being trained; STAR mines them once
from a warm-up model; RocketQA denoises them with a stronger scorer. All do
the same two things, written here once: encode the corpus with the model as it
is now and index it (:func:`ann_index`), then keep ``n`` non-positive passages
from each training query's top ``depth`` (:func:`ann_negatives`).

Reference:
    Xiong et al. (2021), Approximate Nearest Neighbor Negative Contrastive
    Learning for Dense Text Retrieval (ANCE), ICLR, section 3.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..retrieval.dense import encode_corpus
from ..retrieval.index import DenseIndex
from .batches import Example, examples_qrels
from .negatives import top_k_negatives

__all__ = ["ann_index", "ann_negatives"]


def ann_index(encoder, corpus: Corpus, cost: CostMeter | None = None,
              batch_size: int = 256, cache: bool = False) -> DenseIndex:
    """Encode ``corpus`` with the model as it is now (a snapshot) and index it exactly.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`.
        corpus: pid -> text.
        cost: charged ``passages_encoded`` when the corpus is really encoded.
        batch_size: passages per encoding batch.
        cache: ``False`` (ANCE): re-encode, since the model has changed.
            ``True`` (STAR's static negatives): reuse the embedding cache,
            keyed by the model's fingerprint.

    Shapes:
        the index holds ``(len(corpus), H)`` passage embeddings.
    """
    # A snapshot: no gradients, and encode_* switch to eval mode (no dropout) and back.
    with torch.inference_mode():
        p_emb = encode_corpus(encoder, corpus, cache=cache, cost=cost,
                              batch_size=batch_size)  # (n_passages, H)
    # exact search stands in for ANN
    return DenseIndex.build(p_emb, list(corpus), kind="flat")


def ann_negatives(encoder, examples: list[Example], corpus: Corpus, n: int = 20,
                  depth: int = 200, cost: CostMeter | None = None,
                  batch_size: int = 256, cache: bool = False, seed: int = 0,
                  index: DenseIndex | None = None,
                  query_vectors: np.ndarray | None = None) -> dict[str, list[str]]:
    """Hard negatives from ``encoder``'s own ranking:
    ``n`` of each query's top ``depth``.

    The training queries search :func:`ann_index` (built here unless
    ``index`` is given), then :func:`~minidr.training.negatives.top_k_negatives`
    samples ``n`` non-positive passages from each query's top ``depth``.
    A query's positives are never among its negatives.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`.
        examples: the training pairs (their queries are searched; their
            positives are excluded).
        corpus: pid -> text.
        n: negatives per query.
        depth: how deep in the ranking they are drawn (ANCE: top 200).
        cost: charged ``queries_encoded``, and ``passages_encoded`` by
            :func:`ann_index`.
        batch_size, cache: see :func:`ann_index`.
        seed: seeds the sampling of the ``n`` negatives.
        index: an :func:`ann_index` of ``corpus`` by this ``encoder``, if already built.
        query_vectors: ``encoder``'s embeddings of the distinct queries of
            ``examples`` (first-occurrence order), if already computed; then no
            query is encoded here.

    Shapes:
        query embeddings ``(n_queries, H)``.

    Returns:
        qid -> up to ``n`` pids, for every distinct query of ``examples``.

    Reference:
        Xiong et al. (2021), ANCE, ICLR, section 3 (negatives from the ANN index).
    """
    if index is None:
        index = ann_index(encoder, corpus, cost, batch_size, cache)
    queries = {ex.qid: ex.query for ex in examples}  # distinct queries
    if query_vectors is not None:
        if len(query_vectors) != len(queries):
            raise ValueError(f"query_vectors has {len(query_vectors)} rows for "
                             f"{len(queries)} distinct queries")
        q_emb = query_vectors                                           # (n_queries, H)
    else:
        with torch.inference_mode():
            q_emb = encoder.encode_queries(list(queries.values()),
                                           batch_size=batch_size,
                                           progress=False)              # (n_queries, H)
        if cost is not None:
            cost.add(queries_encoded=len(queries))
    run = index.search_run(list(queries), q_emb, k=min(depth, len(index)))
    return top_k_negatives(run, examples_qrels(examples), n, depth=depth, seed=seed)
