"""STAR: static hard negatives, steadied by random negatives.

Zhan et al. (2021) show that hard negatives optimise the top of the ranking
better than random ones, but that *static* hard negatives (mined once, by a
fixed model) make training unstable: the model soon ranks them low, and
nothing tells it about the rest of the corpus. STAR (STable Training
Algorithm for dense Retrieval) keeps the cheap static negatives and adds
random negatives to steady training; the random negatives cost nothing,
because they are the *other passages of the batch*, already encoded.

With one static negative per query, a batch is laid out like DPR's,
``[pos_0, neg_0, pos_1, neg_1, ...]``. For query ``i``, with ``s+`` the
score of its positive:

* its **static hard negative** is its own ``neg_i``;
* its **random negatives** are every other passage of the batch: the other
  queries' positives and static negatives (``2B - 2`` of them).

Each (positive, negative) pair is scored by RankNet
(:func:`minidr.losses.ranknet`), and the two pair losses are combined as

    L = alpha * L_random + L_static,

each ``L_*`` being a mean over its pairs. The paper weights the random
negatives' loss by a hyperparameter ``alpha`` (its Eq. 13) but, as far as we
could find, does not say which value it used: jingtaozhan/DRhard issue #20
asks exactly this and is still open, without an answer from the authors.
The official code (DRhard ``model.py``, ``inbatch_train``,
called by ``star/train.py`` with one hard negative per query) sums *every*
pair's loss and divides by the number of pairs: no explicit ``alpha``, each
pair weighted equally; there the pool of hard negatives (every query's) and
the pool of in-batch positives get about half the pairs each. Our default
``alpha = 1`` weights a query's own static negative as much as all its
random negatives together, in the same spirit; ``alpha = 2 * (B - 1)``
weights every pair equally, as the official code does (up to the constant
factor ``2B - 1``).

Scores here are cosines in ``[-1, 1]`` (chapter 04's model), so RankNet's
``sigma`` is 20 by default (= 1 / 0.05, chapter 04's temperature); the
official code scores with dot products of embeddings that are not unit
length, and its pair loss ``-log softmax([s+, s-])[0]`` is RankNet with ``sigma = 1``.

Two differences from the official code: a batch passage that is in fact a
positive of another query of the batch (the same query twice, with two
positives) counts here as a random negative (DRhard masks such pairs); and
each query keeps ``n`` (default 20) of the warm-up model's top ``depth``
(200) non-positive passages, where DRhard keeps all 200 (``n = depth``).

Reference:
    Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
    Negatives, SIGIR. Code: github.com/jingtaozhan/DRhard.
"""
from __future__ import annotations

import torch

from .ance import ann_negatives
from .cost import CostMeter
from .dpr import DPRBatches, Example, metered_trainer
from .formats import Corpus
from .losses import embedding_stats, ranknet
from .train import Trainer
from .warmup import LR, SIGMA

__all__ = ["SIGMA", "static_negatives", "star_scores_loss", "star_loss", "train_star"]


def static_negatives(encoder, examples: list[Example], corpus: Corpus, n: int = 20,
                     depth: int = 200, cost: CostMeter | None = None) -> dict[str, list[str]]:
    """STAR's static hard negatives: mined once, from the warm-up model's own ranking.

    The same mining as ANCE's refresh (:func:`minidr.ance.ann_negatives`),
    done once and with the embedding cache on: the negatives never change,
    so neither do the passage embeddings they come from.

    Args:
        encoder: the warm-up :class:`~minidr.models.BiEncoder` (:func:`minidr.warmup.warmup_encoder`).
        examples, corpus, n, depth, cost: as in :func:`minidr.ance.ann_negatives`
            (DRhard keeps the warm-up model's top 200 non-positive passages).

    Returns:
        qid -> up to ``n`` pids, never a positive of the query.
    """
    return ann_negatives(encoder, examples, corpus, n=n, depth=depth, cost=cost, cache=True)


