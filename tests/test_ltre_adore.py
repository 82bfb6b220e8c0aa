"""LTRe and ADORE: per-step retrieval is exact top-n, positives never negatives,
delta-RR weights by hand, the passage side stays fixed, and
DenseIndex.reconstruct_all."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import minidr.training.fixed_index
from minidr.methods.adore import train_adore
from minidr.core.cost import CostMeter
from minidr.training.batches import Example, examples_qrels
from minidr.retrieval.index import DenseIndex
from minidr.training.losses import delta_rr, ranknet, reciprocal_rank
from minidr.methods.ltre import train_ltre
from minidr.training.batches import QueryBatches
from minidr.training.fixed_index import fixed_index_loss
from minidr.models.bi_encoder import BiEncoder
from minidr.training.negatives import dense_negative_rows

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` random unit vectors of dimension ``d``: cosine-model embeddings."""
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)                 # (n, d)


class LookupQueries(torch.nn.Module):
    """A stand-in query encoder:
    query text ``"3"`` -> learnable unit vector number 3."""

    def __init__(self, init: np.ndarray):
        super().__init__()
        self.emb = torch.nn.Parameter(torch.tensor(init))               # (Q, H)

    def tokenize_queries(self, texts):
        return {"idx": torch.tensor([int(t) for t in texts])}           # (B,)

    def encode_query(self, idx):
        return F.normalize(self.emb[idx.to(self.emb.device)], dim=-1)   # (B, H)

    def encode_queries(self, texts, batch_size=256, progress=False):
        with torch.no_grad():
            return self.encode_query(**self.tokenize_queries(texts)).numpy()


def toy_setup(n_pass=50, n_q=6, d=8, positives=2, seed=0):
    """A flat index of unit vectors;
    each query's positives are among its 5 nearest passages."""
    docs, queries = unit_rows(n_pass, d, seed), unit_rows(n_q, d, seed + 1)
    ids = [f"p{i}" for i in range(n_pass)]
    near = np.argsort(-(queries @ docs.T), axis=1)[:, :5]    # (Q, 5)
    examples = [Example(str(q), str(q), ids[near[q, 2 * j]]) for q in range(n_q)
                for j in range(positives)]                   # ranks 1, 3, ...
    return docs, queries, ids, examples


def brute_force(queries, docs, ids, qrels, n):
    """Rows and 1-based full-ranking ranks of each query's top-n non-positives,
    by numpy argsort."""
    order = np.argsort(-(queries @ docs.T), axis=1, kind="stable")  # (Q, N), best first
    rows, ranks = [], []
    for q, ranked in enumerate(order):
        kept = [(rank, r) for rank, r in enumerate(ranked, start=1)
                if ids[r] not in qrels.get(str(q), {})][:n]
        ranks.append([rank for rank, _ in kept])
        rows.append([r for _, r in kept])
    return np.array(rows), np.array(ranks)                               # (Q, n) each


# -- (a) the per-step retrieval is the exact top-n -------------------------------------

def test_per_step_retrieval_equals_brute_force_top_n():
    docs, queries, ids, examples = toy_setup()
    qrels = examples_qrels(examples)
    index = DenseIndex.build(docs, ids)
    rows, ranks = dense_negative_rows(index, [str(q) for q in range(6)], queries, qrels,
                                      n=7)
    want_rows, want_ranks = brute_force(queries, docs, ids, qrels, n=7)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(ranks, want_ranks)
    assert (ranks[:, 0] <= 2).all()  # the positive at rank 1 pushes the rest down


def test_ltre_loss_is_ranknet_over_the_brute_force_negatives():
    docs, queries, ids, examples = toy_setup(positives=1)
    qrels, index = examples_qrels(examples), DenseIndex.build(docs, ids)
    encoder = LookupQueries(queries)
    batch = QueryBatches(encoder, examples, ids, batch_size=6)(0)
    loss, stats = fixed_index_loss(encoder, batch, index, docs, qrels, n=7, sigma=20.0)

    qids = [int(q) for q in batch.qids]
    q = queries[qids]                                          # (6, 8) in batch order
    neg_rows, _ = brute_force(queries, docs, ids, qrels, n=7)
    s_pos = np.sum(q * docs[batch.pos_rows], axis=1)           # (6,)
    s_neg = np.einsum("bh,bnh->bn", q, docs[neg_rows[qids]])   # (6, 7)
    expected = np.mean(np.log1p(np.exp(-20.0 * (s_pos[:, None] - s_neg))))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    pos_rank = 1 + (s_neg > s_pos[:, None]).sum(1)             # (6,): all are 1 here
    assert stats["train_mrr10"] == pytest.approx(np.mean(1 / pos_rank))
    assert stats["retrieval_seconds"] >= 0 and "weight_mean" not in stats


