"""One small training loop that knows nothing about retrieval.

A chapter gives the trainer three things:

* ``model``: any ``torch.nn.Module``;
* ``make_batch(i) -> batch``: the ``i``-th micro-batch. Batches are a pure
  function of their index (samplers seed themselves from it), so a resumed run
  sees exactly the batches an uninterrupted run would;
* ``compute_loss(model, batch) -> (loss, stats)``: a scalar loss and a dict of
  floats to log (e.g. accuracy, embedding std).

The trainer adds what every chapter needs and none should rewrite: AdamW with
linear learning-rate warm-up and decay, gradient accumulation, gradient
clipping, automatic mixed precision on GPU, progress (one final line in the
book, see :mod:`minidr.core.progress`), callbacks (evaluation, ANCE index
refreshes), a :class:`~minidr.core.cost.CostMeter`, and atomic checkpoints that
resume to the same result as an uninterrupted run.

Every method trains through :func:`fit`, which also charges each batch's own
cost (``batch.counts()``: queries and passages encoded, retrievals)::

    trainer = fit(model, loss, batches, TrainConfig(steps=500, lr=2e-5), cost)
    trainer.history                  # list of {"step", "loss", "lr", **stats}
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from ..core.atomic import atomic_file
from ..core.cost import CostMeter
from ..core.progress import progress_bar

__all__ = ["TrainConfig", "Trainer", "Callback", "fit", "set_seed", "save_checkpoint",
           "load_checkpoint"]


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes:
        steps: optimizer steps.
        lr: peak learning rate (AdamW), reached after ``lr_warmup`` of the steps.
        lr_warmup: fraction of steps with a linear learning-rate warm-up; then
            linear decay to 0.
        weight_decay: AdamW weight decay (not on biases and LayerNorm).
        grad_accum: micro-batches per optimizer step.
        max_grad_norm: gradient clipping (0 disables).
        amp: mixed precision; ``None`` means "on when training on CUDA".
        seed: seeds everything at the start of ``fit``.
        checkpoint_dir: where to save and resume (``None``: no checkpoints).
        checkpoint_every: steps between checkpoints (0: only at the end; ``None``:
            ``max(steps // 5, 50)`` when there is a ``checkpoint_dir``).
        log_every: steps between progress-bar updates of the logged loss.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).
    """

    steps: int
    lr: float = 5e-5
    lr_warmup: float = 0.1
    weight_decay: float = 0.01
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    amp: bool | None = None
    seed: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    log_every: int = 10
    device: str | None = None

    def __post_init__(self):
        if self.checkpoint_every is None:
            self.checkpoint_every = (max(self.steps // 5, 50) if self.checkpoint_dir
                                     else 0)


class Callback(Protocol):
    """Called after every optimizer step; may add entries to ``logs``.

    A callback may also define ``on_train_begin(trainer)``, called once when
    ``fit`` starts from step 0, inside the metered time (ANCE mines its first
    negatives there), and ``state_dict()`` / ``load_state_dict(state)`` (plain
    containers) to be saved in checkpoints and restored on resume.
    """

    def on_step_end(self, trainer: "Trainer", step: int,
                    logs: dict[str, float]) -> None: ...


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file, then rename:
    never a half-written checkpoint."""
    with atomic_file(path) as f:
        torch.save(state, f)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``
    (tensors and plain containers only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name
             else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Fit ``model`` by minimising ``compute_loss`` over
    ``make_batch(0), make_batch(1), ...``.

    Args:
        model: the module to train (moved to the device).
        compute_loss: ``(model, batch) -> (loss tensor, {name: float})``; with a
            true ``does_backward`` attribute, ``(model, batch, backward)``, and it
            calls ``backward(loss)`` itself (see :func:`fit`).
        make_batch: ``micro_batch_index -> batch`` (tensors are moved to the device
            by ``compute_loss``; see :meth:`to_device`).
        config: :class:`TrainConfig`.
        callbacks: objects with ``on_step_end(trainer, step, logs)``.
        cost: a :class:`~minidr.core.cost.CostMeter` charged with the training time.
    """

    def __init__(self, model: torch.nn.Module,
                 compute_loss: Callable[[torch.nn.Module, Any],
                                        tuple[torch.Tensor, dict]],
                 make_batch: Callable[[int], Any], config: TrainConfig,
                 callbacks: tuple[Callback, ...] | list[Callback] = (),
                 cost: CostMeter | None = None):
        from transformers import get_linear_schedule_with_warmup

        self.config = config
        self.device = torch.device(config.device
                                   or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device)
        self.compute_loss, self.make_batch = compute_loss, make_batch
        self.callbacks = list(callbacks)
        self.cost = cost or CostMeter()
        self.optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay),
                                           lr=config.lr)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(config.lr_warmup * config.steps), config.steps)
        self.amp = (self.device.type == "cuda") if config.amp is None else config.amp
        self.amp_dtype = (torch.bfloat16 if self.device.type == "cuda"
                          and torch.cuda.is_bf16_supported() else torch.float16)
        self.scaler = torch.amp.GradScaler(
            enabled=self.amp and self.amp_dtype == torch.float16)
        self.step = 0
        self.history: list[dict[str, float]] = []

    def to_device(self, batch):
        """Move tensors in a (nested) dict/list/tuple batch to the training device."""
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self.to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(v) for v in batch)
        return batch

    # -- checkpoints ------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        d = self.config.checkpoint_dir
        return Path(d) / "checkpoint.pt" if d else None

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "step": self.step, "history": self.history,
                "config": asdict(self.config),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": (torch.cuda.get_rng_state_all()
                             if torch.cuda.is_available() else []),
                # elapsed: a checkpoint written inside the timed loop keeps its time
                "seconds": self.cost.elapsed, "counts": dict(self.cost.counts),
                # callbacks with state (ANCE's current negatives) resume with it
                "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None
                              for cb in self.callbacks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.history = state["step"], state["history"]
        # RNG states must be CPU byte tensors
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([r.cpu() for r in state["cuda_rng"]])
        self.cost.seconds = state.get("seconds", 0.0)
        self.cost.counts.clear()
        self.cost.counts.update(state.get("counts", {}))
        for callback, saved in zip(self.callbacks, state.get("callbacks", [])):
            if saved is not None and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(saved)

    def save(self) -> None:
        if self.checkpoint_path:
            save_checkpoint(self.checkpoint_path, self.state_dict())

    # -- the loop ---------------------------------------------------------------------
    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def fit(self, max_steps: int | None = None) -> list[dict[str, float]]:
        """Train until ``config.steps`` (resuming from a checkpoint if one exists).

        Args:
            max_steps: stop after this many steps *in this call* (saving a
                checkpoint), e.g. to split a long run over sessions.

        Returns:
            The history: one dict per step with ``step``, ``loss``, ``lr`` and
            the stats of ``compute_loss`` and of the callbacks.
        """
        cfg = self.config
        if self.checkpoint_path and self.checkpoint_path.exists():
            # on CPU; load_state_dict moves
            self.load_state_dict(load_checkpoint(self.checkpoint_path))
        elif self.step == 0:
            set_seed(cfg.seed)
        stop = cfg.steps if max_steps is None else min(cfg.steps, self.step + max_steps)
        bar = progress_bar(total=cfg.steps, initial=self.step, desc="train",
                           unit="step")
        with self.cost:
            if self.step == 0:
                for callback in self.callbacks:
                    if hasattr(callback, "on_train_begin"):
                        callback.on_train_begin(self)
            while self.step < stop:
                logs = self._one_step()
                self.step += 1
                for callback in self.callbacks:
                    callback.on_step_end(self, self.step, logs)
                self.history.append(logs)
                self.cost.add(steps=1)
                if self.step % cfg.log_every == 0 or self.step == stop:
                    recent = [h["loss"] for h in self.history[-cfg.log_every:]]
                    bar.set_postfix(loss=f"{np.mean(recent):.4f}")
                bar.update(1)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save()
        bar.close()
        self.save()
        return self.history

    def _one_step(self) -> dict[str, float]:
        cfg = self.config
        # every step: a callback (e.g. an ANCE re-encode) may have switched to eval
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, stats_sum = 0.0, {}
        # a loss marked ``does_backward`` (gradient caching) back-propagates itself,
        # through this function: accumulation and mixed-precision scaling stay here
        own_backward = getattr(self.compute_loss, "does_backward", False)

        def backward(value: torch.Tensor) -> None:
            self.scaler.scale(value / cfg.grad_accum).backward()

        for micro in range(cfg.grad_accum):
            batch = self.make_batch(self.step * cfg.grad_accum + micro)
            with self._autocast():
                if own_backward:
                    loss, stats = self.compute_loss(self.model, batch, backward)
                else:
                    loss, stats = self.compute_loss(self.model, batch)
            if not own_backward:
                backward(loss)
            total += float(loss.detach()) / cfg.grad_accum
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + float(v) / cfg.grad_accum
        if cfg.max_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return {"step": self.step + 1, "loss": total, "lr": lr, **stats_sum}


