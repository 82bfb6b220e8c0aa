"""Gradient caching: a large in-batch-negative batch in the memory of a small one.

In-batch negatives want large batches (RocketQA: thousands of passages per
step), but a backward pass keeps every activation of the batch. Gradient
caching (Gao, Zhang, Han & Callan 2021) splits the step in two:

1. encode the whole batch **without** a graph, chunk by chunk, keeping only the
   embeddings; compute the loss on them and back-propagate it to the
   *embeddings* only: ``d loss / d embedding``, one small vector per text;
2. encode each chunk again, **with** a graph, and back-propagate the cached
   ``d loss / d embedding`` through it; free it; next chunk.

The parameter gradients are exactly those of one pass over the whole batch,
for the activation memory of one chunk, at the price of encoding everything
twice. Dropout must draw the same masks in both passes, so each chunk's
random state is saved in pass 1 and restored in pass 2 (:class:`RandomState`).

Used through :func:`~minidr.training.trainer.fit` like any loss: the function
returned by :func:`grad_cached` does its own backward (``fit`` sees its
``does_backward`` attribute and hands it the backward to use, which applies
gradient accumulation and mixed-precision scaling).

Example::

    loss = grad_cached(lambda q, p, b: info_nce(q @ p.T, targets(b), 0.05),
                       chunk_size=16)
    fit(encoder, loss, batches, TrainConfig(steps=250))

Reference:
    Gao, Zhang, Han & Callan (2021), Scaling Deep Contrastive Learning Batch
    Size under Memory Limited Setup, RepL4NLP (GradCache).
"""
from __future__ import annotations

from typing import Callable

import torch

from .batches import GroupedBatch

__all__ = ["RandomState", "grad_cached"]


class RandomState:
    """The CPU (and CUDA) random state at creation; ``with state:`` replays it.

    Inside the block the generators start from the saved state, so dropout
    draws the masks it drew when the state was saved; afterwards they are
    back where they were.
    """

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        self._fork = None

    def __enter__(self) -> "RandomState":
        devices = list(range(len(self.cuda)))
        self._fork = torch.random.fork_rng(devices=devices)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu)
        if self.cuda:
            torch.cuda.set_rng_state_all(self.cuda)
        return self

    def __exit__(self, *exc) -> None:
        self._fork.__exit__(*exc)


def _chunks(tokens: dict, size: int) -> list[dict]:
    """Token tensors (n, L) as a list of dicts of at most ``size`` rows."""
    n = next(iter(tokens.values())).shape[0]
    return [{k: v[i:i + size] for k, v in tokens.items()} for i in range(0, n, size)]


def grad_cached(loss_of_embeddings: Callable, chunk_size: int) -> Callable:
    """A ``fit`` loss that back-propagates ``loss_of_embeddings`` chunk by chunk.

    Args:
        loss_of_embeddings: ``(q, p, batch) -> (loss, stats)`` on the whole
            batch's query embeddings ``q (B, H)`` and passage embeddings
            ``p (B*G, H)`` (e.g. the in-batch softmax).
        chunk_size: texts encoded with a graph at once (the memory knob).

    Returns:
        ``loss(encoder, batch, backward) -> (loss, stats)`` with
        ``does_backward = True``: it calls ``backward(loss)`` on the loss of the
        embeddings, then back-propagates each chunk itself.

    Shapes:
        queries (B, Lq) -> q (B, H); passages (B*G, Lp) -> p (B*G, H).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    def loss(encoder, batch: GroupedBatch, backward=None):
        backward = backward or (lambda x: x.backward())
        towers = ((encoder.encode_query, _chunks(batch.queries, chunk_size)),
                  (encoder.encode_passage, _chunks(batch.passages, chunk_size)))
        # pass 1: every embedding, no graph; each chunk's random state kept
        states, embeddings = [], []
        with torch.no_grad():
            for encode, chunks in towers:
                states.append([])
                embeddings.append([])
                for tokens in chunks:
                    states[-1].append(RandomState())       # to replay in pass 2
                    embeddings[-1].append(encode(**tokens))
        q = torch.cat(embeddings[0]).requires_grad_()                     # (B, H)
        p = torch.cat(embeddings[1]).requires_grad_()                     # (B*G, H)
        value, stats = loss_of_embeddings(q, p, batch)
        backward(value)                     # fills q.grad, p.grad: d loss / d embedding
        # pass 2: each chunk again, with its graph and its random state
        for (encode, chunks), chunk_states, grad in zip(towers, states,
                                                         (q.grad, p.grad)):
            start = 0
            for state, tokens in zip(chunk_states, chunks):
                with state:
                    out = encode(**tokens)                                # (c, H)
                out.backward(grad[start:start + len(out)])
                start += len(out)
        return value.detach(), stats

    loss.does_backward = True
    return loss
