"""Training SPLADE: distillation plus the FLOPS regulariser (chapter 14).

A :class:`~minidr.models.splade.Splade` model scores a query and a passage by
the dot product of two vocabulary-sized term-weight vectors. Trained for
ranking alone, those vectors stay dense (thousands of non-zero terms: an
inverted index over them would read every posting list). SPLADE adds a
regulariser that makes them sparse, FLOPS (Paria et al. 2020):

    FLOPS(W) = sum_j ( mean_i w_ij )^2           (W: a batch of term weights)

the expected number of multiply-adds of a query-passage product, relaxed to
be differentiable. It punishes terms that many texts of a batch use (``the``,
``of``) far more than rare ones, which is what keeps posting lists short. The
loss of a batch is

    L = L_rank + lambda_q(t) * FLOPS(Q) + lambda_d(t) * FLOPS(P)

with the weights ramped up quadratically over the first steps (SPLADE's
schedule: ranking first, sparsity after). Here ``L_rank`` is Margin-MSE
distillation from the teacher's scores (as DistilSPLADE-max and SPLADE++
train), on the same batches as chapter 10.

Example::

    splade = Splade.from_pretrained(profile.backbone, max_query_len=32)   # any MLM
    train_splade(splade, examples, corpus, negatives, TeacherTargets(scores),
                 reg_weight=3.0, steps=150, batch_size=16)

References:
    Formal, Piwowarski & Clinchant (2021), SPLADE: Sparse Lexical and
    Expansion Model for First Stage Ranking, SIGIR (FLOPS, its schedule).
    Formal et al. (2021), SPLADE v2, arXiv 2109.10086 (max pooling,
    distillation). Paria et al. (2020), Minimizing FLOPs to Learn Efficient
    Sparse Representations, ICLR.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..training.batches import Example, GroupedBatch, GroupedBatches
from ..training.losses import margin_mse
from ..training.recipe import COSINE_TEMPERATURE, Budget, Recipe
from ..training.teacher_targets import TeacherTargets
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["SpladeRecipe", "RECIPE", "flops", "reg_schedule", "splade_loss",
           "train_splade"]


@dataclass(frozen=True)
class SpladeRecipe(Recipe):
    """Chapter 14's settings: one budget for every regulariser weight and for
    the dense control (all start from the profile's backbone, whose MLM head
    gives SPLADE's vocabulary scores).

    Attributes:
        reg_weights: the FLOPS weights compared (``lambda_q = lambda_d``).
        prune_terms: terms kept per passage when the start's vectors are
            pruned after the fact (sparsity without training, for contrast).
        reg_warmup: share of the steps over which the weights ramp up
            quadratically from 0.
        n_neg: negatives per query from the teacher's ranks (Margin-MSE pairs).
        teacher_ranks: the teacher's ranks ``[lo, hi)`` the negatives come from.
        teacher_temperature: the teacher's cosines are divided by it, so its
            margins are those of chapter 10.
        max_query_len: tokens kept per query in training (passages keep
            :class:`~minidr.models.splade.Splade`'s default, 256 tokens, capped
            at a backbone's pretrained length).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8), "cpu": Budget(150, 16), "gpu": Budget(2000, 64)})
    lr: float = 1e-4
    reg_weights: tuple[float, ...] = (0.1, 3.0)
    prune_terms: tuple[int, ...] = (16, 32, 64)
    reg_warmup: float = 1 / 3
    n_neg: int = 1
    teacher_ranks: tuple[int, int] = (3, 30)
    teacher_temperature: float = COSINE_TEMPERATURE
    max_query_len: int = 32


RECIPE = SpladeRecipe()


def flops(weights: torch.Tensor) -> torch.Tensor:
    """The FLOPS regulariser: ``sum_j (mean_i w_ij)^2`` over a batch.

    Its gradient on ``w_ij`` is ``2 mean_i(w_ij) / n``: a term that every text
    uses is pushed down hard, a term one text uses barely.

    Args:
        weights: non-negative term weights of n texts.

    Shapes:
        weights (n, V) -> ().

    Reference:
        Paria et al. (2020), Minimizing FLOPs to Learn Efficient Sparse
        Representations, ICLR; Formal et al. (2021), SPLADE, SIGIR, eq. 4.

    Example::

        >>> w = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
        >>> flops(w)      # means (1, 1, 0): 1 + 1 + 0
        tensor(2.)
    """
    return (weights.mean(dim=0) ** 2).sum()


def reg_schedule(weight: float, step: int, warmup_steps: int) -> float:
    """SPLADE's quadratic ramp: ``weight * min(1, (step / warmup_steps)^2)``.

    Example::

        >>> [reg_schedule(1.0, s, 4) for s in (0, 2, 4, 8)]
        [0.0, 0.25, 1.0, 1.0]
    """
    if warmup_steps <= 0:
        return weight
    return weight * min(1.0, (step / warmup_steps) ** 2)


@dataclass
class StepBatch:
    """A :class:`~minidr.training.batches.GroupedBatch` and the step it is for
    (the regulariser's weight depends on it)."""

    batch: GroupedBatch
    step: int

    def counts(self) -> dict[str, int]:
        return self.batch.counts()


def splade_loss(model, batch: GroupedBatch, targets: TeacherTargets,
                reg_weight: float, recipe: SpladeRecipe = RECIPE,
                query_reg_weight: float | None = None) -> tuple[torch.Tensor, dict]:
    """Margin-MSE against the teacher plus FLOPS on queries and passages.

    Args:
        model: a :class:`~minidr.models.splade.Splade`.
        batch: B queries, each with a group of G = 1 + n_neg passages,
            positive first.
        targets: the teacher's scores of the same pairs.
        reg_weight: this step's ``lambda_d`` (and ``lambda_q`` unless given).
        recipe: the teacher's temperature.
        query_reg_weight: this step's ``lambda_q``; ``None``: ``reg_weight``.

    Shapes:
        q (B, V), p (B*G, V) -> scores (B, G); loss ().

    Returns:
        ``(loss, stats)``; stats add the two FLOPS values and the mean number
        of non-zero terms per query and per passage.
    """
    q = model.encode_query(**batch.queries)                               # (B, V)
    p = model.encode_passage(**batch.passages)                            # (B*G, V)
    scores = torch.einsum("bv,bgv->bg", q, p.view(len(q), batch.group, -1))  # (B, G)
    teacher = targets(batch.qids, batch.pids, batch.group).to(scores.device)
    teacher = teacher / recipe.teacher_temperature                        # (B, G)
    rank, stats = margin_mse(scores[:, 0], scores[:, 1:], teacher[:, 0],
                             teacher[:, 1:])
    flops_q, flops_p = flops(q), flops(p)
    lambda_q = reg_weight if query_reg_weight is None else query_reg_weight
    loss = rank + lambda_q * flops_q + reg_weight * flops_p
    stats.update({"flops_q": flops_q.item(), "flops_p": flops_p.item(),
                  "reg_weight": reg_weight, "query_reg_weight": lambda_q,
                  "q_terms": (q > 0).sum(-1).float().mean().item(),
                  "p_terms": (p > 0).sum(-1).float().mean().item()})
    return loss, stats


def train_splade(model, examples: list[Example], corpus: Corpus,
                 negatives: dict[str, list[str]], targets: TeacherTargets,
                 reg_weight: float, steps: int, batch_size: int,
                 recipe: SpladeRecipe = RECIPE, seed: int = 0,
                 cost: CostMeter | None = None, checkpoint_dir: str | None = None,
                 device: str | None = None,
                 query_reg_weight: float | None = None) -> Trainer:
    """Train a :class:`~minidr.models.splade.Splade` in place.

    Args:
        model: the SPLADE model (e.g. started from an MLM backbone).
        examples, corpus, batch_size, seed: see
            :class:`~minidr.training.batches.GroupedBatches` (the batches of
            chapter 10 when ``negatives`` and ``seed`` are the same).
        negatives: qid -> negatives (e.g.
            :func:`~minidr.training.teacher_targets.teacher_negatives`).
        targets: the teacher's scores.
        reg_weight: the FLOPS weight after the warm-up (``lambda_d``, and
            ``lambda_q`` unless ``query_reg_weight`` is given).
        steps: optimizer steps (AdamW, ``recipe.lr``, 10% warm-up, linear decay).
        cost, checkpoint_dir, device: see :func:`~minidr.training.trainer.fit`.
        query_reg_weight: ``lambda_q`` after the warm-up; ``None``: ``reg_weight``.

    Returns:
        The trainer (``.history`` has the loss, FLOPS and terms per step).
    """
    if reg_weight < 0 or (query_reg_weight or 0) < 0:
        raise ValueError(f"reg_weight and query_reg_weight must be >= 0, got "
                         f"{reg_weight} and {query_reg_weight}")
    batches = GroupedBatches(model, examples, corpus, batch_size, recipe.n_neg,
                             negatives, seed)
    warmup = round(recipe.reg_warmup * steps)

    def loss(m, b: StepBatch):
        weight = reg_schedule(reg_weight, b.step, warmup)
        q_weight = (None if query_reg_weight is None
                    else reg_schedule(query_reg_weight, b.step, warmup))
        return splade_loss(m, b.batch, targets, weight, recipe, q_weight)

    config = TrainConfig(steps=steps, lr=recipe.lr, seed=seed,
                         checkpoint_dir=checkpoint_dir, device=device)
    return fit(model, loss, lambda i: StepBatch(batches(i), i), config, cost)
