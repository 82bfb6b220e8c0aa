"""ANCE: hard negatives from the model being trained, re-mined as it learns.

DPR's BM25 negatives are *lexical* look-alikes; what a dense retriever gets
wrong are *its own* top-ranked passages. ANCE (Xiong et al., 2021) trains on
those: it indexes the corpus encoded by the current model (an approximate
nearest neighbour, ANN, index) and samples each training query's top
non-positive passages as negatives. As the model changes the index goes
stale, so ANCE refreshes it from a recent checkpoint.

The paper refreshes *asynchronously*: a second set of GPUs re-encodes the
corpus with checkpoint ``k`` while the trainer already moves on to ``k + 1``.
We simulate that with a *periodic, synchronous* refresh: at the steps of
:func:`refresh_steps` training pauses, a snapshot of the model (eval mode,
no gradients) re-encodes the whole corpus (:func:`~minidr.training.mining.ann_index`),
and the negatives of the next ``refresh_every`` steps come from that snapshot
(:func:`~minidr.training.mining.ann_negatives`). They are up to ``refresh_every`` steps
stale, as in the paper, and every refresh is paid for in full (``passages_encoded``,
``index_refreshes``, wall time)::

    trainer, refreshes = train_ance(warm, examples, mm.corpus, steps=250,
                                    refresh_every=50)
    [r["step"] for r in refreshes]                  # [0, 50, 100, 150, 200]

Reference:
    Xiong et al. (2021), Approximate Nearest Neighbor Negative Contrastive
    Learning for Dense Text Retrieval (ANCE), ICLR.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..retrieval.index import DenseIndex
from ..training.batch_losses import in_batch_loss
from ..training.batches import Example, GroupedBatches
from ..training.mining import ann_index, ann_negatives
from ..training.recipe import COSINE_TEMPERATURE, Budget, Recipe
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["ANCERecipe", "RECIPE", "refresh_steps", "ANNRefresh", "train_ance"]


@dataclass(frozen=True)
class ANCERecipe(Recipe):
    """ANCE's settings and budgets (chapter 05); the loss is chapter 04's.

    Attributes:
        temperature: softmax temperature over cosine scores.
        n_hard: ANN negatives per query in a batch.
        n, depth: each refresh keeps ``n`` negatives per query from its top ``depth``.
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(10, 8, refresh_every=5), "cpu": Budget(800, 32, refresh_every=100),
        "gpu": Budget(4000, 64, refresh_every=500)})
    lr: float = 1e-4
    temperature: float = COSINE_TEMPERATURE
    n_hard: int = 1
    n: int = 20
    depth: int = 200


RECIPE = ANCERecipe()


def refresh_steps(steps: int, every: int) -> list[int]:
    """The steps at which the ANN index is rebuilt:
    ``0, every, 2 * every, ... < steps``.

    A refresh "at step ``s``" happens after ``s`` optimizer steps, so it gives
    the negatives of steps ``s + 1 .. s + every``.

    Example::

        >>> refresh_steps(5, 2)
        [0, 2, 4]
    """
    if every < 1:
        raise ValueError(f"refresh_every must be >= 1, got {every}")
    return list(range(0, steps, every))


class ANNRefresh:
    """Trainer callback: fresh ANN negatives at the scheduled steps.

    At each step of ``schedule`` the model as it is re-encodes the corpus, and
    ``batches.hard_negatives`` is replaced by its new negatives; each refresh is
    appended to :attr:`refreshes` as ``{"step", "seconds", "passages_encoded"}``.
    """

    def __init__(self, batches: GroupedBatches, examples, corpus, schedule, n, depth,
                 seed, cost: CostMeter, on_refresh=None, on_negatives=None):
        self.batches, self.examples, self.corpus = batches, examples, corpus
        self.schedule = set(schedule)
        self.n, self.depth, self.seed = n, depth, seed
        self.cost, self.on_refresh = cost, on_refresh
        self.on_negatives = on_negatives
        self.started, self.refreshes = None, []  # the clock starts at the first refresh

    def refresh(self, encoder, step: int) -> None:
        start, encoded = time.perf_counter(), self.cost.counts["passages_encoded"]
        self.started = self.started or start
        index = ann_index(encoder, self.corpus, self.cost)
        # each refresh draws its own sample of n negatives from the new top `depth`
        self.batches.hard_negatives = ann_negatives(
            encoder, self.examples, self.corpus, self.n, self.depth, cost=self.cost,
            seed=self.seed * 1_000_003 + step, index=index)
        self.cost.add(index_refreshes=1)
        self.refreshes.append({"step": step, "seconds": time.perf_counter() - start,
                               "passages_encoded":
                                   self.cost.counts["passages_encoded"] - encoded})
        if self.on_negatives is not None:
            self.on_negatives(step, self.batches.hard_negatives)
        if self.on_refresh is not None:
            self.on_refresh(step, index, time.perf_counter() - self.started)

    def state_dict(self) -> dict:
        """The current negatives and the refreshes so far (saved in checkpoints)."""
        return {"hard_negatives": dict(self.batches.hard_negatives or {}),
                "refreshes": list(self.refreshes)}

    def load_state_dict(self, state: dict) -> None:
        """Resume with the negatives of the last refresh before the checkpoint."""
        self.batches.hard_negatives = dict(state["hard_negatives"])
        self.refreshes[:] = state["refreshes"]

    def on_train_begin(self, trainer: Trainer) -> None:
        if 0 in self.schedule:           # the step-0 refresh: negatives for step 1
            self.refresh(trainer.model, 0)

    def on_step_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        if step in self.schedule:        # after `step` optimizer steps, before step + 1
            self.refresh(trainer.model, step)


