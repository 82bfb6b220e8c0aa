"""minidr.losses: the numbers of each loss, worked out by hand on toy scores."""
from __future__ import annotations

import math

import pytest
import torch

from minidr.training.losses import embedding_stats, in_batch_targets, info_nce, ranknet


def test_info_nce_by_hand():
    scores = torch.tensor([[2.0, 1.0, 0.0],
                           [0.5, 0.0, 3.0]])
    # query 0's positive wins; query 1's loses to column 2
    targets = torch.tensor([0, 1])
    loss, stats = info_nce(scores, targets)
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + math.exp(0)))
    row1 = -math.log(math.exp(0) / (math.exp(0.5) + math.exp(0) + math.exp(3)))
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert stats == pytest.approx({"accuracy": 0.5,
                                   "pos_score": (2.0 + 0.0) / 2,
                                   "neg_score": (1.0 + 0.0 + 0.5 + 3.0) / 4})
    assert all(type(v) is float for v in stats.values())


def test_info_nce_temperature_divides_scores():
    scores = torch.tensor([[1.0, 0.0]])
    loss, stats = info_nce(scores, torch.tensor([0]), temperature=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.0 / 0.5)), rel=1e-6)
    assert stats["pos_score"] == 1.0  # stats are on the raw scores
    sharp, _ = info_nce(scores, torch.tensor([0]), temperature=0.1)
    flat, _ = info_nce(scores, torch.tensor([0]), temperature=10.0)
    assert sharp < loss < flat        # a right ranking: colder is surer
    with pytest.raises(ValueError):
        info_nce(scores, torch.tensor([0]), temperature=0.0)


def test_info_nce_gradient_pushes_positive_up_and_negatives_down():
    scores = torch.zeros(1, 3, requires_grad=True)
    loss, _ = info_nce(scores, torch.tensor([1]))
    loss.backward()
    # d loss / d s_j = softmax_j - [j == target] = 1/3 - 1 for the positive,
    # 1/3 otherwise
    torch.testing.assert_close(scores.grad, torch.tensor([[1 / 3, -2 / 3, 1 / 3]]))


def test_info_nce_shape_errors():
    with pytest.raises(ValueError):
        info_nce(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError):
        info_nce(torch.zeros(6), torch.zeros(6, dtype=torch.long))


def test_in_batch_targets_layout():
    assert in_batch_targets(4).tolist() == [0, 1, 2, 3]  # one passage per query
    assert in_batch_targets(3, 2).tolist() == [0, 2, 4]  # [pos, neg] per query
    assert in_batch_targets(2, 5).tolist() == [0, 5]
    assert in_batch_targets(3, 2).dtype == torch.long
    with pytest.raises(ValueError):
        in_batch_targets(0, 2)


def test_in_batch_info_nce_picks_each_querys_own_positive():
    # Query i matches its own positive best, its hard negative second,
    # the others not at all.
    q = torch.eye(3)       # (B=3, H=3)
    p = torch.zeros(6, 3)  # (B*G=6, H) [pos0, neg0, pos1, neg1, ...]
    for i in range(3):
        p[2 * i, i], p[2 * i + 1, i] = 2.0, 1.0
    scores = q @ p.T       # (3, 6)
    loss, stats = info_nce(scores, in_batch_targets(3, 2))
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 4 * math.exp(0)))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["accuracy"] == 1.0 and stats["pos_score"] == 2.0
    # 3 hard negatives of 1, 12 zeros
    assert stats["neg_score"] == pytest.approx(3 * 1.0 / 15)


def test_ranknet_by_hand():
    pos = torch.tensor([1.0, 0.0])
    neg = torch.tensor([[0.0, 2.0],
                        [-1.0, 0.5]])
    loss, stats = ranknet(pos, neg)
    margins = [1.0, -1.0, 1.0, -0.5]
    expected = sum(math.log(1 + math.exp(-m)) for m in margins) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats == pytest.approx({"pair_accuracy": 0.5, "pos_score": 0.5,
                                   "neg_score": 0.375})


def test_ranknet_sigma_and_extremes():
    loss, _ = ranknet(torch.tensor([1.0]), torch.tensor([[0.0]]), sigma=2.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2.0)), rel=1e-6)
    big, stats = ranknet(torch.tensor([0.0]), torch.tensor([[200.0]]))   # no overflow
    assert big.item() == pytest.approx(200.0) and stats["pair_accuracy"] == 0.0
    tiny, _ = ranknet(torch.tensor([200.0]), torch.tensor([[0.0]]))
    assert 0.0 <= tiny.item() < 1e-30
    with pytest.raises(ValueError):
        ranknet(torch.zeros(2), torch.zeros(3, 4))


def test_embedding_stats_detects_collapse():
    collapsed = torch.ones(8, 4) * 3.0
    assert (embedding_stats(collapsed)
            == pytest.approx({"emb_std": 0.0, "emb_norm": 6.0}))
    spread = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    # per-dimension population std: [1, 0] -> mean 0.5; each row has norm 1
    assert (embedding_stats(spread, prefix="q_")
            == pytest.approx({"q_emb_std": 0.5, "q_emb_norm": 1.0}))


def test_losses_train_a_toy_retriever():
    # The losses must be usable end to end:
    # a linear query encoder learns to match passages.
    torch.manual_seed(0)
    passages = torch.randn(16, 8)                # (N, H) fixed passage embeddings
    encoder = torch.nn.Linear(8, 8)
    opt = torch.optim.SGD(encoder.parameters(), lr=0.1)
    first = None
    for _ in range(50):
        scores = encoder(passages) @ passages.T  # (16, 16): query i -> passage i
        loss, stats = info_nce(scores, in_batch_targets(16))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 2 and stats["accuracy"] >= 0.9


def test_margin_mse_by_hand_and_its_gradient():
    from minidr.training.losses import margin_mse

    s_pos = torch.tensor([2.0, 0.5], requires_grad=True)
    s_neg = torch.tensor([[1.0, 0.0], [1.0, 0.5]], requires_grad=True)    # (B, n)
    t_pos, t_neg = torch.tensor([0.8, 0.6]), torch.tensor([[0.6, 0.2], [0.7, 0.1]])
    loss, stats = margin_mse(s_pos, s_neg, t_pos, t_neg, scale=10.0)
    # student margins (1, 2; -0.5, 0), teacher margins x10 (2, 6; -1, 5)
    want = ((1 - 2) ** 2 + (2 - 6) ** 2 + (-0.5 + 1) ** 2 + (0 - 5) ** 2) / 4
    assert loss.item() == pytest.approx(want)
    assert stats["agreement"] == pytest.approx(3 / 4)   # 0 vs 5 disagrees in sign
    loss.backward()
    # d loss / d s_pos_0 = 2/4 * ((1 - 2) + (2 - 6)) = -2.5
    assert s_pos.grad[0].item() == pytest.approx(-2.5)
    one, _ = margin_mse(torch.tensor([1.0]), torch.tensor([0.0]),
                        torch.tensor([1.0]), torch.tensor([0.0]))
    assert one.item() == 0.0                      # one negative per query, (B,)
    with pytest.raises(ValueError, match="same shapes"):
        margin_mse(torch.zeros(2), torch.zeros(3, 1), torch.zeros(2), torch.zeros(3, 1))
