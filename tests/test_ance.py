"""minidr.ance: refresh schedule, ANN negatives (never a positive), refreshes paid for,
training runs."""
from __future__ import annotations

import math

import pytest

from minidr.methods.ance import refresh_steps, train_ance
from minidr.training.mining import ann_index, ann_negatives
from minidr.core.cost import CostMeter
from minidr.training.batches import examples_qrels
from minidr.training.negatives import positives_of


def test_refresh_steps():
    assert refresh_steps(5, 2) == [0, 2, 4]
    assert refresh_steps(4, 2) == [0, 2]
    assert refresh_steps(3, 10) == [0]
    assert refresh_steps(0, 1) == []
    with pytest.raises(ValueError, match="refresh_every"):
        refresh_steps(5, 0)


def test_ann_negatives_never_contain_positives(encoder, small):
    examples, corpus = small
    qrels = examples_qrels(examples)
    assert any(len(rel) > 1 for rel in qrels.values())  # a query with two positives
    cost = CostMeter()
    # depth = the whole corpus: every positive is retrieved,
    # so exclusion is really tested
    negs = ann_negatives(encoder, examples, corpus, n=len(corpus), depth=len(corpus),
                         cost=cost)
    assert set(negs) == set(qrels)
    for qid, pids in negs.items():
        positives = positives_of(qrels, qid)
        assert not positives & set(pids)
        assert len(pids) == len(set(pids)) == len(corpus) - len(positives)
    assert cost.counts["passages_encoded"] == len(corpus)
    assert cost.counts["queries_encoded"] == len(qrels)
    # cache=False: the next refresh pays again (the model may have changed)
    ann_negatives(encoder, examples, corpus, n=5, depth=50, cost=cost)
    assert cost.counts["passages_encoded"] == 2 * len(corpus)


def test_ann_negatives_come_from_the_top_of_the_model_ranking(encoder, small):
    examples, corpus = small
    qrels = examples_qrels(examples)
    top = ann_negatives(encoder, examples, corpus, n=len(corpus), depth=10)
    for qid, pids in top.items():  # top 10 minus positives
        assert 10 - len(positives_of(qrels, qid)) <= len(pids) <= 10


def test_ann_negatives_with_given_query_vectors_encode_nothing(encoder, small):
    examples, corpus = small
    queries = {ex.qid: ex.query for ex in examples}
    q_emb = encoder.encode_queries(list(queries.values()), progress=False)
    index = ann_index(encoder, corpus)
    cost = CostMeter()
    given = ann_negatives(encoder, examples, corpus, n=5, depth=10, index=index,
                          query_vectors=q_emb, cost=cost)
    assert given == ann_negatives(encoder, examples, corpus, n=5, depth=10, index=index)
    assert "queries_encoded" not in cost.counts
    with pytest.raises(ValueError, match="distinct queries"):
        ann_negatives(encoder, examples, corpus, index=index, query_vectors=q_emb[:1])


def test_train_ance_refreshes_on_schedule_and_pays_for_them(encoder, small):
    examples, corpus = small
    n_queries = len(examples_qrels(examples))
    seen = []

    class Watch:  # which negatives each step used
        def on_step_end(self, trainer, step, logs):
            seen.append(trainer.make_batch.hard_negatives)

    fresh, audited = [], []  # what on_refresh and on_negatives were given

    def on_refresh(step, index, seconds):
        fresh.append((step, len(index), seconds))

    def on_negatives(step, negatives):
        audited.append((step, negatives))

    cost = CostMeter()
    trainer, refreshes = train_ance(encoder, examples, corpus, steps=5, refresh_every=2,
                                    batch_size=4, lr=1e-3, cost=cost,
                                    callbacks=[Watch()], device="cpu",
                                    on_refresh=on_refresh, on_negatives=on_negatives)
    assert [r["step"] for r in refreshes] == refresh_steps(5, 2) == [0, 2, 4]
    assert [r["passages_encoded"] for r in refreshes] == [len(corpus)] * 3
    assert cost.counts["index_refreshes"] == 3
    train_passages = 5 * 4 * 2  # steps * B * (1 + n_hard)
    assert cost.counts["passages_encoded"] == 3 * len(corpus) + train_passages
    assert cost.counts["queries_encoded"] == 3 * n_queries + 5 * 4
    assert cost.seconds >= sum(r["seconds"] for r in refreshes) > 0
    assert ([(step, size) for step, size, _ in fresh]
            == [(0, len(corpus)), (2, len(corpus)), (4, len(corpus))])
    assert 0 < fresh[0][2] < fresh[1][2] < fresh[2][2] <= cost.seconds
    # Watch runs after the refresher, so it sees the negatives of the *next* step: the
    # step-0 ones after step 1, step 2's refresh after steps 2-3,
    # step 4's after steps 4-5
    assert len(seen) == 5 and seen[1] is seen[2] and seen[3] is seen[4]
    assert seen[0] is not seen[1] and seen[2] is not seen[3]
    # on_negatives saw each refresh's negatives, the very ones training used
    assert [step for step, _ in audited] == [0, 2, 4]
    assert audited[0][1] is seen[0] and audited[1][1] is seen[2]
    losses = [h["loss"] for h in trainer.history]
    assert len(losses) == 5 and all(map(math.isfinite, losses))


def test_train_ance_resumes_with_the_negatives_it_had(encoder, small, tmp_path):
    """A crash after step 3, then a resume from the step-2 checkpoint, trains exactly as
    an uninterrupted run: the checkpoint keeps the last refresh's negatives."""
    import copy

    examples, corpus = small
    settings = dict(steps=6, refresh_every=2, batch_size=4, lr=1e-3, device="cpu",
                    checkpoint_every=2)
    straight, refreshes = train_ance(copy.deepcopy(encoder), examples, corpus,
                                     checkpoint_dir=str(tmp_path / "a"), **settings)

    class Crash:
        def on_step_end(self, trainer, step, logs):
            if step == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ance(copy.deepcopy(encoder), examples, corpus, callbacks=[Crash()],
                   checkpoint_dir=str(tmp_path / "b"), **settings)
    resumed, resumed_refreshes = train_ance(copy.deepcopy(encoder), examples, corpus,
                                            checkpoint_dir=str(tmp_path / "b"),
                                            **settings)
    assert [r["step"] for r in resumed_refreshes] == [r["step"] for r in refreshes]
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in straight.history], rel=1e-5)
    assert resumed.cost.counts["index_refreshes"] == 3
