"""The warm-up model of chapters 05-07: chapter 04's DPR with BM25 negatives, trained once.

ANCE, LTRe and STAR all start from a bi-encoder that was first trained with
BM25 negatives ("BM25 warm-up" in the ANCE paper, the fixed document encoder
of LTRe, the model that mines STAR's static negatives). This module trains
exactly chapter 04's recipe (mean pooling, cosine, temperature 0.05, one BM25
negative per query, same steps, seed and data) and caches the result, so the
three chapters share one starting point and pay for it once::

    >>> warm, warm_cost = warmup_encoder(mm, P, labels)  # doctest: +SKIP

The cache lives in ``$MINIDR_CACHE/warmup/<key>``, where the key hashes every
input (backbone, corpus, training pairs, recipe); it is written atomically.

Reference:
    Xiong et al. (2021), Approximate Nearest Neighbor Negative Contrastive
    Learning for Dense Text Retrieval (ANCE), ICLR: section 3, "BM25 Warm Up".
"""
from __future__ import annotations

import hashlib
import json

import torch

from .atomic import atomic_write_text
from .cost import CostMeter
from .dense import corpus_cache_key, encode_corpus
from .index import cached_embeddings
from .dpr import examples_qrels, train_dpr, training_examples
from .models import BiEncoder
from .negatives import bm25_negatives
from .sparse import BM25, cache_root, corpus_fingerprint

__all__ = ["RECIPE", "TEMPERATURE", "LR", "SIGMA", "dpr_budget", "warmup_encoder"]

RECIPE = {"pooling": "mean", "similarity": "cos"}   # chapter 04, "Two choices our backbone makes"
TEMPERATURE = 0.05                                  # softmax temperature over cosines
LR = 1e-4
SIGMA = 1 / TEMPERATURE                             # RankNet's sigma on cosine scores (STAR, LTRe, ADORE): 20


def dpr_budget(profile) -> tuple[int, int]:
    """(steps, batch size) of one DPR training under ``profile`` (chapter 04's budget)."""
    return {"ci": (20, 8), "cpu": (250, 32)}.get(profile.name, (2000, 64))


def _key(data, profile, examples, steps: int, batch: int) -> str:
    h = hashlib.sha256(json.dumps({"backbone": profile.backbone, "steps": steps, "batch": batch,
                                   "lr": LR, "tau": TEMPERATURE, "format": 3, **RECIPE}, sort_keys=True).encode())
    h.update(corpus_fingerprint(data.corpus).encode())
    for ex in examples:
        h.update(f"{ex.qid}\t{ex.positive}\t{ex.teacher}\n".encode())
    return h.hexdigest()[:16]


def warmup_encoder(data, profile, teacher_labels=None, bm25: BM25 | None = None,
                   cache: bool = True) -> tuple[BiEncoder, dict]:
    """Chapter 04's "DPR, + BM25 negatives" bi-encoder, from the cache or trained now.

    Args:
        data: a :class:`~minidr.data.MiniMarco`.
        profile: a :class:`~minidr.config.Profile` (backbone, budget, threads).
        teacher_labels: as for :func:`minidr.dpr.training_examples`.
        bm25: a BM25 over ``data.corpus`` (built if ``None``).
        cache: read and write ``$MINIDR_CACHE/warmup``.

    Returns:
        ``(encoder, cost)``: the model in eval mode, and the cost summary of
        its training (BM25 negatives included), as measured when it was
        trained, plus ``corpus_encode_seconds``: the time of one encoding of
        ``data.corpus`` by this model, done right after training. Its
        embeddings go to the embedding cache, so chapters 05-07 read them back
        with :func:`minidr.dense.encode_corpus` and charge this measured time
        to the method that needs them (LTRe's fixed index, STAR's mining).
    """
    examples = training_examples(data, teacher_labels)
    steps, batch = dpr_budget(profile)
    folder = cache_root() / "warmup" / _key(data, profile, examples, steps, batch)
    cost_file = folder.with_suffix(".cost.json")
    if cache and folder.is_dir() and cost_file.is_file():
        encoder = BiEncoder.from_pretrained(folder)
        return encoder.eval(), json.loads(cost_file.read_text())

    cost = CostMeter()
    with cost:
        bm25 = bm25 or BM25(data.corpus, threads=profile.threads)
        run = bm25.search({e.qid: e.query for e in examples}, k=100)
    negatives = bm25_negatives(run, examples_qrels(examples), n=20, depth=100)
    torch.manual_seed(0)
    encoder = BiEncoder.from_pretrained(profile.backbone, **RECIPE)
    train_dpr(encoder, examples, data.corpus, steps=steps, batch_size=batch, lr=LR,
              temperature=TEMPERATURE, hard_negatives=negatives, n_hard=1, cost=cost)
    summary = cost.summary()
    encoder.eval()
    encode_cost = CostMeter()
    with encode_cost:                                                 # really encode, to time it
        emb = encode_corpus(encoder, data.corpus, cache=False)       # (N, H)
    summary["corpus_encode_seconds"] = round(encode_cost.seconds, 2)
    if cache:                                                         # then chapters 05-07 read it back
        cached_embeddings(corpus_cache_key(encoder, data.corpus), lambda: emb)
    if cache:
        encoder.save(folder)
        atomic_write_text(cost_file, json.dumps(summary, indent=2) + "\n")
    return encoder.eval(), summary
