"""RocketQAv2: lists laid out as the two models need them, the dynamic listwise
loss by hand with gradients into both models, the control's loss by hand."""
import warnings

import pytest
import torch
import torch.nn.functional as F

from minidr.methods.rocketqav2 import (RECIPE, JointBatches, JointRanker,
                                       dynamic_listwise_loss, list_scores,
                                       listwise_loss, train_listwise)
from minidr.models.bi_encoder import BiEncoder
from minidr.models.cross_encoder import CrossEncoder
from minidr.training.batches import Example

CORPUS = {f"p{i}": f"passage number {i} about rivers and fish" for i in range(8)}
EXAMPLES = [Example("q1", "rivers", "p0"), Example("q2", "fish", "p1")]
NEGATIVES = {"q1": ["p2", "p3", "p4"], "q2": ["p5", "p6", "p7"]}


@pytest.fixture
def models(tiny_bert):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # the fresh head
        reranker = CrossEncoder.from_pretrained(tiny_bert, max_len=32)
    return BiEncoder.from_pretrained(tiny_bert, **RECIPE.model_settings), reranker


def test_batches_pair_each_query_with_its_own_list(models):
    retriever, reranker = models
    batch = JointBatches(retriever, reranker, EXAMPLES, CORPUS, 2, NEGATIVES, 3)(0)
    assert batch.group == 3 and batch.passages["input_ids"].shape[0] == 6
    queries = reranker.tokenizer.batch_decode(batch.pairs["input_ids"],
                                              skip_special_tokens=True)
    firsts = [q.split()[0] for q in queries]
    assert firsts[:3] == [firsts[0]] * 3 and firsts[3:] == [firsts[3]] * 3
    assert batch.counts() == {"queries_encoded": 2, "passages_encoded": 6,
                              "pairs_scored": 6}
    control = JointBatches(retriever, None, EXAMPLES, CORPUS, 2, NEGATIVES, 3)(0)
    assert control.pairs is None and control.counts()["pairs_scored"] == 0
    with pytest.raises(ValueError, match="list_size"):
        JointBatches(retriever, None, EXAMPLES, CORPUS, 2, NEGATIVES, 1)


def test_dynamic_loss_by_hand_and_both_models_learn(models):
    retriever, reranker = models
    joint = JointRanker(retriever, reranker)
    batch = JointBatches(retriever, reranker, EXAMPLES, CORPUS, 2, NEGATIVES, 4)(0)
    loss, stats = dynamic_listwise_loss(joint, batch, temperature=0.05)
    s_de = list_scores(retriever, batch).detach()                       # (2, 4)
    s_ce = reranker(**batch.pairs).detach().view(2, 4)
    p_de, p_ce = F.softmax(s_de / 0.05, -1), F.softmax(s_ce, -1)
    kl = (p_de * (p_de.log() - p_ce.log())).sum(-1).mean()
    by_hand = kl - p_ce[:, 0].log().mean()
    assert torch.isclose(loss.detach(), by_hand, atol=1e-5)
    assert stats["kl"] == pytest.approx(float(kl), abs=1e-5)
    loss.backward()
    for part in (retriever, reranker):
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in part.parameters())


def test_control_is_the_softmax_over_its_own_list(models):
    retriever, _ = models
    batch = JointBatches(retriever, None, EXAMPLES, CORPUS, 2, NEGATIVES, 4)(0)
    loss, _ = listwise_loss(retriever, batch, temperature=0.05)
    q = retriever.encode_query(**batch.queries).detach()
    p = retriever.encode_passage(**batch.passages).detach()
    s = torch.stack([q[0] @ p[:4].T, q[1] @ p[4:].T])                   # by hand
    assert torch.isclose(loss.detach(), F.cross_entropy(s / 0.05,
                                                        torch.zeros(2).long()),
                         atol=1e-5)


def test_train_listwise_charges_pairs_only_when_joint(models):
    retriever, reranker = models
    joint = train_listwise(retriever, EXAMPLES, CORPUS, NEGATIVES, 2, 2,
                           reranker=reranker)
    alone = train_listwise(retriever, EXAMPLES, CORPUS, NEGATIVES, 2, 2)
    assert joint.cost.counts["pairs_scored"] == 2 * 2 * RECIPE.list_size
    assert alone.cost.counts.get("pairs_scored", 0) == 0
    assert {"kl", "reranker_ce", "top1_agreement"} <= set(joint.history[-1])