def fit(model: torch.nn.Module,
        loss: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict]],
        batches: Callable[[int], Any], config: TrainConfig,
        cost: CostMeter | None = None,
        callbacks: tuple[Callback, ...] | list[Callback] = ()) -> Trainer:
    """Train ``model`` on ``batches`` with ``loss``;
    every method's training goes through here.

    Each batch that reports its cost (``batch.counts()``, e.g.
    :class:`~minidr.training.batches.GroupedBatch`) is charged to ``cost``;
    checkpoint defaults come from :class:`TrainConfig` (pass
    ``checkpoint_dir`` to make any method resumable).

    Args:
        model: the module to train, in place.
        loss: ``(model, batch) -> (loss, stats)``; or, if it has a true
            ``does_backward`` attribute (e.g.
            :func:`~minidr.training.grad_cache.grad_cached`),
            ``(model, batch, backward) -> (loss, stats)``, which calls
            ``backward`` itself.
        batches: ``i -> batch``, a pure function of ``i``.
        config: steps, learning rate, seed, checkpoints, device.
        cost: a :class:`~minidr.core.cost.CostMeter` (a new one if ``None``).
        callbacks: see :class:`Callback`.

    Returns:
        The trainer, after training (``.history``, ``.cost``, ``.step``).
    """
    cost = cost or CostMeter()

    def charged_loss(m, batch, *backward):
        if hasattr(batch, "counts"):
            cost.add(**batch.counts())
        return loss(m, batch, *backward)

    charged_loss.does_backward = getattr(loss, "does_backward", False)

    trainer = Trainer(model, charged_loss, batches, config, callbacks=callbacks,
                      cost=cost)
    trainer.fit()
    return trainer
