"""Chapter 9's TAS and TAS-B: topic batches, balanced pairs, the loss by hand."""
import math
import random
from collections import Counter

import numpy as np
import pytest
import torch

from minidr.data.teacher_scores import TeacherScores
from minidr.methods import tas
from minidr.training.batches import EpochOrder, Example
from minidr.training.teacher_embeddings import TeacherEmbeddings
from minidr.training.teacher_targets import TeacherTargets, teacher_negatives

from conftest import FakeTeacher

N_TOPICS, PER_TOPIC = 4, 12
CORPUS = {str(i): f"passage {i} on topic {i % N_TOPICS} words {i * 7}"
          for i in range(96)}
# query q's positive is passage q; its topic is q % N_TOPICS
EXAMPLES = [Example(str(q), f"topic {q % N_TOPICS} query {q}", str(q))
            for q in range(N_TOPICS * PER_TOPIC)]
TOPICS = [q % N_TOPICS for q in range(len(EXAMPLES))]
# the teacher's top 20 of each query: its positive, then 19 others, scores falling
RANKED = [[q] + [p for p in range(96) if p != q][q:q + 19] for q in range(48)]
FALLING = np.geomspace(0.95, 0.01, 20)
SCORES = TeacherScores(np.arange(48), np.array(RANKED),
                       np.tile(FALLING, (48, 1)).astype(np.float16))


def test_topic_order_fills_batches_from_one_topic_and_sees_every_example():
    order = tas.TopicOrder(EXAMPLES, TOPICS, batch_size=6, seed=3)
    per_epoch = len(EXAMPLES) // 6
    seen = Counter()
    for i in range(per_epoch):
        batch = order.select(i)
        assert len({TOPICS[int(e.qid)] for e in batch}) == 1     # 12 per topic: 2 x 6
        seen.update(e.qid for e in batch)
    assert seen == Counter(e.qid for e in EXAMPLES)               # once each
    # the next epoch is another shuffle, still one topic per batch
    later = [order.select(i) for i in range(per_epoch, 2 * per_epoch)]
    assert all(len({TOPICS[int(e.qid)] for e in b}) == 1 for b in later)
    assert [e.qid for e in later[0]] != [e.qid for e in order.select(0)]


def test_topic_order_pools_leftovers_into_mixed_batches():
    order = tas.TopicOrder(EXAMPLES, TOPICS, batch_size=5, seed=0)   # 12 = 2 x 5 + 2
    perm = order.permutation(0)
    assert sorted(perm) == list(range(len(EXAMPLES)))
    batches = [perm[j:j + 5] for j in range(0, len(perm), 5)]
    pure = [b for b in batches if len({TOPICS[i] for i in b}) == 1 and len(b) == 5]
    assert len(pure) == N_TOPICS * 2                        # every full topic batch
    with pytest.raises(ValueError, match="one topic per example"):
        tas.TopicOrder(EXAMPLES, TOPICS[:-1], batch_size=5)


def test_negatives_depend_on_query_and_epoch_not_on_the_batch():
    candidates = teacher_negatives(SCORES, EXAMPLES, CORPUS, ranks=(2, 21))
    targets = TeacherTargets(SCORES)
    for balanced in (False, True):
        random_order = tas.TripleBatches(None, EpochOrder(EXAMPLES, 6), CORPUS,
                                         candidates, targets, balanced)
        topic_order = tas.TripleBatches(None, tas.TopicOrder(EXAMPLES, TOPICS, 6),
                                        CORPUS, candidates, targets, balanced)
        triples = [set(zip(*_pairs(b, 8))) for b in (random_order, topic_order)]
        assert triples[0] == triples[1]                     # same triples, regrouped
        assert all(neg in CORPUS and neg != pos for _, (pos, neg) in triples[0])


def _pairs(batches, n):
    """(qid, positive, negative) of the first n batches."""
    qids, pos, neg = [], [], []
    for i in range(n):
        examples, pids = batches.triples(i)
        qids += [e.qid for e in examples]
        pos += pids[0::2]
        neg += pids[1::2]
    return qids, list(zip(pos, neg))


