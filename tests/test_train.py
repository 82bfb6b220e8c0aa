"""minidr.train: the loop learns, resumes to the very same parameters,
accumulates, checkpoints safely.

The model is a 2-layer MLP doing regression on synthetic data; ``make_batch(i)``
draws batch ``i`` from ``torch.Generator().manual_seed(i)``, a pure function of
its index, as the Trainer requires. Everything runs on the CPU in a few seconds.
"""
from __future__ import annotations

import os
import time

import pytest
import torch
import torch.nn.functional as F

import minidr.training.trainer
from minidr.core.cost import CostMeter
from minidr.training.trainer import (TrainConfig, Trainer, load_checkpoint,
                                     save_checkpoint)

W_TRUE = torch.tensor([1.0, -2.0, 0.5, 3.0])


def make_model(seed: int, dropout: float = 0.2) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                               torch.nn.Dropout(dropout), torch.nn.Linear(16, 1))


def make_batch(i: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(i)
    x = torch.randn(size, 4, generator=g)                      # (size, 4)
    y = x @ W_TRUE + 0.1 * torch.randn(size, generator=g)      # (size,)
    return x, y


def mse(model, batch):
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in batch)
    pred = model(x).squeeze(-1)                                # (size,)
    return F.mse_loss(pred, y), {"mae": (pred - y).abs().mean().item()}


def config(**overrides) -> TrainConfig:
    base = dict(steps=20, lr=1e-2, lr_warmup=0.1, device="cpu", log_every=5)
    return TrainConfig(**{**base, **overrides})


def params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def assert_same_params(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y), (x - y).abs().max()


class Recorder:
    """A callback remembering every call
    (and, optionally, the gradients at that point)."""

    def __init__(self, grads: bool = False, fail_at: int | None = None):
        self.steps, self.grads, self.keep_grads, self.fail_at = [], [], grads, fail_at

    def on_step_end(self, trainer, step, logs):
        assert isinstance(trainer, Trainer) and "loss" in logs
        if step == self.fail_at:
            raise KeyboardInterrupt("simulated crash")
        self.steps.append(step)
        if self.keep_grads:
            self.grads.append([p.grad.clone() for p in trainer.model.parameters()])


def test_loss_decreases():
    history = Trainer(make_model(0, dropout=0.0), mse, make_batch,
                      config(steps=60, lr=0.05)).fit()
    assert len(history) == 60 and [h["step"] for h in history] == list(range(1, 61))
    first = sum(h["loss"] for h in history[:10]) / 10
    last = sum(h["loss"] for h in history[-10:]) / 10
    assert last < first / 2, (first, last)
    assert {"step", "loss", "lr", "mae"} <= set(history[-1])


def test_resume_equals_uninterrupted(tmp_path):
    model_a = make_model(0)
    history_a = Trainer(model_a, mse, make_batch,
                        config(checkpoint_dir=str(tmp_path / "a"))).fit()

    cfg_b = config(checkpoint_dir=str(tmp_path / "b"))
    first = Trainer(make_model(0), mse, make_batch, cfg_b).fit(max_steps=7)
    assert len(first) == 7
    # a new model, initialised differently: the checkpoint decides
    model_b = make_model(123)
    history_b = Trainer(model_b, mse, make_batch, cfg_b).fit()

    assert history_b == history_a and len(history_b) == 20
    assert_same_params(params(model_b), params(model_a))


def test_resume_after_a_crash_equals_uninterrupted(tmp_path):
    model_a = make_model(0)
    history_a = Trainer(model_a, mse, make_batch, config()).fit()

    cfg = config(checkpoint_dir=str(tmp_path), checkpoint_every=5)
    with pytest.raises(KeyboardInterrupt):
        Trainer(make_model(0), mse, make_batch, cfg,
                callbacks=[Recorder(fail_at=13)]).fit()
    # the last checkpoint
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 10
    model_b = make_model(5)
    history_b = Trainer(model_b, mse, make_batch, cfg).fit()
    assert history_b == history_a
    assert_same_params(params(model_b), params(model_a))


def test_resume_test_would_catch_a_lost_rng_state(tmp_path, monkeypatch):
    # Guard for the two tests above: with dropout,
    # skipping the RNG restore must change the result.
    model_a = make_model(0)
    Trainer(model_a, mse, make_batch, config()).fit()
    cfg = config(checkpoint_dir=str(tmp_path))
    Trainer(make_model(0), mse, make_batch, cfg).fit(max_steps=7)
    monkeypatch.setattr(torch, "set_rng_state", lambda state: None)
    model_b = make_model(123)
    Trainer(model_b, mse, make_batch, cfg).fit()
    assert any(not torch.equal(a, b) for a, b in zip(params(model_a), params(model_b)))


