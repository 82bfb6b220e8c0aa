"""LTRe: train the query encoder against a fixed passage index, retrieving at every step.

Learning To Retrieve (Zhan et al., 2020) splits dense retrieval training in two.
A trained document encoder embeds the corpus **once**; those embeddings and
their index (exact, or compressed with PQ) never change again. Then, at every
step, the *current* query encoder embeds the batch's queries, searches the
full index, and a pairwise loss pushes each query's positive above the
irrelevant passages it actually retrieved: no sampling, the negatives are the
model's present mistakes, and a step costs one query forward pass plus one search.

ADORE (:mod:`minidr.adore`) is the same loop with the pairs weighted by how
much they matter to MRR@10, so both are built on :func:`train_query_encoder`::

    doc_emb = encode_corpus(star_model, mm.corpus)                 # (n, H), fixed
    index = DenseIndex.build(doc_emb, list(mm.corpus), kind="ivfpq")
    trainer = train_ltre(query_model, examples, index, index.reconstruct_all(), steps=2000)
    runs = search_splits(query_model, index, mm)                    # evaluate on the same index

Defaults, from the official code of the same authors (``jingtaozhan/DRhard``,
``adore/train.py``; its README presents the LTRe paper as the previous version
of ADORE): ``n = 200`` passages retrieved per query (``--neg_topk 200``); a
RankNet loss over every (relevant, retrieved irrelevant) pair, averaged over
pairs then queries; AdamW, lr ``5e-6``, batch 32. Their scores are raw dot
products of unnormalised RoBERTa embeddings with ``sigma = 1``; our models use
cosine scores in [-1, 1], so ``sigma = 1 / 0.05 = 20``, the temperature of every
other chapter (:data:`minidr.warmup.TEMPERATURE`).

Only the query side learns: passage embeddings enter as a constant array. With
shared towers (one BERT for both) the passage encoder's weights change too, so
evaluate with the *fixed* index (:func:`minidr.dense.search_splits`), never by
re-encoding the corpus.

Reference:
    Zhan et al. (2020), Learning To Retrieve: How to Train a Dense Retrieval
    Model Effectively and Efficiently, arXiv 2010.10469.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from .cost import CostMeter
from .dpr import DPRBatches, Example, examples_qrels
from .losses import embedding_stats, ranknet, reciprocal_rank
from .negatives import dense_negative_rows
from .train import TrainConfig, Trainer
from .warmup import SIGMA

__all__ = ["SIGMA", "QueryBatches", "fixed_index_loss", "train_query_encoder", "train_ltre"]

# weighting(pos_rank (B,), neg_rank (B, n)) -> pair weights (B, n); see minidr.adore
Weighting = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class QueryBatches:
    """``batches(i)``: the i-th batch of training queries and the index row of each positive.

    Batches follow :class:`~minidr.dpr.DPRBatches`' order (a fresh shuffle per
    epoch), so batch ``i`` depends on ``i`` alone. No passage text is needed:
    passages are rows of the fixed index.

    Args:
        encoder: a :class:`~minidr.models.BiEncoder` (its tokenizer is used).
        examples: from :func:`minidr.dpr.training_examples`.
        ids: the index's passage ids (``index.ids``); every positive must be one.
        batch_size: queries per batch (B).
        seed: the sampling seed.

    Returns (per call):
        ``{"queries": tokens (B, Lq), "qids": [B str], "pos_rows": (B,) int64}``.
    """

    def __init__(self, encoder, examples: list[Example], ids: list[str], batch_size: int = 32,
                 seed: int = 0):
        row_of = {pid: row for row, pid in enumerate(ids)}
        missing = sorted({ex.positive for ex in examples} - set(row_of))
        if missing:
            raise ValueError(f"{len(missing)} positives are not in the index, e.g. {missing[:3]}")
        self.encoder, self.row_of = encoder, row_of
        self.order = DPRBatches(encoder, examples, corpus={}, batch_size=batch_size, seed=seed)

    def __call__(self, i: int) -> dict:
        batch = self.order.select(i)                 # only DPRBatches' example order is used
        return {"queries": self.encoder.tokenize_queries([ex.query for ex in batch]),
                "qids": [ex.qid for ex in batch],
                "pos_rows": np.array([self.row_of[ex.positive] for ex in batch])}


def fixed_index_loss(encoder, batch: dict, index, doc_emb: np.ndarray, qrels, n: int = 200,
                     sigma: float = SIGMA, weighting: Weighting | None = None):
    """One LTRe/ADORE step: encode, retrieve from the full index, pairwise loss.

    1. ``q = E_Q(queries)``, with gradients;
    2. the top-``n`` non-positive rows of the index for ``q``
       (:func:`~minidr.negatives.dense_negative_rows`), timed;
    3. scores ``q . d`` against the fixed embeddings of each positive and of
       its retrieved negatives; slots left empty by the search (``-1``) are
       masked out of the loss;
    4. :func:`~minidr.losses.ranknet` over the (positive, negative) pairs,
       each pair weighted by ``weighting(pos_rank, neg_rank)`` if given.

    The positive's rank is 1 + the number of retrieved negatives scoring above
    it; a positive below all of them is outside the retrieved list and gets
    rank ``-1`` (its RR counts 0). Negative ranks are their ranks in the
    index's full ranking.

    Args:
        encoder: a :class:`~minidr.models.BiEncoder` (``encode_query`` is used).
        batch: from :class:`QueryBatches`.
        index: a :class:`~minidr.index.DenseIndex` over the fixed passages.
        doc_emb: the fixed passage embeddings, row ``i`` for ``index.ids[i]``:
            the build input, or ``index.reconstruct_all()`` to score exactly
            what a compressed index sees.
        qrels: qid -> pid -> grade; positives are never negatives.
        n: passages retrieved per query.
        sigma: RankNet's sigma.
        weighting: ``None`` (LTRe) or pair weights, e.g. ADORE's ``delta_rr``.

    Shapes:
        queries (B, Lq) -> q (B, H); rows, ranks (B, n); pos (B, H); neg (B, n, H);
        s_pos (B,), s_neg (B, n).

    Returns:
        ``(loss, stats)``: ranknet's stats plus ``train_mrr10`` (MRR@10 of the
        positives among the retrieved passages), ``retrieval_seconds`` (wall
        time of the search this step) and the query embeddings' spread.
    """
    q = encoder.encode_query(**batch["queries"])                        # (B, H), with grad
    start = time.perf_counter()
    rows, ranks = dense_negative_rows(index, batch["qids"], q.detach().float().cpu().numpy(),
                                      qrels, n)                          # (B, n) each, -1: empty
    seconds = time.perf_counter() - start
    valid = torch.from_numpy(rows >= 0).to(q.device)                     # (B, n)
    pos = torch.from_numpy(doc_emb[batch["pos_rows"]]).to(q.device)      # (B, H), a constant
    neg = torch.from_numpy(doc_emb[np.maximum(rows, 0)]).to(q.device)    # (B, n, H), a constant
    q32 = q.float()                                                      # float32 scores, also under AMP
    s_pos = (q32 * pos).sum(-1)                                          # (B,)
    s_neg = (q32[:, None, :] * neg).sum(-1)                              # (B, n)
    with torch.no_grad():
        above = (s_neg > s_pos[:, None]) & valid                         # (B, n)
        pos_rank = 1 + above.sum(1)                                      # (B,)
        pos_rank[pos_rank > valid.sum(1)] = -1                           # below every retrieved one
        neg_rank = torch.from_numpy(ranks).to(q.device)                  # (B, n)
        weights = None if weighting is None else weighting(pos_rank, neg_rank)   # (B, n)
    loss, stats = ranknet(s_pos, s_neg, sigma, weights=weights, mask=valid)
    stats.update(train_mrr10=reciprocal_rank(pos_rank, 10).mean().item(), retrieval_seconds=seconds)
    stats.update(embedding_stats(q.detach(), "q_"))
    return loss, stats


def train_query_encoder(encoder, examples: list[Example], index, doc_emb: np.ndarray, steps: int,
                        batch_size: int = 32, lr: float = 5e-6, n: int = 200, sigma: float = SIGMA,
                        weighting: Weighting | None = None, seed: int = 0,
                        checkpoint_dir: str | None = None, cost: CostMeter | None = None,
                        callbacks=(), device: str | None = None) -> Trainer:
    """Train the query encoder against a fixed index (the loop LTRe and ADORE share).

    Every step is :func:`fixed_index_loss` on a batch of :class:`QueryBatches`;
    the passage embeddings never change and receive no gradient.

    Args:
        encoder: a :class:`~minidr.models.BiEncoder`, trained in place. Its
            passage tower gets no gradient, so AdamW leaves it unchanged
            (with shared towers it is the query tower, see the module docstring).
        examples: training pairs (:func:`minidr.dpr.training_examples`);
            all positives of a query are excluded from its negatives.
        index: a :class:`~minidr.index.DenseIndex` (flat or IVF-PQ) of the fixed passages.
        doc_emb: the fixed embeddings, row ``i`` for ``index.ids[i]``.
        steps, batch_size, lr: optimisation (AdamW, 10% warm-up, linear decay).
        n, sigma, weighting: see :func:`fixed_index_loss`.
        seed: batch order and initialisation seed.
        checkpoint_dir: resume point.
        cost: charged the training time, steps, ``queries_encoded`` and
            ``retrievals`` (one full-index search per query per step).
        callbacks, device: as for :class:`~minidr.train.Trainer`.

    Shapes:
        doc_emb ``(len(index), H)`` float32.
    """
    doc_emb = np.ascontiguousarray(doc_emb, dtype=np.float32)            # (N, H)
    if doc_emb.shape != (len(index), index.index.d):
        raise ValueError(f"doc_emb must be (len(index), d) = {(len(index), index.index.d)}, "
                         f"got {doc_emb.shape}")
    batches = QueryBatches(encoder, examples, index.ids, batch_size, seed)
    qrels = examples_qrels(examples)
    cost = cost or CostMeter()

    def compute_loss(model, batch):
        size = len(batch["qids"])
        cost.add(queries_encoded=size, retrievals=size)
        return fixed_index_loss(model, batch, index, doc_emb, qrels, n, sigma, weighting)

    config = TrainConfig(steps=steps, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
                         checkpoint_every=max(steps // 5, 50) if checkpoint_dir else 0, device=device)
    trainer = Trainer(encoder, compute_loss, batches, config, callbacks=callbacks, cost=cost)
    trainer.fit()
    return trainer


def train_ltre(encoder, examples: list[Example], index, doc_emb: np.ndarray, steps: int,
               batch_size: int = 32, lr: float = 5e-6, n: int = 200, sigma: float = SIGMA,
               seed: int = 0, checkpoint_dir: str | None = None, cost: CostMeter | None = None,
               callbacks=(), device: str | None = None) -> Trainer:
    """LTRe: :func:`train_query_encoder` with the plain (unweighted) RankNet loss.

    Args: as in :func:`train_query_encoder`. Reference: Zhan et al. (2020), arXiv 2010.10469.
    """
    return train_query_encoder(encoder, examples, index, doc_emb, steps, batch_size=batch_size,
                               lr=lr, n=n, sigma=sigma, weighting=None, seed=seed,
                               checkpoint_dir=checkpoint_dir, cost=cost, callbacks=callbacks,
                               device=device)
