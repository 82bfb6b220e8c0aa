"""Chapter 11's QGen and GPL: generated training pairs, exact pseudo labels,
GPL's Margin-MSE by hand, and one generation cache shared with chapter 13."""
import math

import numpy as np
import pytest
import torch

from minidr.methods import doc2query, gpl
from minidr.training.batches import Example, GroupedBatches
from minidr.training.teacher_embeddings import TeacherEmbeddings

from conftest import FakeTeacher

CORPUS = {str(i): f"passage {i} about topic {i % 5} with words {i * 7}"
          for i in range(30)}
GENERATED = {pid: [f"topic {int(pid) % 5} question {j} on {pid}" for j in range(3)]
             for pid in CORPUS}


def test_generated_examples_are_distinct_passages_with_their_own_queries():
    examples = gpl.generated_examples(GENERATED, 12, seed=3)
    assert len(examples) == 12 == len({e.positive for e in examples})
    for e in examples:
        pid, j = e.qid.removeprefix("gen-").rsplit("-", 1)
        assert pid == e.positive and e.query == GENERATED[pid][int(j)]
    assert examples == gpl.generated_examples(GENERATED, 12, seed=3)
    assert examples != gpl.generated_examples(GENERATED, 12, seed=4)
    assert len(gpl.generated_examples(GENERATED, 100)) == len(CORPUS)   # all of them
    with pytest.raises(ValueError, match="at least 1"):
        gpl.generated_examples(GENERATED, 0)
    with pytest.raises(ValueError, match="no generated queries"):
        gpl.generated_examples({**GENERATED, "5": []}, 3)


def test_generation_settings_match_chapter_13_so_the_cache_is_shared():
    for profile in ("ci", "cpu", "gpu", "colab"):
        assert gpl.RECIPE.n_generated(profile) == max(doc2query.RECIPE.ns(profile))
    assert gpl.RECIPE.top_k == doc2query.RECIPE.top_k


def _setup(encoder, n_neg=2):
    examples = gpl.generated_examples(GENERATED, 8)
    queries = {e.qid: e.query for e in examples}
    pseudo = TeacherEmbeddings(FakeTeacher(), CORPUS, queries)
    # every other passage of the same topic is a candidate negative
    negatives = {e.qid: [p for p in CORPUS if p != e.positive
                         and int(p) % 5 == int(e.positive) % 5] for e in examples}
    batch = GroupedBatches(encoder, examples, CORPUS, batch_size=4, n_hard=n_neg,
                           hard_negatives=negatives)(0)
    return examples, pseudo, negatives, batch


def test_pseudo_labels_are_the_teachers_exact_scores_of_each_group(encoder):
    _, pseudo, _, batch = _setup(encoder)
    t = pseudo.targets(batch.qids, batch.pids, batch.group)                # (4, 3)
    full = pseudo.scores(batch.qids, batch.pids)                           # (4, 12)
    own = torch.stack([full[i, 3 * i:3 * i + 3] for i in range(4)])
    assert t.shape == (4, 3) and torch.allclose(t, own)
    q = pseudo.query_vectors(batch.qids[:1])[0]
    p = pseudo.passage_vectors(batch.pids[1:2])[0]
    assert math.isclose(float(t[0, 1]), float(q @ p), rel_tol=1e-6)
    with pytest.raises(ValueError, match="expected 4 x 2"):
        pseudo.targets(batch.qids, batch.pids, 2)


def test_passage_vectors_added_from_a_cache_are_never_embedded_again():
    teacher = FakeTeacher()
    pseudo = TeacherEmbeddings(teacher, CORPUS, {"q": "topic 1 query"})
    cached = FakeTeacher().encode_passages(list(CORPUS.values()))        # (30, 8)
    pseudo.add_passages(list(CORPUS), cached)
    t = pseudo.targets(["q"], ["1", "6"], 2)
    assert teacher.encoded == 1                            # the query only
    assert np.allclose(pseudo.passage_vectors(["6"])[0], cached[6])
    assert t.shape == (1, 2)
    with pytest.raises(ValueError, match="30 pids but 2 vectors"):
        pseudo.add_passages(list(CORPUS), cached[:2])


def test_gpl_loss_is_margin_mse_by_hand(encoder):
    encoder.eval()                       # no dropout: two forward passes must agree
    _, pseudo, _, batch = _setup(encoder)
    r = gpl.RECIPE
    q = encoder.encode_query(**batch.queries)                               # (4, H)
    p = encoder.encode_passage(**batch.passages).view(4, 3, -1)            # (4, 3, H)
    s = torch.einsum("bh,bgh->bg", q, p) / r.temperature                    # (4, 3)
    t = pseudo.targets(batch.qids, batch.pids, 3) / r.teacher_temperature
    by_hand = np.mean([((s[i, 0] - s[i, j]) - (t[i, 0] - t[i, j])).item() ** 2
                       for i in range(4) for j in (1, 2)])
    got, stats = gpl.gpl_loss(encoder, batch, pseudo.targets)
    assert math.isclose(got.item(), by_hand, rel_tol=1e-4)
    assert 0 <= stats["agreement"] <= 1


def test_train_gpl_lowers_the_loss_on_generated_pairs(encoder):
    examples, pseudo, negatives, _ = _setup(encoder)
    trainer = gpl.train_gpl(encoder, examples, CORPUS, negatives, pseudo.targets,
                            steps=25, batch_size=4, recipe=gpl.GPLRecipe(lr=3e-3))
    losses = [h["loss"] for h in trainer.history]
    assert len(losses) == 25 and all(map(math.isfinite, losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    # one mined negative per query (GPL), so every batch holds 4 x 2 passages
    assert trainer.cost.counts["passages_encoded"] == 25 * 4 * 2


def test_generated_qids_never_collide_with_real_ones():
    real = Example("1234", "real query", "7")
    generated = gpl.generated_examples(GENERATED, 30)
    assert real.qid not in {e.qid for e in generated}
    assert all(e.qid.startswith("gen-") for e in generated)