def test_query_batches_are_reproducible_and_check_the_index():
    docs, queries, ids, examples = toy_setup()
    encoder = LookupQueries(queries)
    a = QueryBatches(encoder, examples, ids, 4, seed=1)
    b = QueryBatches(encoder, examples, ids, 4, seed=1)
    assert a(3).qids == b(3).qids and np.array_equal(a(3).pos_rows, b(3).pos_rows)
    for i in range(3):  # rows are the positives'
        batch = a(i)
        assert ([ids[r] for r in batch.pos_rows]
                == [ex.positive for ex in a.order.select(i)])
    with pytest.raises(ValueError, match="not in the index"):
        QueryBatches(encoder, examples + [Example("0", "0", "nowhere")], ids)
    with pytest.raises(ValueError, match="doc_emb"):
        train_ltre(encoder, examples, DenseIndex.build(docs, ids), docs[:10], steps=1)


# -- (b) ADORE's dynamic negatives are never positives ---------------------------------

def test_adore_negatives_never_contain_positives(monkeypatch):
    # 30 passages, 3 positives per query near the top, n = 28 > 27 non-positives:
    # empty slots too
    docs, queries, ids, examples = toy_setup(n_pass=30, positives=3)
    seen = []

    def spy(index, qids, q_emb, qrels, n):
        rows, ranks = dense_negative_rows(index, qids, q_emb, qrels, n)
        seen.append((qids, rows))
        return rows, ranks

    monkeypatch.setattr(minidr.training.fixed_index, "dense_negative_rows", spy)
    trainer = train_adore(LookupQueries(queries), examples, DenseIndex.build(docs, ids),
                          docs, steps=4, batch_size=5, lr=1e-2, n=28, device="cpu")
    qrels = examples_qrels(examples)
    assert len(seen) == 4
    for qids, rows in seen:
        for qid, row in zip(qids, rows):
            negatives = {ids[r] for r in row if r >= 0}
            assert not negatives & set(qrels[qid]) and len(negatives) == 27
            assert (row == -1).sum() == 1  # the one empty slot
    assert all(math.isfinite(h["loss"]) for h in trainer.history)


# -- (c) delta RR and the weighted RankNet, by hand ------------------------------------

def test_reciprocal_rank_and_delta_rr_by_hand():
    assert (reciprocal_rank(torch.tensor([1, 2, 10, 11, 0, -1])).tolist()
            == pytest.approx([1.0, 0.5, 0.1, 0.0, 0.0, 0.0]))
    assert reciprocal_rank(torch.tensor([3]), cutoff=2).tolist() == [0.0]
    pos = torch.tensor([1, 3, 12, -1])
    neg = torch.tensor([[2, 20],
                        [1, 4],
                        [2, 13],
                        [5, -1]])
    want = [[1 - 1 / 2, 1.0],  # positive first: swapping loses 1/2, or all of it
            [1 - 1 / 3, 1 / 3 - 1 / 4],
            [1 / 2, 0.0],      # both beyond the cutoff: swapping changes nothing
            [1 / 5, 0.0]]
    torch.testing.assert_close(delta_rr(pos, neg), torch.tensor(want))
    torch.testing.assert_close(delta_rr(pos[:1], neg[:1], cutoff=1),
                               torch.tensor([[1.0, 1.0]]))
    with pytest.raises(ValueError):
        delta_rr(pos, neg[:2])


