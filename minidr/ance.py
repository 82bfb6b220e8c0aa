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
no gradients) re-encodes the whole corpus (:func:`ann_index`), and the
negatives of the next ``refresh_every`` steps come from that snapshot
(:func:`ann_negatives`). They are up to ``refresh_every`` steps stale, as in
the paper, and every refresh is paid for in full (``passages_encoded``,
``index_refreshes``, wall time)::

    trainer = train_ance(warm, examples, mm.corpus, steps=250, refresh_every=50)
    [r["step"] for r in trainer.refreshes]          # [0, 50, 100, 150, 200]

Reference:
    Xiong et al. (2021), Approximate Nearest Neighbor Negative Contrastive
    Learning for Dense Text Retrieval (ANCE), ICLR.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from .cost import CostMeter
from .dense import encode_corpus
from .dpr import DPRBatches, Example, dpr_loss, examples_qrels, metered_trainer
from .formats import Corpus
from .index import DenseIndex
from .negatives import top_k_negatives
from .train import Trainer
from .warmup import LR, TEMPERATURE

__all__ = ["refresh_steps", "ann_index", "ann_negatives", "train_ance"]


def refresh_steps(steps: int, every: int) -> list[int]:
    """The steps at which the ANN index is rebuilt: ``0, every, 2 * every, ... < steps``.

    A refresh "at step ``s``" happens after ``s`` optimizer steps, so it gives
    the negatives of steps ``s + 1 .. s + every``.

    Example::

        >>> refresh_steps(5, 2)
        [0, 2, 4]
    """
    if every < 1:
        raise ValueError(f"refresh_every must be >= 1, got {every}")
    return list(range(0, steps, every))


def ann_index(encoder, corpus: Corpus, cost: CostMeter | None = None, batch_size: int = 256,
              cache: bool = False) -> DenseIndex:
    """Encode ``corpus`` with the model as it is now (a snapshot) and index it exactly.

    Args:
        encoder: a :class:`~minidr.models.BiEncoder`.
        corpus: pid -> text.
        cost: charged ``passages_encoded`` when the corpus is really encoded.
        batch_size: passages per encoding batch.
        cache: ``False`` (ANCE): re-encode, since the model has changed.
            ``True`` (STAR's static negatives): reuse the embedding cache,
            keyed by the model's fingerprint.

    Shapes:
        the index holds ``(len(corpus), H)`` passage embeddings.
    """
    # A snapshot: no gradients, and encode_* switch to eval mode (no dropout) and back.
    with torch.inference_mode():
        p_emb = encode_corpus(encoder, corpus, cache=cache, cost=cost,
                              batch_size=batch_size)                    # (n_passages, H)
    return DenseIndex.build(p_emb, list(corpus), kind="flat")           # exact search stands in for ANN


def ann_negatives(encoder, examples: list[Example], corpus: Corpus, n: int = 20, depth: int = 200,
                  cost: CostMeter | None = None, batch_size: int = 256, cache: bool = False,
                  seed: int = 0, index: DenseIndex | None = None) -> dict[str, list[str]]:
    """Hard negatives from ``encoder``'s own ranking: ``n`` of each query's top ``depth``.

    The training queries search :func:`ann_index` (built here unless
    ``index`` is given), then :func:`~minidr.negatives.top_k_negatives`
    samples ``n`` non-positive passages from each query's top ``depth``.
    A query's positives are never among its negatives.

    Args:
        encoder: a :class:`~minidr.models.BiEncoder`.
        examples: the training pairs (their queries are searched; their
            positives are excluded).
        corpus: pid -> text.
        n: negatives per query.
        depth: how deep in the ranking they are drawn (ANCE: top 200).
        cost: charged ``queries_encoded``, and ``passages_encoded`` by :func:`ann_index`.
        batch_size, cache: see :func:`ann_index`.
        seed: seeds the sampling of the ``n`` negatives.
        index: an :func:`ann_index` of ``corpus`` by this ``encoder``, if already built.

    Shapes:
        query embeddings ``(n_queries, H)``.

    Returns:
        qid -> up to ``n`` pids, for every distinct query of ``examples``.

    Reference:
        Xiong et al. (2021), ANCE, ICLR, section 3 (negatives from the ANN index).
    """
    if index is None:
        index = ann_index(encoder, corpus, cost, batch_size, cache)
    queries = {ex.qid: ex.query for ex in examples}                     # distinct queries
    with torch.inference_mode():
        q_emb = encoder.encode_queries(list(queries.values()), batch_size=batch_size,
                                       progress=False)                  # (n_queries, H)
    if cost is not None:
        cost.add(queries_encoded=len(queries))
    run = index.search_run(list(queries), q_emb, k=min(depth, len(index)))
    return top_k_negatives(run, examples_qrels(examples), n, depth=depth, seed=seed)


