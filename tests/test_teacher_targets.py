"""The teacher's scores as targets: its negatives, its scores of a batch, and a
cross-encoder that learns them."""
import math

import numpy as np
import pytest
import torch

from minidr.data.teacher_scores import TeacherScores
from minidr.training.batches import Example, PairBatch
from minidr.training.teacher_targets import TeacherTargets, teacher_negatives

# query 1: teacher ranks 7 > 8 > 9 > 4; query 2: 5 > 6 > 7 > 8
SCORES = TeacherScores(np.array([1, 2]), np.array([[7, 8, 9, 4], [5, 6, 7, 8]]),
                       np.array([[0.9, 0.8, 0.5, 0.1], [0.7, 0.6, 0.3, 0.2]],
                                dtype=np.float16))


def test_teacher_negatives_are_the_ranks_asked_for_without_the_positive():
    examples = [Example("1", "a", "8"), Example("2", "b", "5"), Example("3", "c", "1")]
    got = teacher_negatives(SCORES, examples, [str(p) for p in range(10)], ranks=(1, 4))
    # ranks 1-3 of each query; query 1's positive (its rank 2) is removed;
    # query 3 has no teacher scores
    assert got == {"1": ["7", "9"], "2": ["6", "7"]}
    assert teacher_negatives(SCORES, examples, ["9"], ranks=(1, 4)) == {
        "1": ["9"], "2": []}
    with pytest.raises(ValueError, match="lo < hi"):
        teacher_negatives(SCORES, examples, [], ranks=(3, 3))
    with pytest.raises(ValueError, match="k=4"):
        teacher_negatives(SCORES, examples, [], ranks=(1, 6))


def test_teacher_targets_by_hand_with_the_two_gap_rules():
    targets = TeacherTargets(SCORES)
    got = targets(["1", "2"], ["9", "4", "3", "2", "6", "8"], group=3)
    # "3" is outside query 1's top 4: its 4th score; "2" is a positive the
    # teacher missed: query 2's top score
    expected = [[0.5, 0.1, 0.1], [0.7, 0.6, 0.2]]
    assert got.shape == (2, 3) and got.dtype == torch.float32
    assert np.allclose(got.numpy(), expected, atol=1e-3)
    with pytest.raises(ValueError, match="no scores for query '3'"):
        targets(["3"], ["1", "2"], group=2)
    with pytest.raises(ValueError, match="2 x 3 pids"):
        targets(["1", "2"], ["9"], group=3)


def test_cross_encoder_kl_loss_is_the_kl_between_the_two_softmaxes(tiny_bert):
    from minidr.methods.bert_cat import cross_encoder_kl_loss, train_cross_encoder
    from minidr.models.cross_encoder import CrossEncoder

    torch.manual_seed(0)
    ce = CrossEncoder.from_pretrained(tiny_bert).eval()
    pairs = ce.tokenize(["q a"] * 3, ["p1", "n1", "n2"])
    teacher = torch.tensor([[0.9, 0.5, 0.1]])
    loss, _ = cross_encoder_kl_loss(ce, PairBatch(pairs, 3, teacher), 0.1)
    p_t = torch.softmax(teacher / 0.1, -1)
    log_p_s = torch.log_softmax(ce(**pairs).view(1, 3), -1)
    by_hand = (p_t * (p_t.log() - log_p_s)).sum().item()
    assert math.isclose(loss.item(), by_hand, rel_tol=1e-4)
    with pytest.raises(ValueError, match="no teacher scores"):
        cross_encoder_kl_loss(ce, PairBatch(pairs, 3))

    # training on the teacher's scores lowers the KL
    corpus = {str(p): f"passage {p} about topic {p % 3}" for p in range(10)}
    examples = [Example("1", "topic 1", "7"), Example("2", "topic 2", "5")]
    negatives = teacher_negatives(SCORES, examples, corpus, ranks=(1, 5))
    trainer = train_cross_encoder(ce.train(), examples, corpus, negatives, steps=30,
                                  batch_size=2, n_neg=2, lr=5e-3,
                                  teacher=TeacherTargets(SCORES))
    kl = [h["loss"] for h in trainer.history]
    assert all(map(math.isfinite, kl)) and sum(kl[-5:]) < sum(kl[:5])