def star_scores_loss(scores: torch.Tensor, alpha: float = 1.0,
                     sigma: float = SIGMA) -> tuple[torch.Tensor, dict[str, float]]:
    """STAR's loss from a batch's score matrix (see the module docstring).

    Args:
        scores: every query of the batch against every passage, passages laid
            out ``[pos_0, neg_0, pos_1, neg_1, ...]``.
        alpha: weight of the random-negative loss.
        sigma: RankNet steepness (20 for cosines).

    Shapes:
        scores ``(B, 2B)`` with ``B >= 2``; loss ``()``.

    Returns:
        ``(loss, stats)``; stats: ``loss_static``, ``loss_random``,
        ``static_pair_accuracy``, ``random_pair_accuracy`` (fraction of pairs
        with ``s+ > s-``), ``pos_score``, ``static_neg_score``, ``random_neg_score``.

    Example::

        >>> scores = torch.tensor([[0.9, 0.8, 0.2, 0.0],      # query 0: [pos_0, neg_0, pos_1, neg_1]
        ...                        [0.1, 0.3, 0.7, 1.0]])     # query 1: its static neg beats its pos
        >>> loss, stats = star_scores_loss(scores, sigma=1.0)
        >>> stats["static_pair_accuracy"], stats["random_pair_accuracy"]
        (0.5, 1.0)
    """
    B = scores.shape[0]
    if scores.ndim != 2 or scores.shape[1] != 2 * B or B < 2:
        raise ValueError(f"expected scores (B, 2B) with B >= 2, got {tuple(scores.shape)}")
    rows = torch.arange(B, device=scores.device)                   # (B,)
    pos = scores[rows, 2 * rows]                                   # (B,)   s+ of each query
    static = scores[rows, 2 * rows + 1]                            # (B,)   its own hard negative
    own = torch.zeros_like(scores, dtype=torch.bool)               # (B, 2B)
    own[rows, 2 * rows] = own[rows, 2 * rows + 1] = True
    random = scores[~own].view(B, 2 * B - 2)                       # (B, 2B-2) everyone else's
    loss_static, s_stats = ranknet(pos, static[:, None], sigma)
    loss_random, r_stats = ranknet(pos, random, sigma)
    loss = alpha * loss_random + loss_static
    stats = {"loss_static": loss_static.item(), "loss_random": loss_random.item(),
             "static_pair_accuracy": s_stats["pair_accuracy"],
             "random_pair_accuracy": r_stats["pair_accuracy"],
             "pos_score": s_stats["pos_score"], "static_neg_score": s_stats["neg_score"],
             "random_neg_score": r_stats["neg_score"]}
    return loss, stats


def star_loss(encoder, batch: dict, alpha: float = 1.0,
              sigma: float = SIGMA) -> tuple[torch.Tensor, dict[str, float]]:
    """STAR's loss of one :class:`~minidr.dpr.DPRBatches` batch with ``n_hard=1``.

    Args:
        encoder: a :class:`~minidr.models.BiEncoder`.
        batch: ``{"queries", "passages", "group": 2}`` from ``DPRBatches(..., n_hard=1)``.
        alpha, sigma: see :func:`star_scores_loss`.

    Shapes:
        queries (B, Lq) -> q (B, H); passages (2B, Lp) -> p (2B, H); scores (B, 2B).

    Reference:
        Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
        Negatives, SIGIR (STAR).
    """
    if batch["group"] != 2:
        raise ValueError(f"STAR needs one static negative per query (group 2), got group {batch['group']}")
    q = encoder.encode_query(**batch["queries"])                   # (B, H)
    p = encoder.encode_passage(**batch["passages"])                # (2B, H)
    loss, stats = star_scores_loss(encoder.score(q, p), alpha, sigma)  # scores (B, 2B)
    stats.update(embedding_stats(q.detach(), "q_"))
    stats.update(embedding_stats(p.detach(), "p_"))
    return loss, stats


def train_star(encoder, examples: list[Example], corpus: Corpus, negatives: dict[str, list[str]],
               steps: int, batch_size: int = 32, lr: float = LR, alpha: float = 1.0,
               sigma: float = SIGMA, seed: int = 0, cost: CostMeter | None = None, callbacks=(),
               device: str | None = None) -> Trainer:
    """Train ``encoder`` with STAR; returns the trainer (``.history``, ``.cost``).

    Args:
        encoder: a :class:`~minidr.models.BiEncoder`, trained in place (STAR
            starts from the warm-up model that mined ``negatives``).
        examples, corpus, batch_size, seed: see :class:`~minidr.dpr.DPRBatches`.
        negatives: qid -> static hard negatives, from :func:`static_negatives`.
        steps, lr: optimisation (see :class:`~minidr.train.TrainConfig`); the
            default ``lr`` is chapter 04's (DRhard: 1e-4 with LAMB, batch 256).
        alpha, sigma: see :func:`star_scores_loss`.
        cost: charged the training time, steps, queries and passages encoded.
        callbacks: trainer callbacks, e.g. evaluation.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).

    Reference:
        Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
        Negatives, SIGIR.
    """
    if not negatives:
        raise ValueError("STAR needs static hard negatives (see static_negatives)")
    batches = DPRBatches(encoder, examples, corpus, batch_size, hard_negatives=negatives,
                         n_hard=1, seed=seed)
    trainer = metered_trainer(encoder, batches, lambda m, b: star_loss(m, b, alpha, sigma), steps, lr,
                              seed, cost, callbacks, device)
    trainer.fit()
    return trainer
