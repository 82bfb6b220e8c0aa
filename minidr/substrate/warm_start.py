"""The warm start of chapters 03 and 05-07:
chapter 04's DPR with BM25 negatives, trained once.

ANCE, LTRe and STAR all start from a bi-encoder that was first trained with
BM25 negatives ("BM25 warm-up" in the ANCE paper, the fixed document encoder
of LTRe, the model that mines STAR's static negatives). This module trains
exactly chapter 04's recipe (:data:`minidr.methods.dpr.RECIPE`: mean pooling,
cosine, temperature 0.05, one BM25 negative per query, its budget for the
profile) and caches the result, so the chapters share one starting point and
pay for it once::

    >>> warm, warm_cost = warm_start(mm, P, labels)  # doctest: +SKIP

(Called a *warm start* here, to keep "warm-up" for the learning-rate schedule.)
The cache lives in ``$MINIDR_CACHE/warm_start/<key>``, where the key hashes every
input (backbone, corpus, training pairs, the whole recipe); it is written atomically.

Reference:
    Xiong et al. (2021), Approximate Nearest Neighbor Negative Contrastive
    Learning for Dense Text Retrieval (ANCE), ICLR: section 3, "BM25 Warm Up".
"""
from __future__ import annotations

import hashlib
import json

import torch

from ..core.atomic import atomic_write_text
from ..core.cost import CostMeter
from ..core.paths import cache_root
from ..data.formats import corpus_fingerprint
from ..methods.dpr import RECIPE, DPRRecipe, train_dpr
from ..models.bi_encoder import BiEncoder
from ..retrieval.bm25 import BM25
from ..retrieval.dense import encode_corpus
from ..retrieval.embedding_cache import cached_embeddings, corpus_cache_key
from ..training.batches import examples_qrels, training_examples
from ..training.negatives import bm25_negatives

__all__ = ["warm_start"]


def _key(data, profile, examples, recipe: DPRRecipe) -> str:
    settings = {"backbone": profile.backbone, "budget": recipe.budget(profile).__dict__,
                "recipe": recipe.settings(), "format": 4}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(corpus_fingerprint(data.corpus).encode())
    for ex in examples:
        h.update(f"{ex.qid}\t{ex.positive}\t{ex.teacher}\n".encode())
    return h.hexdigest()[:16]


def warm_start(data, profile, teacher_labels=None, bm25: BM25 | None = None,
               cache: bool = True,
               recipe: DPRRecipe = RECIPE) -> tuple[BiEncoder, dict]:
    """Chapter 04's "DPR, + BM25 negatives" bi-encoder, from the cache or trained now.

    Args:
        data: a :class:`~minidr.data.minimarco.MiniMarco`.
        profile: a :class:`~minidr.core.config.Profile` (backbone, budget, threads).
        teacher_labels: as for :func:`minidr.training.batches.training_examples`.
        bm25: a BM25 over ``data.corpus`` (built if ``None``).
        cache: read and write ``$MINIDR_CACHE/warm_start``.
        recipe: the DPR recipe (default: chapter 04's).

    Returns:
        ``(encoder, cost)``: the model in eval mode, and the cost summary of
        its training (BM25 negatives included), as measured when it was
        trained, plus ``corpus_encode_seconds``: the time of one encoding of
        ``data.corpus`` by this model, done right after training. Its
        embeddings go to the embedding cache, so later chapters read them back
        with :func:`minidr.retrieval.dense.encode_corpus` and charge this
        measured time to the method that needs them (LTRe's fixed index,
        STAR's mining).
    """
    examples = training_examples(data, teacher_labels)
    budget = recipe.budget(profile)
    folder = cache_root() / "warm_start" / _key(data, profile, examples, recipe)
    cost_file = folder.with_suffix(".cost.json")
    if cache and folder.is_dir() and cost_file.is_file():
        encoder = BiEncoder.from_pretrained(folder)
        return encoder.eval(), json.loads(cost_file.read_text())

    print(f"training the warm start ({budget.steps} steps x {budget.batch_size}; "
          "cached for the next chapter)", flush=True)
    cost = CostMeter()
    with cost:
        bm25 = bm25 or BM25(data.corpus, threads=profile.threads)
        run = bm25.search({e.qid: e.query for e in examples}, k=recipe.depth)
    negatives = bm25_negatives(run, examples_qrels(examples), n=recipe.n_candidates,
                               depth=recipe.depth)
    torch.manual_seed(0)
    encoder = BiEncoder.from_pretrained(profile.backbone, **recipe.model_settings)
    train_dpr(encoder, examples, data.corpus, steps=budget.steps,
              batch_size=budget.batch_size, lr=recipe.lr,
              temperature=recipe.temperature, hard_negatives=negatives,
              n_hard=recipe.n_hard, cost=cost)
    summary = cost.summary()
    encoder.eval()
    encode_cost = CostMeter()
    with encode_cost:  # really encode, to time it
        emb = encode_corpus(encoder, data.corpus, cache=False)  # (N, H)
    summary["corpus_encode_seconds"] = round(encode_cost.seconds, 2)
    if cache:  # chapters read the model and embeddings back
        cached_embeddings(corpus_cache_key(encoder, data.corpus), lambda: emb)
        encoder.save(folder)
        atomic_write_text(cost_file, json.dumps(summary, indent=2) + "\n")
    return encoder.eval(), summary
