"""Knowledge distillation into a bi-encoder: Margin-MSE, KL, embeddings (chapter 10).

A teacher that is better than the student gives more than its top-1 label:
for every candidate it says *how* relevant it is. The student sees exactly the
same batches under every loss (:class:`~minidr.training.batches.GroupedBatches`:
``B`` queries, each with its positive and ``n_neg`` negatives from the
teacher's ranks), and only the loss differs:

* ``"hard labels"`` (the control): the in-batch softmax of DPR, which knows
  only which passage is the positive, and contrasts it with every passage of
  the batch;
* ``"hard labels, own group"``: the same softmax over the query's own group
  only, the candidates the two distillation losses see (it separates "soft
  targets" from "more negatives");
* ``"Margin-MSE"`` (Hofstaetter et al. 2020): for each (positive, negative)
  pair the student's score margin regresses the teacher's margin;
* ``"KL"``: the softmax over each query's group matches the teacher's softmax
  (listwise distillation; Hinton et al. 2015, as in RocketQAv2 and TAS-B);
* ``"embedding MSE"``: no scores at all: the student's query and passage
  embeddings, mapped by a linear head into the teacher's space, regress the
  teacher's embeddings of the same texts (as in TinyBERT's hidden-state
  loss, and Reimers & Gurevych 2020 for sentence embeddings); the head is
  trained with the student and then dropped.

The teacher's scores are read from its stored top-k of every training query
(:class:`~minidr.training.teacher_targets.TeacherTargets`), its embeddings from
a :class:`~minidr.training.teacher_embeddings.TeacherEmbeddings` prepared
before training: no teacher runs inside a step, so every loss costs the same
per step.

Example::

    scores = load_teacher_scores()
    negatives = teacher_negatives(scores, examples, mm.corpus, RECIPE.teacher_ranks)
    train_distilled(student, "Margin-MSE", examples, mm.corpus, negatives,
                    TeacherTargets(scores), steps=250, batch_size=32)

References:
    Hofstaetter et al. (2020), Improving Efficient Neural Ranking Models with
    Cross-Architecture Knowledge Distillation, arXiv 2010.02666 (Margin-MSE).
    Hinton, Vinyals & Dean (2015), Distilling the Knowledge in a Neural Network.
    Reimers & Gurevych (2020), Making Monolingual Sentence Embeddings
    Multilingual using Knowledge Distillation, EMNLP (embedding MSE).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..training.batch_losses import group_scores, in_batch_loss
from ..training.batches import Example, GroupedBatch, GroupedBatches
from ..training.losses import distill_kl, info_nce, margin_mse
from ..training.recipe import COSINE_TEMPERATURE, BiEncoderRecipe, Budget
from ..training.teacher_embeddings import TeacherEmbeddings
from ..training.teacher_targets import TeacherTargets
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["DistillRecipe", "RECIPE", "LOSSES", "group_scores", "ProjectedStudent",
           "embedding_mse", "distill_loss", "train_distilled"]

LOSSES = ("hard labels", "hard labels, own group", "Margin-MSE", "KL", "embedding MSE")


@dataclass(frozen=True)
class DistillRecipe(BiEncoderRecipe):
    """Chapter 10's settings: the same batches and budget for every loss.

    Attributes:
        pooling, similarity: the bi-encoder (mean pooling, cosine: as chapter 04).
        n_neg: negatives per query from the teacher's ranks (G = 1 + n_neg).
        teacher_ranks: the teacher's ranks ``[lo, hi)`` the negatives come from.
        temperature: the student's cosine scores are divided by it (all losses).
        teacher_temperature: the teacher's cosine scores are divided by it
            (Margin-MSE and KL), so both margins are in the same units.
        teacher_pool: per profile, how many BM25 passages per DL19 query the
            teachers re-rank when they are compared with each other.
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8), "cpu": Budget(250, 32), "gpu": Budget(2000, 64)})
    lr: float = 1e-4
    n_neg: int = 3
    teacher_ranks: tuple[int, int] = (3, 30)
    temperature: float = COSINE_TEMPERATURE
    teacher_temperature: float = COSINE_TEMPERATURE
    teacher_pool: dict[str, int] = field(default_factory=lambda: {
        "ci": 10, "cpu": 100, "gpu": 100})

    def pool_depth(self, profile) -> int:
        """How deep the teachers re-rank BM25 when compared (``teacher_pool``)."""
        return self.per_profile(self.teacher_pool, profile)


RECIPE = DistillRecipe()


class ProjectedStudent(torch.nn.Module):
    """A student and a linear head from its embedding space into the teacher's,
    trained together by :func:`embedding_mse`; only ``encoder`` is kept.

    Args:
        encoder: the student :class:`~minidr.models.bi_encoder.BiEncoder`.
        teacher_dim: the teacher's embedding size.
    """

    def __init__(self, encoder, teacher_dim: int):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.dim, teacher_dim, bias=False)


