"""Cross-batch negatives: every process's passages are negatives for every query.

RocketQA (Qu et al. 2021, section 4.1) trains on several GPUs and shares the
passage embeddings of all of them: with N processes of B queries and G
passages each, every query is contrasted with ``N * B * G`` passages, not
``B * G``. The only communication is one ``all_gather`` of passage embeddings
per step (``torch.distributed``: gloo on CPU, nccl on GPU).

The gather must keep gradients. :func:`gather_passages` is an autograd
function: forward, ``all_gather`` of the embeddings; backward, an
``all_reduce`` (sum) of their gradients, of which each process keeps its own
rows. So the process that owns a passage receives the gradients that *every*
process's queries sent to it. With :func:`average_gradients` after
``backward()``, N processes of local batch B then compute exactly the loss
and the gradients of one process with batch ``N * B``
(tests/test_cross_batch.py checks this with two gloo processes). Detaching
the other processes' embeddings instead, a common shortcut, drops the
gradient that remote queries send to local passages (the test shows it).

Launched with ``torchrun --nproc_per_node=N script.py``: each process calls
``torch.distributed.init_process_group`` (``"gloo"`` or ``"nccl"``) and draws
its own shard of each step's queries. In a single process every function
here reduces to plain in-batch training.

Training goes through :func:`~minidr.training.trainer.fit` like every
method: :class:`ShardedBatches` gives each process its share of step ``i``'s
batch, and :func:`cross_batch_objective` is a loss that back-propagates and
averages the gradients itself (tests/test_cross_batch.py checks that two
processes train to the same weights as one process with the whole batch).

Example::

    # torchrun --nproc_per_node=2 train.py, in each process:
    torch.distributed.init_process_group("gloo")
    batches = ShardedBatches(GroupedBatches(encoder, examples, corpus, 64, 1, negs))
    fit(encoder, cross_batch_objective(0.05), batches, TrainConfig(steps=250))
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from .batches import GroupedBatch, GroupedBatches
from .losses import in_batch_targets, info_nce

__all__ = ["world", "gather_passages", "cross_batch_loss", "average_gradients",
           "ShardedBatches", "cross_batch_objective"]


def world() -> tuple[int, int]:
    """``(rank, world size)``: ``(0, 1)`` outside ``torch.distributed``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGradients(torch.autograd.Function):
    """all_gather forward; backward: sum every process's gradient, keep own rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, size = world()
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        return torch.cat(parts)                                           # (N*M, H)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()                                  # (N*M, H)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)     # what every process sent
        return grad[ctx.rows[0]:ctx.rows[1]]                              # (M, H)


def gather_passages(p: torch.Tensor) -> torch.Tensor:
    """Every process's passage embeddings, in rank order, with gradients.

    Shapes:
        p (M, H) on each process (the same M everywhere) -> (N * M, H).
    """
    _, size = world()
    if size == 1:
        return p
    return _GatherWithGradients.apply(p)                                  # (N*M, H)


def cross_batch_loss(encoder, batch: GroupedBatch,
                     temperature: float = 1.0) -> tuple[torch.Tensor, dict]:
    """In-batch softmax over the passages of *all* processes (RocketQA).

    Query ``i`` of process ``r`` has its positive at column
    ``(r * B + i) * G`` of the gathered passages; every other column is a
    negative. The loss is the mean over the local queries; averaged over the
    processes' gradients (:func:`average_gradients`) it is the mean over all
    ``N * B`` queries.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`.
        batch: this process's shard: B queries, groups of G passages.
        temperature: softmax temperature (0.05 for cosine scores).

    Shapes:
        q (B, H); p (B*G, H) local, (N*B*G, H) gathered; scores (B, N*B*G).

    Reference:
        Qu et al. (2021), RocketQA: An Optimized Training Approach to Dense
        Passage Retrieval for Open-Domain Question Answering, NAACL, 4.1.
    """
    rank, size = world()
    q = encoder.encode_query(**batch.queries)                             # (B, H)
    p = gather_passages(encoder.encode_passage(**batch.passages))         # (N*B*G, H)
    scores = encoder.score(q, p)                                          # (B, N*B*G)
    local = in_batch_targets(q.shape[0], batch.group, device=scores.device)  # (B,)
    targets = local + rank * q.shape[0] * batch.group
    loss, stats = info_nce(scores, targets, temperature)
    stats["negatives_per_query"] = scores.shape[1] - 1
    return loss, stats


def average_gradients(model: torch.nn.Module) -> None:
    """Average every parameter's gradient over the processes (after ``backward``).

    A no-op in a single process. (``DistributedDataParallel`` does the same
    inside ``forward``/``backward``; it is not used here because the encoder is
    called through ``encode_query``/``encode_passage``, not ``forward``.)
    """
    _, size = world()
    if size == 1:
        return
    for param in model.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad /= size


class ShardedBatches:
    """``batches(i)``: this process's share of step ``i``'s global batch.

    The global batch of ``batches`` (B_global queries) is the same in every
    process (it is a pure function of ``i`` and the seed); process ``r`` of
    ``N`` takes queries ``[r * B, (r + 1) * B)`` with ``B = B_global / N`` and
    their groups, so the processes together see exactly the global batch.

    Args:
        batches: the global batches (a
            :class:`~minidr.training.batches.GroupedBatches`).
        rank, size: this process and the world size (default: :func:`world`).
    """

    def __init__(self, batches: GroupedBatches, rank: int | None = None,
                 size: int | None = None):
        here = world()
        self.rank = here[0] if rank is None else rank
        self.size = here[1] if size is None else size
        if batches.batch_size % self.size:
            raise ValueError(f"the global batch ({batches.batch_size} queries) must "
                             f"split evenly over {self.size} processes")
        self.batches = batches

    def __call__(self, i: int) -> GroupedBatch:
        queries, passages, pids = self.batches.texts(i)
        qids = [ex.qid for ex in self.batches.select(i)]
        b, g = len(queries) // self.size, 1 + self.batches.n_hard
        q, p = slice(self.rank * b, (self.rank + 1) * b), slice(self.rank * b * g,
                                                                (self.rank + 1) * b * g)
        encoder = self.batches.encoder
        return GroupedBatch(encoder.tokenize_queries(queries[q]),
                            encoder.tokenize_passages(passages[p]), g, qids[q], pids[p])


def cross_batch_objective(temperature: float = 1.0):
    """A :func:`~minidr.training.trainer.fit` loss for cross-batch training: the
    loss of :func:`cross_batch_loss`, back-propagated, then the gradients
    averaged over the processes (so every process takes the same step).

    Args:
        temperature: softmax temperature (0.05 for cosine scores).
    """

    def loss(encoder, batch: GroupedBatch, backward):
        value, stats = cross_batch_loss(encoder, batch, temperature)
        backward(value)
        average_gradients(encoder)
        return value, stats

    loss.does_backward = True
    return loss
