"""minidr.dpr: examples, batches (layout, determinism, no positive as a negative),
loss, training."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from minidr.methods.dpr import dpr_loss, train_dpr
from minidr.training.batches import (PairBatch, Example, GroupedBatches, examples_qrels,
                                     training_examples)
from minidr.models.bi_encoder import BiEncoder
from minidr.training.negatives import bm25_negatives

CORPUS = {str(i): f"passage number {i} about topic {i % 7} and words {i * 3}"
          for i in range(40)}
EXAMPLES = [Example(str(q), f"what about topic {q % 7} number {q}", str(q))
            for q in range(12)]


@pytest.fixture
def encoder(tiny_bert):
    torch.manual_seed(0)
    return BiEncoder.from_pretrained(tiny_bert, pooling="mean", similarity="dot")


def test_training_examples_from_judgments_and_teacher(ci):
    judged = training_examples(ci)
    assert len(judged) >= len(ci.splits["train"])  # one per judged positive
    assert all(ex.positive in ci.corpus and not ex.teacher for ex in judged)
    qid = next(iter(ci.unlabeled_queries))
    labels = pd.DataFrame({"qid": [qid, "not-a-query"],
                           "pid": [next(iter(ci.corpus)), "1"]})
    both = training_examples(ci, labels)
    assert len(both) == len(judged) + 1 and both[-1].teacher and both[-1].qid == qid


def test_batches_layout_and_determinism(encoder):
    hard = {ex.qid: [p for p in CORPUS if p != ex.positive][:5] for ex in EXAMPLES}
    batches = GroupedBatches(encoder, EXAMPLES, CORPUS, batch_size=4,
                             hard_negatives=hard, n_hard=2, seed=3)
    b = batches(5)
    assert b.group == 3
    assert (b.queries["input_ids"].shape[0] == 4
            and b.passages["input_ids"].shape[0] == 12)
    again = GroupedBatches(encoder, EXAMPLES, CORPUS, batch_size=4,
                           hard_negatives=hard, n_hard=2, seed=3)(5)
    assert torch.equal(b.passages["input_ids"], again.passages["input_ids"])
    # one epoch visits every example exactly once
    seen = [ex.qid for i in range(3) for ex in batches.select(i)]
    assert sorted(seen) == sorted(ex.qid for ex in EXAMPLES)


def test_hard_negatives_never_the_positive(encoder):
    # a pool that is mostly the positive itself, and too small:
    # the filler must avoid it too
    hard = {ex.qid: [ex.positive, ex.positive] for ex in EXAMPLES}
    batches = GroupedBatches(encoder, EXAMPLES, CORPUS, batch_size=4,
                             hard_negatives=hard, n_hard=3)
    tok = encoder.tokenizer
    for i in range(6):
        chosen = batches.select(i)
        texts = tok.batch_decode(batches(i).passages["input_ids"],
                                 skip_special_tokens=True)
        for j, ex in enumerate(chosen):
            group = texts[j * 4:(j + 1) * 4]
            assert group[0] == CORPUS[ex.positive].lower()
            assert CORPUS[ex.positive].lower() not in group[1:]


def test_bm25_style_negatives_exclude_positives():
    run = {ex.qid: {p: float(-int(p)) for p in CORPUS} for ex in EXAMPLES}
    negs = bm25_negatives(run, examples_qrels(EXAMPLES), n=5, depth=10)
    assert all(ex.positive not in negs[ex.qid] for ex in EXAMPLES)


def test_dpr_loss_is_the_in_batch_softmax(encoder):
    batch = GroupedBatches(encoder, EXAMPLES, CORPUS, batch_size=4)(0)
    loss, stats = dpr_loss(encoder, batch)
    q = encoder.encode_query(**batch.queries)
    p = encoder.encode_passage(**batch.passages)
    scores = q @ p.T                                       # (4, 4)
    expected = sum(-scores[i, i] + torch.logsumexp(scores[i], 0) for i in range(4)) / 4
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-5)
    assert {"accuracy", "q_emb_std", "p_emb_std"} <= set(stats)


def test_train_dpr_learns_and_counts(encoder):
    from minidr import CostMeter

    cost = CostMeter()
    trainer = train_dpr(encoder, EXAMPLES, CORPUS, steps=30, batch_size=6, lr=1e-3,
                        cost=cost)
    losses = [h["loss"] for h in trainer.history]
    assert len(losses) == 30 and all(map(math.isfinite, losses))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert cost.counts["steps"] == 30 and cost.counts["queries_encoded"] == 30 * 6


def test_cross_encoder_trains_on_the_same_groups_and_reranks(tiny_bert):
    from minidr.methods.bert_cat import cross_encoder_loss, train_cross_encoder
    from minidr.models.cross_encoder import CrossEncoder
    from minidr.retrieval.rerank import rerank

    torch.manual_seed(0)
    ce = CrossEncoder.from_pretrained(tiny_bert)
    hard = {ex.qid: [p for p in CORPUS if p != ex.positive][:6] for ex in EXAMPLES}
    with pytest.raises(ValueError, match="negatives"):
        train_cross_encoder(ce, EXAMPLES, CORPUS, {}, steps=1)
    trainer = train_cross_encoder(ce, EXAMPLES, CORPUS, hard, steps=40, batch_size=4,
                                  n_neg=2, lr=5e-3)
    losses = [h["loss"] for h in trainer.history]
    assert all(map(math.isfinite, losses)) and sum(losses[-5:]) < sum(losses[:5])
    # the loss is a softmax over each group with the positive first
    ce.eval()  # no dropout: the two forward passes below must agree
    pairs = ce.tokenize(["q a", "q a", "q b", "q b"], ["p1", "n1", "p2", "n2"])
    loss, _ = cross_encoder_loss(ce, PairBatch(pairs, 2))
    s = ce(**pairs).view(2, 2)
    assert math.isclose(
        loss.item(),
        torch.nn.functional.cross_entropy(s, torch.zeros(2, dtype=torch.long)).item(),
        rel_tol=1e-5)
    run = {"0": {p: 1.0 for p in list(CORPUS)[:5]}}
    reranked = rerank(ce, run, {"0": "topic 0"}, CORPUS, depth=3)
    assert len(reranked["0"]) == 3 and set(reranked["0"]) <= set(run["0"])
