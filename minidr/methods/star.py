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
(:func:`minidr.training.losses.ranknet`), and the two pair losses are combined as
(:func:`minidr.training.losses.star_scores_loss`)

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

from dataclasses import dataclass, field

import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..training.batches import Example, GroupedBatch, GroupedBatches
from ..training.losses import embedding_stats, star_scores_loss
from ..training.mining import ann_negatives
from ..training.recipe import COSINE_SIGMA, Budget, Recipe
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["STARRecipe", "RECIPE", "static_negatives", "star_loss", "train_star"]


@dataclass(frozen=True)
class STARRecipe(Recipe):
    """STAR's settings and budgets (chapter 07).

    Attributes:
        alpha: weight of the random-negative loss (the paper gives no value).
        sigma: RankNet's steepness on cosine scores.
        n, depth: static negatives kept per query, from the start's top ``depth``.
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(10, 8), "cpu": Budget(800, 32), "gpu": Budget(4000, 64)})
    lr: float = 1e-4
    alpha: float = 1.0
    sigma: float = COSINE_SIGMA
    n: int = 20
    depth: int = 200


RECIPE = STARRecipe()


def static_negatives(encoder, examples: list[Example], corpus: Corpus,
                     n: int = RECIPE.n, depth: int = RECIPE.depth,
                     cost: CostMeter | None = None,
                     cache: bool = True) -> dict[str, list[str]]:
    """STAR's static hard negatives: mined once, from the warm-up model's own ranking.

    The same mining as ANCE's refresh (:func:`minidr.training.mining.ann_negatives`),
    done once and (by default) with the embedding cache on: the negatives never
    change, so neither do the passage embeddings they come from.

    Args:
        encoder: the start :class:`~minidr.models.bi_encoder.BiEncoder`
            (chapter 07: the warm-up student,
            :func:`minidr.substrate.build_student.load_student`).
        examples, corpus, n, depth, cost: as in
            :func:`minidr.training.mining.ann_negatives` (DRhard keeps the warm-up
            model's top 200 non-positive passages).
        cache: reuse the start's cached passage embeddings; ``False`` encodes
            the corpus again, so that ``cost`` holds the real price of mining.

    Returns:
        qid -> up to ``n`` pids, never a positive of the query.
    """
    return ann_negatives(encoder, examples, corpus, n=n, depth=depth, cost=cost,
                         cache=cache)


def star_loss(encoder, batch: GroupedBatch, alpha: float = RECIPE.alpha,
              sigma: float = RECIPE.sigma) -> tuple[torch.Tensor, dict[str, float]]:
    """STAR's loss of one :class:`~minidr.training.batches.GroupedBatch` with one
    negative.

    Args:
        encoder: a :class:`~minidr.models.encoder.RetrievalEncoder`.
        batch: from ``GroupedBatches(..., n_hard=1)`` (group 2).
        alpha, sigma: see :func:`~minidr.training.losses.star_scores_loss`.

    Shapes:
        queries (B, Lq) -> q (B, H); passages (2B, Lp) -> p (2B, H); scores (B, 2B).

    Reference:
        Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
        Negatives, SIGIR (STAR).
    """
    if batch.group != 2:
        raise ValueError("STAR needs one static negative per query (group 2), "
                         f"got group {batch.group}")
    q = encoder.encode_query(**batch.queries)                      # (B, H)
    p = encoder.encode_passage(**batch.passages)                   # (2B, H)
    loss, stats = star_scores_loss(encoder.score(q, p), alpha, sigma)  # scores (B, 2B)
    stats.update(embedding_stats(q.detach(), "q_"))
    stats.update(embedding_stats(p.detach(), "p_"))
    return loss, stats


def train_star(encoder, examples: list[Example], corpus: Corpus,
               negatives: dict[str, list[str]], steps: int, batch_size: int = 32,
               lr: float = RECIPE.lr, alpha: float = RECIPE.alpha,
               sigma: float = RECIPE.sigma, seed: int = 0,
               checkpoint_dir: str | None = None, cost: CostMeter | None = None,
               callbacks=(), device: str | None = None) -> Trainer:
    """Train ``encoder`` with STAR; returns the trainer (``.history``, ``.cost``).

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`, trained in place (STAR
            starts from the model that mined ``negatives``).
        examples, corpus, batch_size, seed: see
            :class:`~minidr.training.batches.GroupedBatches`.
        negatives: qid -> static hard negatives, from :func:`static_negatives`.
        steps, lr: optimisation (AdamW, 10% warm-up, linear decay); the
            default ``lr`` is chapter 04's (DRhard: 1e-4 with LAMB, batch 256).
        alpha, sigma: see :func:`~minidr.training.losses.star_scores_loss`.
        checkpoint_dir: resume point.
        cost: charged the training time, steps, queries and passages encoded.
        callbacks, device: see :func:`~minidr.training.trainer.fit`.

    Reference:
        Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
        Negatives, SIGIR.
    """
    if not negatives:
        raise ValueError("STAR needs static hard negatives (see static_negatives)")
    batches = GroupedBatches(encoder, examples, corpus, batch_size, n_hard=1,
                             hard_negatives=negatives, seed=seed)
    config = TrainConfig(steps=steps, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
                         device=device)
    return fit(encoder, lambda m, b: star_loss(m, b, alpha, sigma), batches, config,
               cost, callbacks)