def test_weighted_ranknet_by_hand():
    pos = torch.tensor([1.0, 0.0])
    neg = torch.tensor([[0.0, 2.0],
                        [-1.0, 0.5]])
    w = torch.tensor([[0.5, 1.0],
                      [0.0, 2.0]])
    loss, stats = ranknet(pos, neg, weights=w)
    pair = [[math.log1p(math.exp(-1.0)), math.log1p(math.exp(1.0))],
            [math.log1p(math.exp(-1.0)), math.log1p(math.exp(0.5))]]
    expected = (0.5 * pair[0][0] + 1.0 * pair[0][1] + 0.0
                + 2.0 * pair[1][1]) / 4  # / #pairs
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert (stats["weight_mean"] == pytest.approx(0.875)
            and stats["pair_accuracy"] == 0.5)

    # a mask drops pairs from the loss, the pair count and the stats
    mask = torch.tensor([[True, False], [True, True]])
    loss, stats = ranknet(pos, neg, weights=w, mask=mask)
    assert loss.item() == pytest.approx((0.5 * pair[0][0] + 2.0 * pair[1][1]) / 3,
                                        rel=1e-6)
    assert (stats["pair_accuracy"] == pytest.approx(2 / 3)
            and stats["neg_score"] == pytest.approx(-0.5 / 3))

    # weights of 1 (and no mask) is plain RankNet; the weights are constants
    plain, plain_stats = ranknet(pos, neg)
    ones, _ = ranknet(pos, neg, weights=torch.ones(2, 2),
                      mask=torch.ones(2, 2, dtype=torch.bool))
    assert (ones.item() == pytest.approx(plain.item(), rel=1e-6)
            and set(plain_stats) == {"pair_accuracy", "pos_score", "neg_score"})
    w = torch.ones(2, 2, requires_grad=True)
    scores = pos.clone().requires_grad_()
    ranknet(scores, neg, weights=w)[0].backward()
    assert w.grad is None and scores.grad is not None
    with pytest.raises(ValueError, match="weights"):
        ranknet(pos, neg, weights=torch.ones(2, 3))


# -- (d) a few steps with a real (tiny) BiEncoder: passages fixed, loss finite ---------

CORPUS_IDS = [str(i) for i in range(40)]
EXAMPLES = [Example(str(q), f"what about topic {q % 7} number {q}", str(q))
            for q in range(12)]


@pytest.mark.parametrize("kind", ["flat", "ivfpq"])
def test_ltre_steps_keep_doc_emb_fixed(tiny_bert, kind):
    torch.manual_seed(0)
    encoder = BiEncoder.from_pretrained(tiny_bert, pooling="mean", similarity="cos")
    index = DenseIndex.build(unit_rows(40, 32, seed=3), CORPUS_IDS, kind=kind, nlist=2,
                             m=8, nbits=4)
    doc_emb = index.reconstruct_all()  # what the index sees
    before = doc_emb.copy()
    cost = CostMeter()
    trainer = train_ltre(encoder, EXAMPLES, index, doc_emb, steps=3, batch_size=4,
                         lr=1e-3, n=5, cost=cost, device="cpu")
    assert (np.array_equal(doc_emb, before)
            and np.array_equal(index.reconstruct_all(), before))
    assert (len(trainer.history) == 3
            and all(math.isfinite(h["loss"]) for h in trainer.history))
    assert all(h["retrieval_seconds"] >= 0 and 0 <= h["train_mrr10"] <= 1
               for h in trainer.history)
    assert cost.counts["queries_encoded"] == 12 and cost.counts["retrievals"] == 12


def test_adore_steps_train_only_the_query_tower(tiny_bert):
    torch.manual_seed(0)
    encoder = BiEncoder.from_pretrained(tiny_bert, shared=False, pooling="mean",
                                        similarity="cos")
    passage_before = {k: v.clone()
                      for k, v in encoder.passage_encoder.state_dict().items()}
    query_before = {k: v.clone() for k, v in encoder.query_encoder.state_dict().items()}
    doc_emb = unit_rows(40, 32, seed=4)
    before = doc_emb.copy()
    trainer = train_adore(encoder, EXAMPLES, DenseIndex.build(doc_emb, CORPUS_IDS),
                          doc_emb, steps=3, batch_size=4, lr=1e-3, n=10, cutoff=10,
                          device="cpu")
    assert np.array_equal(doc_emb, before)
    assert all(math.isfinite(h["loss"]) and "weight_mean" in h for h in trainer.history)
    passage_after = encoder.passage_encoder.state_dict()
    assert all(torch.equal(passage_before[k], passage_after[k]) for k in passage_before)
    query_after = encoder.query_encoder.state_dict()
    assert any(not torch.equal(query_before[k], query_after[k]) for k in query_before)