class _ANNRefresh:
    """Trainer callback: replace ``batches.hard`` with fresh ANN negatives at the scheduled steps."""

    def __init__(self, batches: DPRBatches, examples, corpus, schedule, n, depth, seed,
                 cost: CostMeter, on_refresh=None):
        self.batches, self.examples, self.corpus, self.schedule = batches, examples, corpus, set(schedule)
        self.n, self.depth, self.seed, self.cost, self.on_refresh = n, depth, seed, cost, on_refresh
        self.started, self.refreshes = None, []        # the clock starts at the first refresh

    def refresh(self, encoder, step: int) -> None:
        start, encoded = time.perf_counter(), self.cost.counts["passages_encoded"]
        self.started = self.started or start
        index = ann_index(encoder, self.corpus, self.cost)
        # each refresh draws its own sample of n negatives from the new top `depth`
        self.batches.hard = ann_negatives(encoder, self.examples, self.corpus, self.n, self.depth,
                                          cost=self.cost, seed=self.seed * 1_000_003 + step,
                                          index=index)
        self.cost.add(index_refreshes=1)
        self.refreshes.append({"step": step, "seconds": time.perf_counter() - start,
                               "passages_encoded": self.cost.counts["passages_encoded"] - encoded})
        if self.on_refresh is not None:
            self.on_refresh(step, index, time.perf_counter() - self.started)

    def on_step_end(self, trainer: Trainer, step: int, logs: dict) -> None:
        if step in self.schedule:        # after `step` optimizer steps, before step + 1
            self.refresh(trainer.model, step)


def train_ance(encoder, examples: list[Example], corpus: Corpus, steps: int, refresh_every: int,
               batch_size: int = 32, lr: float = LR, temperature: float = TEMPERATURE,
               n_hard: int = 1, n: int = 20, depth: int = 200, seed: int = 0,
               cost: CostMeter | None = None, callbacks=(), device: str | None = None,
               on_refresh: Callable[[int, DenseIndex, float], None] | None = None) -> Trainer:
    """Train ``encoder`` with ANCE negatives refreshed every ``refresh_every`` steps.

    Training is chapter 04's exactly (:class:`~minidr.dpr.DPRBatches`,
    :func:`~minidr.dpr.dpr_loss`: in-batch softmax with ``n_hard`` hard
    negatives per query): only the negatives change, so a difference in
    quality is theirs. (The paper uses a pairwise loss on one positive and one
    ANCE negative; we keep chapter 04's loss on purpose.)

    At every step of ``refresh_steps(steps, refresh_every)`` the negatives are
    re-mined from the model as it is then; ``cost`` is charged
    ``index_refreshes=1``, the passages and queries encoded, and the wall time
    (refreshes are inside the metered time). Checkpoints and resuming are not
    supported (a resumed run would need its last refresh's negatives).

    Args:
        encoder: a :class:`~minidr.models.BiEncoder`, trained in place; ANCE
            starts from a warm-up model (:func:`minidr.warmup.warmup_encoder`).
        examples, corpus, batch_size, n_hard, seed: see :class:`~minidr.dpr.DPRBatches`.
        steps, lr: optimisation (see :class:`~minidr.train.TrainConfig`); ``lr``
            and ``temperature`` default to the warm-up model's (chapter 04's).
        refresh_every: optimizer steps between two refreshes of the index.
        temperature: softmax temperature of :func:`~minidr.dpr.dpr_loss`.
        n, depth: each refresh keeps ``n`` negatives per query from its top ``depth``.
        cost: a :class:`~minidr.cost.CostMeter` (a new one if ``None``).
        callbacks: more trainer callbacks (called after the refresh of a step).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).
        on_refresh: ``f(step, index, seconds)``, called right after each refresh
            with the fresh index and the seconds since training started (e.g.
            to evaluate with that index; its time is metered too).

    Returns:
        The :class:`~minidr.train.Trainer` (``.history``, ``.cost``), with
        ``.refreshes``: one ``{"step", "seconds", "passages_encoded"}`` per refresh.

    Reference:
        Xiong et al. (2021), Approximate Nearest Neighbor Negative Contrastive
        Learning for Dense Text Retrieval (ANCE), ICLR.
    """
    schedule = refresh_steps(steps, refresh_every)
    cost = cost or CostMeter()
    # an empty dict (not None) keeps n_hard; the step-0 refresh fills it before step 1
    batches = DPRBatches(encoder, examples, corpus, batch_size, hard_negatives={}, n_hard=n_hard,
                         seed=seed)

    refresher = _ANNRefresh(batches, examples, corpus, schedule, n, depth, seed, cost, on_refresh)
    trainer = metered_trainer(encoder, batches, lambda m, b: dpr_loss(m, b, temperature), steps, lr,
                              seed, cost, [refresher, *callbacks], device)
    trainer.refreshes = refresher.refreshes
    if schedule:
        with cost:                       # the step-0 refresh, on the trainer's device
            refresher.refresh(trainer.model, 0)
    trainer.fit()
    return trainer