def train_ance(encoder, examples: list[Example], corpus: Corpus, steps: int,
               refresh_every: int, batch_size: int = 32, lr: float = RECIPE.lr,
               temperature: float = RECIPE.temperature, n_hard: int = RECIPE.n_hard,
               n: int = RECIPE.n, depth: int = RECIPE.depth, seed: int = 0,
               cost: CostMeter | None = None, callbacks=(), device: str | None = None,
               on_refresh: Callable[[int, DenseIndex, float], None] | None = None,
               on_negatives: Callable[[int, dict[str, list[str]]], None] | None = None,
               checkpoint_dir: str | None = None, checkpoint_every: int | None = None,
               ) -> tuple[Trainer, list[dict]]:
    """Train ``encoder`` with ANCE negatives refreshed every ``refresh_every`` steps.

    Training is chapter 04's exactly (:class:`~minidr.training.batches.GroupedBatches`,
    :func:`~minidr.training.batch_losses.in_batch_loss`: in-batch softmax with
    ``n_hard`` hard negatives per query): only the negatives change, so a difference in
    quality is theirs. (The paper uses a pairwise loss on one positive and one
    ANCE negative; we keep chapter 04's loss on purpose.)

    At every step of ``refresh_steps(steps, refresh_every)`` the negatives are
    re-mined from the model as it is then; ``cost`` is charged
    ``index_refreshes=1``, the passages and queries encoded, and the wall time
    (refreshes are inside the metered time).

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`, trained in place;
            chapter 05 starts ANCE from the warm-up student
            (:func:`minidr.substrate.build_student.load_student`).
        examples, corpus, batch_size, n_hard, seed: see
            :class:`~minidr.training.batches.GroupedBatches`.
        steps, lr: optimisation (see :class:`~minidr.training.trainer.TrainConfig`);
            ``lr`` and ``temperature`` default to :data:`RECIPE`'s (chapter 04's).
        refresh_every: optimizer steps between two refreshes of the index.
        temperature: softmax temperature.
        n, depth: each refresh keeps ``n`` negatives per query from its top ``depth``.
        cost: a :class:`~minidr.core.cost.CostMeter` (a new one if ``None``).
        callbacks: more trainer callbacks (called after the refresh of a step).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).
        on_refresh: ``f(step, index, seconds)``, called right after each refresh
            with the fresh index and the seconds since training started (e.g.
            to evaluate with that index; its time is metered too; after a
            resume its seconds count from the resume).
        on_negatives: ``f(step, negatives)``, called with each refresh's
            ``qid -> [pid, ...]`` (e.g. to audit them with
            :func:`~minidr.training.negatives.likely_false_negatives`).
        checkpoint_dir, checkpoint_every: resume point and interval (see
            :class:`~minidr.training.trainer.TrainConfig`); a checkpoint keeps the
            negatives of the last refresh, so a resumed run trains on exactly the
            negatives an uninterrupted one would.

    Returns:
        ``(trainer, refreshes)``: the :class:`~minidr.training.trainer.Trainer`
        (``.history``, ``.cost``) and one ``{"step", "seconds", "passages_encoded"}``
        per refresh.

    Reference:
        Xiong et al. (2021), Approximate Nearest Neighbor Negative Contrastive
        Learning for Dense Text Retrieval (ANCE), ICLR.
    """
    cost = cost or CostMeter()
    batches = GroupedBatches(encoder, examples, corpus, batch_size, n_hard=n_hard,
                             seed=seed)
    refresher = ANNRefresh(batches, examples, corpus,
                           refresh_steps(steps, refresh_every), n, depth, seed, cost,
                           on_refresh, on_negatives)
    config = TrainConfig(steps=steps, lr=lr, seed=seed, device=device,
                         checkpoint_dir=checkpoint_dir,
                         checkpoint_every=checkpoint_every)
    trainer = fit(encoder, lambda m, b: in_batch_loss(m, b, temperature), batches,
                  config, cost, [refresher, *callbacks])
    return trainer, refresher.refreshes