def test_gradient_accumulation_equals_one_big_batch():
    x, y = make_batch(0, size=8)
    halves = lambda i: (x[4 * i:4 * i + 4], y[4 * i:4 * i + 4])  # micro-batches 0 and 1
    whole = lambda i: (x, y)
    # no warm-up: lr > 0 at step 1
    cfg = dict(steps=1, lr_warmup=0.0, max_grad_norm=0.0, lr=0.1)
    rec_acc, rec_one = Recorder(grads=True), Recorder(grads=True)
    model_acc, model_one = make_model(0, dropout=0.0), make_model(0, dropout=0.0)
    h_acc = Trainer(model_acc, mse, halves, config(grad_accum=2, **cfg),
                    callbacks=[rec_acc]).fit()
    h_one = Trainer(model_one, mse, whole, config(grad_accum=1, **cfg),
                    callbacks=[rec_one]).fit()

    # Adam's first step is nearly sign(grad): compare the gradients,
    # not only the parameters.
    for g_acc, g_one in zip(rec_acc.grads[0], rec_one.grads[0]):
        torch.testing.assert_close(g_acc, g_one, rtol=1e-5, atol=1e-6)
    assert h_acc[0]["loss"] == pytest.approx(h_one[0]["loss"], rel=1e-6)
    assert h_acc[0]["mae"] == pytest.approx(h_one[0]["mae"], rel=1e-6)
    for a, b in zip(params(model_acc), params(model_one)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(a, b)
               for a, b in zip(params(model_one), params(make_model(0, 0.0))))


def test_checkpoint_is_weights_only_and_leaves_no_temp_file(tmp_path, monkeypatch):
    Trainer(make_model(0), mse, make_batch,
            config(steps=3, checkpoint_dir=str(tmp_path))).fit()
    assert os.listdir(tmp_path) == ["checkpoint.pt"]

    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load",
                        lambda *a, **kw: calls.append(kw) or real_load(*a, **kw))
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert calls[0]["weights_only"] is True
    assert state["step"] == 3 and len(state["history"]) == 3
    assert set(state["model"]) == set(make_model(0).state_dict())


def test_failed_checkpoint_save_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken_save(obj, f):
        f.write(b"half a checkpoint")  # save_checkpoint hands torch.save an open file
        raise OSError("disk full")

    monkeypatch.setattr(minidr.training.trainer.torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert os.listdir(tmp_path) == []


def test_callbacks_are_called_once_per_step_in_order(tmp_path):
    rec = Recorder()
    cfg = config(steps=9, checkpoint_dir=str(tmp_path))
    Trainer(make_model(0), mse, make_batch, cfg, callbacks=[rec]).fit(max_steps=4)
    assert rec.steps == [1, 2, 3, 4]
    rec2 = Recorder()
    # resumes at step 4
    Trainer(make_model(0), mse, make_batch, cfg, callbacks=[rec2]).fit()
    assert rec2.steps == [5, 6, 7, 8, 9]


def test_callbacks_can_add_to_the_logs():
    class AddEval:
        def on_step_end(self, trainer, step, logs):
            logs["eval"] = float(step * 10)

    history = Trainer(make_model(0), mse, make_batch, config(steps=3),
                      callbacks=[AddEval()]).fit()
    assert [h["eval"] for h in history] == [10.0, 20.0, 30.0]


def test_cost_meter_records_steps():
    cost = CostMeter()
    Trainer(make_model(0), mse, make_batch, config(steps=6), cost=cost).fit()
    assert cost.counts["steps"] == 6 and cost.summary()["steps"] == 6
    assert cost.seconds > 0


def test_cost_meter_counts_survive_a_resume(tmp_path):
    cfg = config(steps=10, checkpoint_dir=str(tmp_path))
    Trainer(make_model(0), mse, make_batch, cfg, cost=CostMeter()).fit(max_steps=4)
    cost = CostMeter()
    Trainer(make_model(0), mse, make_batch, cfg, cost=cost).fit()
    assert cost.counts["steps"] == 10


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resume_on_cuda(tmp_path):
    cfg = config(steps=4, device="cuda", checkpoint_dir=str(tmp_path))
    Trainer(make_model(0), mse, make_batch, cfg).fit(max_steps=2)
    history = Trainer(make_model(0), mse, make_batch, cfg).fit()
    assert len(history) == 4


def test_a_mid_training_checkpoint_keeps_the_time_spent(tmp_path):
    """A checkpoint written inside the timed loop (not only at the end) carries the
    seconds so far, so a run resumed after a crash still charges them."""
    class Slow:
        def on_step_end(self, trainer, step, logs):
            time.sleep(0.01)

    cfg = config(steps=10, checkpoint_dir=str(tmp_path), checkpoint_every=5)
    trainer = Trainer(make_model(0), mse, make_batch, cfg, callbacks=[Slow()])
    trainer.save = lambda: (trainer.step == 5
                            and save_checkpoint(trainer.checkpoint_path,
                                                trainer.state_dict()))
    trainer.fit()
    assert load_checkpoint(trainer.checkpoint_path)["seconds"] >= 0.05
