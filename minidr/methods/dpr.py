"""DPR training: a bi-encoder trained with in-batch (and hard) negatives.

Dense Passage Retrieval (Karpukhin et al., 2020) trains a bi-encoder with a
softmax over the passages of the batch. For query ``q_i`` with positive
``p_i`` and the batch's other passages as negatives,

    L = - log  exp(s(q_i, p_i) / tau) / sum_j exp(s(q_i, p_j) / tau),

where ``j`` runs over every passage in the batch: the other queries'
positives (*in-batch negatives*) and, optionally, ``n_hard`` hard negatives
per query (DPR: BM25 passages without the answer).

This module is the at-scale version of what chapter 04 writes by hand:
:class:`~minidr.training.batches.GroupedBatches` builds the batches (a pure
function of the step, so training can resume exactly), :func:`dpr_loss`
scores them, :func:`train_dpr` runs :func:`~minidr.training.trainer.fit`.
Later chapters (ANCE, STAR, RocketQA, TAS-B) change only where the negatives
come from or how batches are composed. :data:`RECIPE` holds the settings and
budgets that chapter 04 and the library share.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..training.batches import Example, GroupedBatches
from ..training.batch_losses import in_batch_loss
from ..training.recipe import COSINE_TEMPERATURE, BiEncoderRecipe, Budget
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["DPRRecipe", "RECIPE", "dpr_loss", "train_dpr"]


@dataclass(frozen=True)
class DPRRecipe(BiEncoderRecipe):
    """DPR's settings (chapter 04) and budgets.

    Attributes:
        pooling, similarity: the bi-encoder (mean pooling and cosine: an
            MLM-only backbone never trained ``[CLS]``; see chapter 04).
        temperature: softmax temperature over cosine scores.
        n_hard: hard (BM25) negatives per query when hard negatives are used.
        n_candidates, depth: each query keeps ``n_candidates`` BM25 negatives
            from its top ``depth`` (a batch samples ``n_hard`` of them).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8), "cpu": Budget(250, 32), "gpu": Budget(2000, 64)})
    lr: float = 1e-4
    temperature: float = COSINE_TEMPERATURE
    n_hard: int = 1
    n_candidates: int = 20
    depth: int = 100


RECIPE = DPRRecipe()


# DPR's loss is the in-batch softmax over a grouped batch (written once, in training/):
# dpr_loss(encoder, batch, temperature) -> (loss, stats).
dpr_loss = in_batch_loss


def train_dpr(encoder, examples: list[Example], corpus: Corpus, steps: int,
              batch_size: int = 32, lr: float = RECIPE.lr,
              hard_negatives: dict[str, list[str]] | None = None,
              n_hard: int | None = None,
              temperature: float = RECIPE.temperature, seed: int = 0,
              checkpoint_dir: str | None = None, cost: CostMeter | None = None,
              callbacks=(), device: str | None = None) -> Trainer:
    """Train ``encoder`` with DPR's loss; returns the trainer (``.history``, ``.cost``).

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`, trained in place.
        examples, corpus, batch_size, seed: see
            :class:`~minidr.training.batches.GroupedBatches`.
        steps, lr: optimisation (AdamW, 10% warm-up, linear decay).
        hard_negatives: qid -> negative pids (e.g. BM25's); ``None``: in-batch only.
        n_hard: hard negatives per query (default: the recipe's, when
            ``hard_negatives`` is given).
        temperature: softmax temperature.
        checkpoint_dir: resume point.
        cost: charged the training time, steps, queries and passages encoded.
        callbacks, device: see :func:`~minidr.training.trainer.fit`.

    Reference:
        Karpukhin et al. (2020), Dense Passage Retrieval for Open-Domain Question
        Answering, EMNLP.
    """
    if n_hard is None:
        n_hard = RECIPE.n_hard if hard_negatives is not None else 0
    batches = GroupedBatches(encoder, examples, corpus, batch_size, n_hard,
                             hard_negatives, seed)
    config = TrainConfig(steps=steps, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
                         device=device)
    return fit(encoder, lambda m, b: in_batch_loss(m, b, temperature), batches, config,
               cost, callbacks)
