"""RocketQA's recipe pieces: the cached in-batch objective, the denoising
threshold, the augmentation margin, the teacher scorer."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from minidr.data.teacher_scores import TeacherScores
from minidr.methods import rocketqa
from minidr.training.batches import Example, GroupedBatches
from minidr.training.teacher_targets import TeacherTargets

# two labeled queries and one unlabeled, the teacher's top 3 of each
SCORES = TeacherScores(np.array([1, 2, 3]),
                       np.array([[10, 11, 12], [20, 21, 22], [30, 31, 32]]),
                       np.array([[0.9, 0.5, 0.1], [0.8, 0.79, 0.7],
                                 [0.7, 0.4, 0.3]], dtype=np.float16))
QRELS = {"1": {"10": 1}, "2": {"21": 1, "99": 0}}


def test_cached_objective_gives_the_plain_in_batch_loss_and_gradients(encoder):
    encoder.eval()                                   # no dropout: comparable passes
    corpus = {str(i): f"passage {i} about topic {i % 3}" for i in range(12)}
    examples = [Example(f"q{i}", f"query about topic {i % 3}", str(i))
                for i in range(6)]
    batch = GroupedBatches(encoder, examples, corpus, 6, 1,
                           {e.qid: [str(int(e.positive) + 6)] for e in examples})(0)
    results = []
    for chunk in (None, 4):
        encoder.zero_grad()
        objective = rocketqa.in_batch_objective(0.05, chunk)
        if chunk is None:
            loss, _ = objective(encoder, batch)
            loss.backward()
        else:
            loss, _ = objective(encoder, batch, lambda v: v.backward())
        results.append((loss.detach(), {n: p.grad.clone() for n, p in
                                        encoder.named_parameters()
                                        if p.grad is not None}))
    (plain, g_plain), (cached, g_cached) = results
    assert torch.isclose(plain, cached, rtol=1e-5)
    for name, grad in g_plain.items():       # round-off: sums in another order
        assert torch.allclose(g_cached[name], grad, rtol=1e-4, atol=1e-6), \
            (name, float((g_cached[name] - grad).abs().max()))


def test_denoise_threshold_is_the_judged_positives_quantile():
    targets = TeacherTargets(SCORES)
    threshold, table = rocketqa.denoise_threshold(targets, QRELS, recall=0.5,
                                                  grid=[0.6])
    # judged positives score 0.9 and 0.79: half of them reach the median
    assert threshold == pytest.approx(np.median([0.9, 0.79]), abs=1e-3)
    # at 0.6: 0.9 and 0.79 are judged; 0.8 and 0.7 are not -> precision 2/4
    assert table.loc[0.6, "precision"] == pytest.approx(0.5)
    assert table.loc[0.6, "recall"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no labeled query"):
        rocketqa.denoise_threshold(targets, {"7": {"1": 1}})


def test_teacher_scorer_never_drops_what_the_teacher_did_not_rank():
    score = rocketqa.teacher_scorer(TeacherTargets(SCORES))
    got = score("2", ["20", "22", "55"])
    assert got[:2] == pytest.approx([0.8, 0.7], abs=1e-3)
    assert got[2] == -math.inf                       # outside the stored top 3


def test_margin_table_and_augmentation_margin():
    table = rocketqa.margin_table(SCORES, QRELS, margins=[0.0, 0.05, 0.5])
    # query 1: margin 0.4, top-1 judged; query 2: margin 0.01, top-1 not judged
    assert table.loc[0.0, "precision"] == pytest.approx(0.5)
    assert table.loc[0.05, "kept"] == pytest.approx(0.5)
    assert table.loc[0.05, "precision"] == pytest.approx(1.0)
    assert math.isnan(table.loc[0.5, "precision"])
    assert rocketqa.augment_margin(table, 0.9) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="no margin reaches"):
        rocketqa.augment_margin(table.loc[[0.0]], 0.9)


def test_augmented_examples_are_confident_teacher_labels():
    data = SimpleNamespace(unlabeled_queries={"3": "an unlabeled query"},
                           corpus={"30": "its top passage"})
    (ex,) = rocketqa.augmented_examples(data, SCORES, min_margin=0.2, n=1)
    assert (ex.qid, ex.positive, ex.teacher) == ("3", "30", True)
    with pytest.raises(ValueError, match="only 0 unlabeled queries"):
        rocketqa.augmented_examples(data, SCORES, min_margin=0.5, n=1)


def test_recipe_sweeps_fall_back_to_gpu():
    assert rocketqa.RECIPE.sweep("batch_sweep", "cpu") == (16, 32, 64, 128)
    assert rocketqa.RECIPE.sweep("augment_sweep", "colab") == \
        rocketqa.RECIPE.augment_sweep["gpu"]
