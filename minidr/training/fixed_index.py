"""Training a query encoder against a fixed passage index, retrieving at every step.

LTRe (Zhan et al., 2020) and ADORE (Zhan et al., 2021) share this loop: a
trained document encoder embeds the corpus **once**; those embeddings and their
index (exact, or compressed with PQ) never change again. At every step the
*current* query encoder embeds the batch's queries, searches the full index,
and a pairwise loss pushes each query's positive above the irrelevant passages
it actually retrieved: no sampling, the negatives are the model's present
mistakes, and a step costs one query forward pass plus one search. LTRe weighs
every pair alike; ADORE weighs each by its effect on MRR@10.

Only the query side learns: passage embeddings enter as a constant array. With
shared towers (one BERT for both) the passage encoder's weights change too, so
evaluate with the *fixed* index (:func:`minidr.retrieval.dense.search_splits`),
never by re-encoding the corpus.

References:
    Zhan et al. (2020), Learning To Retrieve: How to Train a Dense Retrieval
    Model Effectively and Efficiently, arXiv 2010.10469.
    Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
    Negatives, SIGIR.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..core.cost import CostMeter
from .recipe import COSINE_SIGMA, Budget, Recipe
from .batches import Example, QueryBatch, QueryBatches, examples_qrels
from .losses import embedding_stats, ranknet, reciprocal_rank
from .negatives import dense_negative_rows
from .trainer import TrainConfig, Trainer, fit

__all__ = ["FixedIndexRecipe", "Weighting", "StaticRows", "static_negative_rows",
           "fixed_index_loss", "train_query_encoder"]

# weighting(pos_rank (B,), neg_rank (B, n)) -> pair weights (B, n);
# see minidr.methods.adore
Weighting = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# qid -> (rows (n,), ranks (n,)): negatives retrieved once, before training
StaticRows = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FixedIndexRecipe(Recipe):
    """Settings and budgets shared by LTRe and ADORE (chapters 06 and 07).

    Attributes:
        n: passages retrieved per query at every step (DRhard: 200).
        sigma: RankNet's steepness on cosine scores.
        paper_lr: the official code's learning rate (5e-6, over thousands of
            steps), for reference. ``lr`` is ours, measured in chapter 06 from
            the warm-up student: at 2e-5 its query encoder hardly moves in 800
            steps (query cosine to the start 0.996; 94% of the same top 200), so
            per-step retrieval and negatives retrieved once are the same
            training; at 5e-4 they part (the chapter's learning-rate sweep).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8, eval_every=10), "cpu": Budget(800, 32, eval_every=100),
        "gpu": Budget(2000, 64, eval_every=200)})
    lr: float = 5e-4
    n: int = 200
    sigma: float = COSINE_SIGMA
    paper_lr: float = 5e-6


def static_negative_rows(encoder, examples: list[Example], index, n: int,
                         batch_size: int = 256) -> StaticRows:
    """Each training query's top-``n`` non-positive rows, retrieved **once** with
    the query encoder as it is now: the control of chapter 06, which trains
    exactly like LTRe except that its negatives never follow the query encoder.

    Args:
        encoder: the query encoder at the start (``encode_queries``).
        examples: the training pairs; their positives are never negatives.
        index: the fixed :class:`~minidr.retrieval.index.DenseIndex`.
        n: negatives per query (as LTRe's per-step retrieval).
        batch_size: queries per encoding batch.

    Shapes:
        query embeddings ``(n_queries, H)``; each value ``((n,), (n,))``: index
        rows and their 1-based ranks (``-1`` where the index ran out).

    Reference:
        Zhan et al. (2020), Learning To Retrieve, arXiv 2010.10469: LTRe's
        argument is that negatives retrieved by the *current* model match what
        it will retrieve at test time; this is the same training without that.
    """
    queries = {ex.qid: ex.query for ex in examples}           # distinct queries
    with torch.inference_mode():
        q = encoder.encode_queries(list(queries.values()), batch_size=batch_size,
                                   progress=False)             # (n_queries, H)
    rows, ranks = dense_negative_rows(index, list(queries), q,
                                      examples_qrels(examples), n)  # (n_queries, n)
    return {qid: (rows[i], ranks[i]) for i, qid in enumerate(queries)}


