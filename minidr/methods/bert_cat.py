"""BERT_CAT (monoBERT): a cross-encoder trained to re-rank, chapter 03's other side.

A cross-encoder reads ``[CLS] q [SEP] p [SEP]`` and outputs one score. It is
trained here with localized contrastive estimation (LCE): a softmax over each
query's group [positive, negatives...], on exactly the groups the bi-encoder
of chapter 04 sees (:class:`~minidr.training.batches.PairBatches`), so chapter
03 compares two architectures, not two data pipelines. Given the teacher's
scores of the same groups, it learns them instead (:func:`cross_encoder_kl_loss`):
the softmax over each group matches the teacher's, so every negative says how
far below the positive it belongs, not only that it does.

References:
    Nogueira & Cho (2019), Passage Re-ranking with BERT, arXiv 1901.04085.
    Gao, Dai & Callan (2021), Rethink Training of BERT Rerankers in Multi-Stage
    Retrieval Pipeline, ECIR (LCE).
    Hinton, Vinyals & Dean (2015), Distilling the Knowledge in a Neural Network.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..models.cross_encoder import CrossEncoder
from ..training.batches import Example, PairBatch, PairBatches
from ..training.losses import distill_kl, info_nce
from ..training.recipe import COSINE_TEMPERATURE, Budget, Recipe
from ..training.teacher_targets import TeacherTargets
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["CrossEncoderRecipe", "RECIPE", "cross_encoder_loss",
           "cross_encoder_kl_loss", "train_cross_encoder"]


@dataclass(frozen=True)
class CrossEncoderRecipe(Recipe):
    """The cross-encoder's settings; budgets and lr equal the bi-encoder's (chapter 03).

    Attributes:
        n_neg: BM25 negatives per query in a group.
        depth: BM25 candidates each query re-ranks.
        teacher_temperature: divides the teacher's cosine scores before their
            softmax when the cross-encoder learns them (its own logits are
            unscaled).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8), "cpu": Budget(250, 32), "gpu": Budget(2000, 64)})
    lr: float = 1e-4
    n_neg: int = 1
    depth: int = 100
    teacher_temperature: float = COSINE_TEMPERATURE


RECIPE = CrossEncoderRecipe()


def cross_encoder_loss(model: CrossEncoder, batch: PairBatch):
    """Softmax cross-entropy over each query's group [positive, negatives...] (LCE).

    Args:
        model: a :class:`~minidr.models.cross_encoder.CrossEncoder`.
        batch: a :class:`~minidr.training.batches.PairBatch`.

    Shapes:
        pairs (B*G, L) -> scores (B*G,) -> (B, G), the positive in column 0.

    Reference:
        Gao, Dai & Callan (2021), Rethink Training of BERT Rerankers in Multi-Stage
        Retrieval Pipeline (localized contrastive estimation), ECIR.
    """
    scores = model(**batch.pairs).view(-1, batch.group)        # (B, G)
    targets = torch.zeros(scores.shape[0], dtype=torch.long,
                          device=scores.device)                # (B,)
    return info_nce(scores, targets)


def cross_encoder_kl_loss(model: CrossEncoder, batch: PairBatch,
                          teacher_temperature: float = RECIPE.teacher_temperature):
    """Listwise distillation: each group's softmax matches the teacher's softmax.

    Args:
        model: a :class:`~minidr.models.cross_encoder.CrossEncoder`.
        batch: a :class:`~minidr.training.batches.PairBatch` with ``teacher`` scores.
        teacher_temperature: the teacher's scores are divided by it.

    Shapes:
        pairs (B*G, L) -> scores (B*G,) -> (B, G); teacher (B, G).

    Reference:
        Hinton, Vinyals & Dean (2015), Distilling the Knowledge in a Neural Network;
        Ren et al. (2021), RocketQAv2, EMNLP (listwise KL over a candidate list).
    """
    if batch.teacher is None:
        raise ValueError("this batch has no teacher scores: build PairBatches with "
                         "targets=TeacherTargets(scores)")
    scores = model(**batch.pairs).view(-1, batch.group)           # (B, G)
    return distill_kl(scores, batch.teacher.to(scores.device),
                      temperature=1.0, teacher_temperature=teacher_temperature)


def train_cross_encoder(model: CrossEncoder, examples: list[Example], corpus: Corpus,
                        negatives: dict[str, list[str]], steps: int,
                        batch_size: int = 16, n_neg: int = RECIPE.n_neg,
                        lr: float = RECIPE.lr, seed: int = 0,
                        cost: CostMeter | None = None,
                        checkpoint_dir: str | None = None,
                        device: str | None = None,
                        teacher: TeacherTargets | None = None,
                        teacher_temperature: float = RECIPE.teacher_temperature
                        ) -> Trainer:
    """Train a cross-encoder on (query, positive, ``n_neg`` negatives) groups.

    Args:
        model: a :class:`~minidr.models.cross_encoder.CrossEncoder`, trained in place.
        examples, corpus, batch_size, n_neg, negatives, seed: see
            :class:`~minidr.training.batches.PairBatches`.
        steps, lr: optimisation (AdamW, 10% warm-up, linear decay).
        teacher: the teacher's scores: learn them (:func:`cross_encoder_kl_loss`)
            instead of the hard label (:func:`cross_encoder_loss`).
        teacher_temperature: see :func:`cross_encoder_kl_loss`.
        cost: charged the training time, steps and pairs scored.
        checkpoint_dir, device: see :func:`~minidr.training.trainer.fit`.

    Returns:
        The trainer (``.history``, ``.cost``).
    """
    if not negatives:
        raise ValueError("a cross-encoder needs negatives to contrast with "
                         "(e.g. BM25 negatives)")
    batches = PairBatches(model, examples, corpus, batch_size, n_neg, negatives, seed,
                          targets=teacher)
    config = TrainConfig(steps=steps, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
                         device=device)
    loss = cross_encoder_loss
    if teacher is not None:
        def loss(m, b):
            return cross_encoder_kl_loss(m, b, teacher_temperature)
    return fit(model, loss, batches, config, cost)