def embedding_mse(model: ProjectedStudent, batch: GroupedBatch,
                  teacher: TeacherEmbeddings) -> tuple[torch.Tensor, dict]:
    """Embedding distillation: squared distance between the student's projected,
    unit-length embeddings and the teacher's, for every query and passage.

        loss = mean_q ||u(W s_q) - t_q||^2 + mean_p ||u(W s_p) - t_p||^2

    with ``u`` the unit-length normalisation (both spaces are cosine spaces,
    so the distance is ``2 - 2 cos``).

    Shapes:
        student q (B, H), p (B*G, H) -> projected (B, H_t), (B*G, H_t);
        teacher (B, H_t), (B*G, H_t); loss ().
    """
    q = model.encoder.encode_query(**batch.queries)                      # (B, H)
    p = model.encoder.encode_passage(**batch.passages)                   # (B*G, H)
    q, p = F.normalize(model.head(q), dim=-1), F.normalize(model.head(p), dim=-1)
    t_q = torch.from_numpy(teacher.query_vectors(batch.qids)).to(q.device)   # (B, H_t)
    t_p = torch.from_numpy(teacher.passage_vectors(batch.pids)).to(p.device)
    query_loss = ((q - t_q) ** 2).sum(-1).mean()
    passage_loss = ((p - t_p) ** 2).sum(-1).mean()
    return query_loss + passage_loss, {"query_mse": query_loss.item(),
                                       "passage_mse": passage_loss.item()}


def distill_loss(encoder, batch: GroupedBatch, loss: str, targets: TeacherTargets,
                 recipe: DistillRecipe = RECIPE,
                 teacher: TeacherEmbeddings | None = None) -> tuple[torch.Tensor, dict]:
    """One batch's loss under ``loss`` (one of :data:`LOSSES`).

    Args:
        encoder: a cosine :class:`~minidr.models.bi_encoder.BiEncoder` (a
            :class:`ProjectedStudent` for ``"embedding MSE"``).
        batch: B queries with groups of G = 1 + n_neg passages, positive first.
        loss: one of :data:`LOSSES`.
        targets: the teacher's scores (used by Margin-MSE and KL).
        recipe: the two temperatures.
        teacher: the teacher's embeddings (used by embedding MSE).

    Shapes:
        student and teacher scores (B, G), in units of 1 / temperature.
    """
    if loss == "embedding MSE":
        if teacher is None or not isinstance(encoder, ProjectedStudent):
            raise ValueError("embedding MSE needs a ProjectedStudent and the "
                             "teacher's embeddings (teacher=)")
        return embedding_mse(encoder, batch, teacher)
    if loss == "hard labels":
        return in_batch_loss(encoder, batch, recipe.temperature)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    student = group_scores(encoder, batch) / recipe.temperature           # (B, G)
    if loss == "hard labels, own group":                  # the positive is column 0
        return info_nce(student, torch.zeros(len(student), dtype=torch.long,
                                             device=student.device))
    teacher = targets(batch.qids, batch.pids, batch.group).to(student.device)
    teacher = teacher / recipe.teacher_temperature                        # (B, G)
    if loss == "Margin-MSE":
        return margin_mse(student[:, 0], student[:, 1:], teacher[:, 0], teacher[:, 1:])
    return distill_kl(student, teacher)


def train_distilled(encoder, loss: str, examples: list[Example], corpus: Corpus,
                    negatives: dict[str, list[str]], targets: TeacherTargets,
                    steps: int, batch_size: int, recipe: DistillRecipe = RECIPE,
                    seed: int = 0, cost: CostMeter | None = None,
                    checkpoint_dir: str | None = None,
                    device: str | None = None,
                    teacher: TeacherEmbeddings | None = None) -> Trainer:
    """Train ``encoder`` (in place) with ``loss`` on the shared batches.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder` (cosine).
        loss: one of :data:`LOSSES`.
        examples, corpus, batch_size, seed: see
            :class:`~minidr.training.batches.GroupedBatches`.
        negatives: qid -> negatives (e.g.
            :func:`~minidr.training.teacher_targets.teacher_negatives`).
        targets: the teacher's scores.
        steps: optimizer steps (AdamW, ``recipe.lr``, 10% warm-up, linear decay).
        cost, checkpoint_dir, device: see :func:`~minidr.training.trainer.fit`.
        teacher: the teacher's embeddings, required by ``"embedding MSE"``
            (which trains the encoder with a :class:`ProjectedStudent` head).

    Returns:
        The trainer (``.history``, ``.cost``).
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    model = encoder
    if loss == "embedding MSE":
        if teacher is None:
            raise ValueError("embedding MSE needs the teacher's embeddings "
                             "(teacher=TeacherEmbeddings(...))")
        model = ProjectedStudent(encoder, teacher.dim)
    batches = GroupedBatches(encoder, examples, corpus, batch_size, recipe.n_neg,
                             negatives, seed)
    config = TrainConfig(steps=steps, lr=recipe.lr, seed=seed,
                         checkpoint_dir=checkpoint_dir, device=device)
    return fit(model, lambda m, b: distill_loss(m, b, loss, targets, recipe, teacher),
               batches, config, cost)
