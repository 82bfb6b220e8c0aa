"""minidr.star: the loss against a hand computation, static negatives
(no positive, mined once), training."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from minidr.core.cost import CostMeter
from minidr.training.batches import examples_qrels
from minidr.training.negatives import positives_of
from minidr.training.batches import GroupedBatch
from minidr.methods.star import star_loss, static_negatives, train_star
from minidr.training.losses import star_scores_loss
from minidr.training.recipe import COSINE_SIGMA as SIGMA


class FixedEmbeddings:
    """A stand-in encoder: fixed query and passage embeddings, dot-product scores."""

    def __init__(self, q, p):
        self.q, self.p = q, p

    def encode_query(self, **tokens):
        return self.q

    def encode_passage(self, **tokens):
        return self.p

    def score(self, q, p):
        return q @ p.T


def by_hand(scores, alpha, sigma):
    """L = alpha * mean RankNet over random pairs + mean RankNet over static pairs,
    with loops."""
    B = len(scores)
    static, random = [], []
    for i in range(B):
        s_pos = scores[i][2 * i]
        for j in range(2 * B):
            pair = math.log(1 + math.exp(-sigma * (s_pos - scores[i][j])))
            if j == 2 * i + 1:
                static.append(pair)                # the query's own hard negative
            elif j != 2 * i:
                random.append(pair)                # every other passage of the batch
    return alpha * sum(random) / len(random) + sum(static) / len(static)


def test_star_loss_equals_a_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])                 # (B=3, H=2)
    p = torch.tensor([[0.9, 0.1], [0.8, 0.3], [0.2, 0.7], [0.0, 1.0],     # (2B=6, H=2)
                      [0.5, 0.5], [1.0, 0.2]])  # [pos_0, neg_0, pos_1, ...]
    batch = GroupedBatch({}, {}, group=2)
    loss, stats = star_loss(FixedEmbeddings(q, p), batch, alpha=0.5, sigma=2.0)
    scores = (q @ p.T).tolist()
    assert math.isclose(loss.item(), by_hand(scores, alpha=0.5, sigma=2.0),
                        rel_tol=1e-6)
    assert math.isclose(stats["loss_static"] + 0.5 * stats["loss_random"], loss.item(),
                        rel_tol=1e-6)
    # positive vs own static negative: 0.9 > 0.8 (query 0), 0.7 < 1.0 (query 1),
    # 0.7 < 0.76 (query 2)
    assert stats["static_pair_accuracy"] == pytest.approx(1 / 3)
    wins = sum(scores[i][2 * i] > scores[i][j]
               for i in range(3) for j in range(6) if j // 2 != i)
    assert stats["random_pair_accuracy"] == pytest.approx(wins / 12)
    assert {"q_emb_std", "p_emb_std", "pos_score"} <= set(stats)


def test_alpha_2b_minus_2_weights_every_pair_equally():
    """The official code's combination: the mean over all 2B - 1 pairs of each query."""
    torch.manual_seed(0)
    B, sigma = 4, SIGMA
    scores = torch.rand(B, 2 * B) * 2 - 1                 # cosines
    loss, _ = star_scores_loss(scores, alpha=2 * (B - 1), sigma=sigma)
    pos = scores[torch.arange(B), 2 * torch.arange(B)]    # (B,)
    pairs = F.softplus(-sigma * (pos[:, None] - scores))  # (B, 2B), own positive too
    mean_all = ((pairs.sum() - pairs[torch.arange(B), 2 * torch.arange(B)].sum())
                / (B * (2 * B - 1)))
    assert math.isclose(loss.item() / (2 * B - 1), mean_all.item(), rel_tol=1e-5)


def test_star_loss_checks_the_layout():
    with pytest.raises(ValueError, match="B >= 2"):
        star_scores_loss(torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(B, 2B\)"):
        star_scores_loss(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="group 2"):
        star_loss(None, GroupedBatch({}, {}, group=3))


def test_static_negatives_exclude_positives_and_are_mined_once(encoder, small):
    examples, corpus = small
    qrels = examples_qrels(examples)
    cost = CostMeter()
    negs = static_negatives(encoder, examples, corpus, n=len(corpus),
                            depth=len(corpus), cost=cost)
    assert set(negs) == set(qrels)
    for qid, pids in negs.items():
        assert not positives_of(qrels, qid) & set(pids)
        assert len(pids) == len(corpus) - len(positives_of(qrels, qid))
    assert cost.counts["passages_encoded"] == len(corpus)
    again = static_negatives(encoder, examples, corpus, n=len(corpus),
                             depth=len(corpus), cost=cost)
    # from the cache
    assert again == negs and cost.counts["passages_encoded"] == len(corpus)


def test_train_star_runs_and_counts(encoder, small):
    examples, corpus = small
    negatives = static_negatives(encoder, examples, corpus, n=5, depth=50)
    cost = CostMeter()
    trainer = train_star(encoder, examples, corpus, negatives, steps=3, batch_size=4,
                         lr=1e-3, cost=cost, device="cpu")
    losses = [h["loss"] for h in trainer.history]
    assert len(losses) == 3 and all(map(math.isfinite, losses))
    assert ({"loss_static", "loss_random", "static_pair_accuracy"}
            <= set(trainer.history[0]))
    assert cost.counts["steps"] == 3
    assert (cost.counts["queries_encoded"] == 3 * 4
            and cost.counts["passages_encoded"] == 3 * 8)
    with pytest.raises(ValueError, match="static hard negatives"):
        train_star(encoder, examples, corpus, {}, steps=1)
