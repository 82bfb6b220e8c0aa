"""Losses of whole batches: encode a batch with the model, score it, call a pure loss.

:mod:`minidr.training.losses` holds pure functions of scores; this module
adds the one step before them that several methods share, so that no method
imports another: encoding a :class:`~minidr.training.batches.GroupedBatch`
and scoring every query against every passage of the batch
(:func:`in_batch_loss`), or against its own group only (:func:`group_scores`).
"""
from __future__ import annotations

import torch

from .batches import GroupedBatch
from .losses import embedding_stats, in_batch_targets, info_nce

__all__ = ["in_batch_loss", "group_scores"]


def in_batch_loss(encoder, batch: GroupedBatch,
                  temperature: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """In-batch softmax (InfoNCE) over every passage of the batch, and diagnostics.

    For query ``q_i`` with positive ``p_i``, every other passage of the batch
    (the other queries' positives and every hard negative) is a negative:

        L = - log  exp(s(q_i, p_i) / tau) / sum_j exp(s(q_i, p_j) / tau).

    Used by DPR (its loss), ANCE (DPR's loss on ANN negatives), and the later
    batch-composition chapters.

    Args:
        encoder: a :class:`~minidr.models.encoder.RetrievalEncoder`.
        batch: a :class:`~minidr.training.batches.GroupedBatch`.
        temperature: softmax temperature (1 for dot products; 0.05 for cosine).

    Shapes:
        queries (B, Lq) -> q (B, H); passages (B*G, Lp) -> p (B*G, H); scores (B, B*G).

    Reference:
        Karpukhin et al. (2020), Dense Passage Retrieval for Open-Domain
        Question Answering, EMNLP, section 3.2 (in-batch negatives).
    """
    q = encoder.encode_query(**batch.queries)                       # (B, H)
    p = encoder.encode_passage(**batch.passages)                    # (B*G, H)
    scores = encoder.score(q, p)                                    # (B, B*G)
    targets = in_batch_targets(q.shape[0], batch.group, device=scores.device)  # (B,)
    loss, stats = info_nce(scores, targets, temperature)
    stats.update(embedding_stats(q.detach(), "q_"))
    stats.update(embedding_stats(p.detach(), "p_"))
    return loss, stats


def group_scores(encoder, batch: GroupedBatch) -> torch.Tensor:
    """Each query's scores of its own group, positive first (what Margin-MSE
    and listwise KL compare with a teacher's scores of the same pairs).

    Shapes:
        queries (B, Lq) -> q (B, H); passages (B*G, Lp) -> p (B, G, H);
        returns (B, G).
    """
    q = encoder.encode_query(**batch.queries)                             # (B, H)
    p = encoder.encode_passage(**batch.passages)                          # (B*G, H)
    p = p.view(q.shape[0], batch.group, -1)                               # (B, G, H)
    return torch.einsum("bh,bgh->bg", q, p)                               # (B, G)