@pytest.mark.parametrize("train", [train_ltre, train_adore])
def test_ltre_and_adore_learn_on_a_toy_problem(train):
    # 20 queries, each with one random positive among 60 passages:
    # training must pull them up.
    rng = np.random.default_rng(0)
    docs, ids = unit_rows(60, 8, seed=5), [f"p{i}" for i in range(60)]
    examples = [Example(str(q), str(q), ids[int(rng.integers(60))]) for q in range(20)]
    trainer = train(LookupQueries(unit_rows(20, 8, seed=6)), examples,
                    DenseIndex.build(docs, ids), docs, steps=60, batch_size=10, lr=0.05,
                    n=10, device="cpu")
    mrr = [h["train_mrr10"] for h in trainer.history]
    assert np.mean(mrr[-10:]) > np.mean(mrr[:10]) + 0.3, (mrr[:10], mrr[-10:])


# -- (e) DenseIndex.reconstruct_all ----------------------------------------------------

def test_reconstruct_all_flat_is_the_input():
    x = np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32)
    out = DenseIndex.build(x, [str(i) for i in range(100)]).reconstruct_all()
    assert out.dtype == np.float32 and np.array_equal(out, x)


def test_reconstruct_all_ivfpq_is_what_the_index_scores():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1000, 32)).astype(np.float32)
    index = DenseIndex.build(x, [str(i) for i in range(1000)], kind="ivfpq", nlist=8,
                             m=16, nbits=6)
    size = index.memory_bytes
    out = index.reconstruct_all()
    assert out.shape == (1000, 32) and out.dtype == np.float32
    error = np.linalg.norm(out - x) / np.linalg.norm(x)
    assert 0 < error < 0.25, error  # lossy, but close
    # the index's scores are exactly inner products with the reconstructions
    queries = rng.standard_normal((5, 32)).astype(np.float32)
    scores, rows = index.search_rows(queries, 10)
    np.testing.assert_allclose(scores,
                               np.take_along_axis(queries @ out.T, rows, axis=1),
                               atol=1e-4)
    # no lasting side effect: same size, same answer again
    assert index.memory_bytes == size and np.array_equal(index.reconstruct_all(), out)


def test_static_control_keeps_the_step_zero_negatives():
    docs, queries, ids, examples = toy_setup()
    index, qrels = DenseIndex.build(docs, ids), examples_qrels(examples)
    encoder = LookupQueries(queries)
    static = minidr.training.fixed_index.static_negative_rows(encoder, examples, index,
                                                              n=7)
    want_rows, want_ranks = brute_force(queries, docs, ids, qrels, 7)
    for q in range(len(queries)):                   # retrieved once, exactly
        assert np.array_equal(static[str(q)][0], want_rows[q])
        assert np.array_equal(static[str(q)][1], want_ranks[q])
    with torch.no_grad():                           # the query encoder moves ...
        encoder.emb.mul_(-1)
    batch = QueryBatches(encoder, examples, ids, batch_size=4, retrieves=False)(0)
    live, _ = fixed_index_loss(encoder, batch, index, docs, qrels, n=7, sigma=20.0)
    kept, _ = fixed_index_loss(encoder, batch, index, docs, qrels, n=7, sigma=20.0,
                               static=static)
    q = encoder.encode_query(**batch.queries).detach().numpy()           # (B, H)
    rows = np.stack([static[qid][0] for qid in batch.qids])              # (B, n)
    s_pos = (q * docs[batch.pos_rows]).sum(-1)                           # (B,)
    s_neg = np.einsum("bh,bnh->bn", q, docs[rows])                       # (B, n)
    by_hand, _ = ranknet(torch.tensor(s_pos), torch.tensor(s_neg), sigma=20.0)
    assert kept.item() == pytest.approx(by_hand.item(), rel=1e-5)   # ... negatives not
    assert kept.item() != pytest.approx(live.item(), rel=1e-3)
    assert batch.counts() == {"queries_encoded": 4, "retrievals": 0}


def test_train_ltre_static_retrieves_once_per_query():
    docs, queries, ids, examples = toy_setup()
    cost = CostMeter()
    train_ltre(LookupQueries(queries), examples, DenseIndex.build(docs, ids), docs,
               steps=4, batch_size=4, lr=0.05, n=7, static=True, cost=cost,
               device="cpu")
    n_queries = len({e.qid for e in examples})
    assert cost.counts["retrievals"] == n_queries       # before training, never again
    assert cost.counts["queries_encoded"] == n_queries + 4 * 4
