"""Chapter 10's distillation: the same batches under every loss, each loss by hand."""
import math

import numpy as np
import pytest
import torch

from minidr.data.teacher_scores import TeacherScores
from minidr.methods import distill
from minidr.training.batches import Example, GroupedBatches
from minidr.training.losses import distill_kl, margin_mse
from minidr.training.teacher_embeddings import TeacherEmbeddings
from minidr.training.teacher_targets import TeacherTargets, teacher_negatives

from conftest import FakeTeacher

CORPUS = {str(i): f"passage {i} about topic {i % 5} with words {i * 7}"
          for i in range(30)}
EXAMPLES = [Example(str(q), f"topic {q % 5} passage {q}", str(q)) for q in range(8)]
# the teacher ranks each query's own passage first, then passages of its topic
RANKED = [[q] + [p for p in range(30) if p != q and p % 5 == q % 5][:4]
          + [p for p in range(30) if p % 5 != q % 5][:3] for q in range(8)]
SCORES = TeacherScores(np.arange(8), np.array(RANKED),
                       np.tile(np.linspace(0.9, 0.1, 8), (8, 1)).astype(np.float16))


@pytest.fixture
def batch(encoder):
    negatives = teacher_negatives(SCORES, EXAMPLES, CORPUS, ranks=(2, 9))
    return GroupedBatches(encoder, EXAMPLES, CORPUS, batch_size=4, n_hard=3,
                          hard_negatives=negatives)(0)


def test_each_loss_is_its_formula_on_the_group_scores(encoder, batch):
    encoder.eval()  # no dropout: the forward passes below must agree
    targets, r = TeacherTargets(SCORES), distill.RECIPE
    student = distill.group_scores(encoder, batch) / r.temperature         # (4, 4)
    teacher = targets(batch.qids, batch.pids, 4) / r.teacher_temperature    # (4, 4)
    # the group scores are the rows' own entries of the in-batch score matrix
    q = encoder.encode_query(**batch.queries)
    p = encoder.encode_passage(**batch.passages)
    full = encoder.score(q, p)                                              # (4, 16)
    own = torch.stack([full[i, 4 * i:4 * i + 4] for i in range(4)])
    assert torch.allclose(student * r.temperature, own, atol=1e-5)
    for loss, expected in (
            ("Margin-MSE", margin_mse(student[:, 0], student[:, 1:],
                                      teacher[:, 0], teacher[:, 1:])[0]),
            ("KL", distill_kl(student, teacher)[0]),
            ("hard labels, own group", torch.nn.functional.cross_entropy(
                student, torch.zeros(4, dtype=torch.long)))):
        got, _ = distill.distill_loss(encoder, batch, loss, targets)
        assert math.isclose(got.item(), expected.item(), rel_tol=1e-4), loss
    with pytest.raises(ValueError, match="unknown loss"):
        distill.distill_loss(encoder, batch, "MSE", targets)


def test_embedding_mse_is_its_formula(encoder, batch):
    teacher = TeacherEmbeddings(FakeTeacher(), CORPUS, {e.qid: e.query
                                                         for e in EXAMPLES})
    model = distill.ProjectedStudent(encoder, teacher.dim).eval()
    q = model.head(encoder.encode_query(**batch.queries))                  # (4, 8)
    p = model.head(encoder.encode_passage(**batch.passages))               # (16, 8)
    t_q = teacher.query_vectors(batch.qids)
    t_p = teacher.passage_vectors(batch.pids)
    by_hand = sum(np.mean([np.sum((x / np.linalg.norm(x) - t) ** 2)
                           for x, t in zip(s.detach().numpy(), t_s)])
                  for s, t_s in ((q, t_q), (p, t_p)))
    got, _ = distill.distill_loss(model, batch, "embedding MSE", None, teacher=teacher)
    assert math.isclose(got.item(), by_hand, rel_tol=1e-4)
    with pytest.raises(ValueError, match="ProjectedStudent"):
        distill.distill_loss(encoder, batch, "embedding MSE", None, teacher=teacher)


def test_every_loss_trains_on_the_same_batches(encoder):
    negatives = teacher_negatives(SCORES, EXAMPLES, CORPUS, ranks=(2, 9))
    teacher = TeacherEmbeddings(FakeTeacher(), CORPUS, {e.qid: e.query
                                                         for e in EXAMPLES})
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    for loss in distill.LOSSES:
        encoder.load_state_dict(state)
        trainer = distill.train_distilled(encoder, loss, EXAMPLES, CORPUS, negatives,
                                          TeacherTargets(SCORES), steps=25,
                                          batch_size=4,
                                          recipe=distill.DistillRecipe(lr=3e-3),
                                          teacher=teacher)
        losses = [h["loss"] for h in trainer.history]
        assert all(map(math.isfinite, losses)), loss
        assert np.mean(losses[-5:]) < np.mean(losses[:5]), loss
    with pytest.raises(ValueError, match="choose one of"):
        distill.train_distilled(encoder, "MSE", EXAMPLES, CORPUS, negatives,
                                TeacherTargets(SCORES), steps=1, batch_size=4)
    with pytest.raises(ValueError, match="teacher's embeddings"):
        distill.train_distilled(encoder, "embedding MSE", EXAMPLES, CORPUS, negatives,
                                TeacherTargets(SCORES), steps=1, batch_size=4)