def fixed_index_loss(encoder, batch: QueryBatch, index, doc_emb: np.ndarray, qrels,
                     n: int, sigma: float, weighting: Weighting | None = None,
                     static: StaticRows | None = None):
    """One LTRe/ADORE step: encode, retrieve from the full index, pairwise loss.

    1. ``q = E_Q(queries)``, with gradients;
    2. the top-``n`` non-positive rows of the index for ``q``
       (:func:`~minidr.training.negatives.dense_negative_rows`), timed;
    3. scores ``q . d`` against the fixed embeddings of each positive and of
       its retrieved negatives; slots left empty by the search (``-1``) are
       masked out of the loss;
    4. :func:`~minidr.training.losses.ranknet` over the (positive, negative) pairs,
       each pair weighted by ``weighting(pos_rank, neg_rank)`` if given.

    The positive's rank is 1 + the number of retrieved negatives scoring above
    it; a positive below all of them is outside the retrieved list and gets
    rank ``-1`` (its RR counts 0). Negative ranks are their ranks in the
    index's full ranking.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`
            (``encode_query`` is used).
        batch: a :class:`~minidr.training.batches.QueryBatch`.
        index: a :class:`~minidr.retrieval.index.DenseIndex` over the fixed passages.
        doc_emb: the fixed passage embeddings, row ``i`` for ``index.ids[i]``:
            the build input, or ``index.reconstruct_all()`` to score exactly
            what a compressed index sees.
        qrels: qid -> pid -> grade; positives are never negatives.
        n: passages retrieved per query.
        sigma: RankNet's sigma.
        weighting: ``None`` (LTRe) or pair weights, e.g. ADORE's ``delta_rr``.
        static: negatives retrieved once (:func:`static_negative_rows`) to use
            instead of this step's retrieval (the control); ``None`` retrieves.

    Shapes:
        queries (B, Lq) -> q (B, H); rows, ranks (B, n); pos (B, H); neg (B, n, H);
        s_pos (B,), s_neg (B, n).

    Returns:
        ``(loss, stats)``: ranknet's stats plus ``train_mrr10`` (MRR@10 of the
        positives among the retrieved passages), ``retrieval_seconds`` (wall
        time of the search this step) and the query embeddings' spread.
    """
    q = encoder.encode_query(**batch.queries)           # (B, H), with grad
    start = time.perf_counter()
    if static is None:                                  # LTRe: retrieve now
        rows, ranks = dense_negative_rows(index, batch.qids,
                                          q.detach().float().cpu().numpy(),
                                          qrels, n)     # (B, n) each, -1: empty
    else:                                               # the control: as at step 0
        rows = np.stack([static[qid][0] for qid in batch.qids])   # (B, n)
        ranks = np.stack([static[qid][1] for qid in batch.qids])  # (B, n)
    seconds = time.perf_counter() - start
    valid = torch.from_numpy(rows >= 0).to(q.device)    # (B, n)
    pos = torch.from_numpy(doc_emb[batch.pos_rows]).to(q.device)  # (B, H), a constant
    # (B, n, H), a constant
    neg = torch.from_numpy(doc_emb[np.maximum(rows, 0)]).to(q.device)
    q32 = q.float()                                     # float32 scores, also under AMP
    s_pos = (q32 * pos).sum(-1)                         # (B,)
    s_neg = (q32[:, None, :] * neg).sum(-1)             # (B, n)
    with torch.no_grad():
        above = (s_neg > s_pos[:, None]) & valid        # (B, n)
        pos_rank = 1 + above.sum(1)                     # (B,)
        pos_rank[pos_rank > valid.sum(1)] = -1          # below every retrieved one
        neg_rank = torch.from_numpy(ranks).to(q.device)  # (B, n)
        weights = None if weighting is None else weighting(pos_rank, neg_rank)  # (B, n)
    loss, stats = ranknet(s_pos, s_neg, sigma, weights=weights, mask=valid)
    stats.update(train_mrr10=reciprocal_rank(pos_rank, 10).mean().item(),
                 retrieval_seconds=seconds)
    stats.update(embedding_stats(q.detach(), "q_"))
    return loss, stats


def train_query_encoder(encoder, examples: list[Example], index, doc_emb: np.ndarray,
                        steps: int, batch_size: int, lr: float, n: int, sigma: float,
                        weighting: Weighting | None = None, seed: int = 0,
                        static: bool = False, checkpoint_dir: str | None = None,
                        cost: CostMeter | None = None,
                        callbacks=(), device: str | None = None) -> Trainer:
    """Train the query encoder against a fixed index (the loop LTRe and ADORE share).

    Every step is :func:`fixed_index_loss` on a batch of
    :class:`~minidr.training.batches.QueryBatches`; the passage embeddings
    never change and receive no gradient.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`, trained in place. Its
            passage tower gets no gradient, so AdamW leaves it unchanged
            (with shared towers it is the query tower: evaluate on the fixed index).
        examples: training pairs (:func:`~minidr.training.batches.training_examples`);
            all positives of a query are excluded from its negatives.
        index: a :class:`~minidr.retrieval.index.DenseIndex` (flat or IVF-PQ) of the
            fixed passages.
        doc_emb: the fixed embeddings, row ``i`` for ``index.ids[i]``.
        steps, batch_size, lr: optimisation (AdamW, 10% warm-up, linear decay).
        n, sigma, weighting: see :func:`fixed_index_loss`.
        seed: batch order and initialisation seed.
        static: retrieve every query's negatives once, before the first step,
            and keep them (the equal-budget control of LTRe's per-step retrieval).
        checkpoint_dir: resume point.
        cost: charged the training time, steps, ``queries_encoded`` and
            ``retrievals`` (one full-index search per query per step).
        callbacks, device: as for :func:`~minidr.training.trainer.fit`.

    Shapes:
        doc_emb ``(len(index), H)`` float32.
    """
    doc_emb = np.ascontiguousarray(doc_emb, dtype=np.float32)            # (N, H)
    if doc_emb.shape != (len(index), index.index.d):
        raise ValueError("doc_emb must be (len(index), d) = "
                         f"{(len(index), index.index.d)}, got {doc_emb.shape}")
    batches = QueryBatches(encoder, examples, index.ids, batch_size, seed,
                           retrieves=not static)
    qrels = examples_qrels(examples)
    rows = None
    if static:
        cost = cost or CostMeter()
        with cost:                                          # charged to the control
            rows = static_negative_rows(encoder, examples, index, n)
        cost.add(queries_encoded=len(rows), retrievals=len(rows))

    def loss(model, batch):
        return fixed_index_loss(model, batch, index, doc_emb, qrels, n, sigma,
                                weighting, static=rows)

    config = TrainConfig(steps=steps, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
                         device=device)
    return fit(encoder, loss, batches, config, cost, callbacks)