def test_balanced_choice_covers_the_margin_bins():
    # 90 easy negatives crowd the top bin, one negative in each other bin
    margins = np.concatenate([np.full(90, 9.5), np.arange(9) + 0.5])
    bins = tas.margin_bins(margins, 10)
    assert [len(b) for b in bins] == [1] * 9 + [90]
    rng = random.Random(0)
    draws = [tas.balanced_choice(margins, 10, rng) for _ in range(2000)]
    per_bin = Counter(int(min(margins[d] // 1, 9)) for d in draws)
    assert set(per_bin) == set(range(10))                    # every bin is drawn
    assert max(per_bin.values()) < 3 * min(per_bin.values())  # about evenly
    uniform = Counter(int(min(margins[rng.randrange(99)] // 1, 9))
                      for _ in range(2000))
    assert uniform[9] > 0.8 * 2000                           # uniform: the crowd
    assert [b.tolist() for b in tas.margin_bins(np.ones(3), 10)] == [[0, 1, 2]]


def test_balanced_pairs_reach_smaller_margins_than_uniform_ones():
    candidates = teacher_negatives(SCORES, EXAMPLES, CORPUS, ranks=(2, 21))
    targets = TeacherTargets(SCORES)
    mean_margin = {}
    for balanced in (False, True):
        b = tas.TripleBatches(None, EpochOrder(EXAMPLES, 8), CORPUS, candidates,
                              targets, balanced)
        t = [targets([e.qid for e in ex], pids, 2) for ex, pids in
             (b.triples(i) for i in range(30))]
        mean_margin[balanced] = float(torch.cat([x[:, 0] - x[:, 1] for x in t]).mean())
    # the stored scores fall geometrically: most candidates are far below the top
    assert mean_margin[True] < mean_margin[False]
    with pytest.raises(ValueError, match="need the teacher's scores"):
        tas.TripleBatches(None, EpochOrder(EXAMPLES, 8), CORPUS, candidates,
                          None, balanced=True)


def test_cluster_queries_finds_separated_topics(one_faiss_thread):
    rng = np.random.default_rng(0)
    centers = np.eye(8)[:3] * 10
    x = np.concatenate([c + rng.normal(size=(20, 8)) for c in centers])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = tas.cluster_queries(x, 3)
    assert labels.shape == (60,)
    assert all(len(set(labels[i:i + 20])) == 1 for i in (0, 20, 40))
    assert len(set(labels)) == 3
    with pytest.raises(ValueError, match="n_clusters"):
        tas.cluster_queries(x, 61)


def test_teacher_embeddings_encode_each_text_once_and_score_by_dot_product():
    fake = FakeTeacher()
    queries = {e.qid: e.query for e in EXAMPLES}
    emb = TeacherEmbeddings(fake, CORPUS, queries)
    emb.prepare(["0", "1"], ["5", "6", "7"])
    t = emb.scores(["1", "0"], ["7", "5", "6", "8"])                     # (2, 4)
    assert t.shape == (2, 4) and fake.encoded == 6                      # only "8" new
    expected = fake._embed([queries["1"]]) @ fake._embed([CORPUS["8"]]).T
    assert math.isclose(float(t[0, 3]), float(expected[0, 0]), rel_tol=1e-5)
    assert emb.cost.summary()["passages_encoded"] == 4
    with pytest.raises(KeyError, match="not in the teacher's corpus"):
        emb.prepare([], ["no such passage"])


def test_tas_loss_is_its_formula(encoder):
    candidates = teacher_negatives(SCORES, EXAMPLES, CORPUS, ranks=(2, 21))
    teacher = TeacherEmbeddings(FakeTeacher(), CORPUS, {e.qid: e.query
                                                         for e in EXAMPLES})
    batches = tas.tas_batches(encoder, "TAS-B", EXAMPLES, CORPUS, candidates,
                              TeacherTargets(SCORES), TOPICS, batch_size=4)
    batch = batches(0)
    encoder.eval()                                   # no dropout: passes must agree
    r = tas.RECIPE
    q = encoder.encode_query(**batch.queries)
    p = encoder.encode_passage(**batch.passages)
    s = (q @ p.T) / r.temperature                                          # (4, 8)
    t = teacher.scores(batch.qids, batch.pids) / r.teacher_temperature     # (4, 8)
    pair = np.mean([((s[i, 2 * i] - s[i, 2 * i + 1])
                     - (t[i, 2 * i] - t[i, 2 * i + 1])).item() ** 2 for i in range(4)])
    ib = np.mean([((s[i, 2 * i] - s[i, j]) - (t[i, 2 * i] - t[i, j])).item() ** 2
                  for i in range(4) for j in range(8) if j // 2 != i])
    got, stats = tas.tas_loss(encoder, batch, teacher)
    assert math.isclose(got.item(), pair + r.in_batch_weight * ib, rel_tol=1e-4)
    assert math.isclose(stats["pair_mse"], pair, rel_tol=1e-4)
    with pytest.raises(ValueError, match="unknown arm"):
        tas.tas_batches(encoder, "TAS-C", EXAMPLES, CORPUS, candidates, None,
                        TOPICS, 4)


def test_every_arm_trains(encoder):
    candidates = teacher_negatives(SCORES, EXAMPLES, CORPUS, ranks=(2, 21))
    teacher = TeacherEmbeddings(FakeTeacher(), CORPUS, {e.qid: e.query
                                                         for e in EXAMPLES})
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    for arm in tas.ARMS:
        encoder.load_state_dict(state)
        batches = tas.tas_batches(encoder, arm, EXAMPLES, CORPUS, candidates,
                                  TeacherTargets(SCORES), TOPICS, batch_size=6)
        trainer = tas.train_tas(encoder, batches, teacher, steps=30,
                                recipe=tas.TasRecipe(lr=3e-3))
        losses = [h["loss"] for h in trainer.history]
        assert all(map(math.isfinite, losses)), arm
        assert np.mean(losses[-5:]) < np.mean(losses[:5]), arm
