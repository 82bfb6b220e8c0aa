"""Gradient caching: the same loss and gradients as one pass over the whole batch."""
import pytest
import torch

from minidr.training.batches import GroupedBatch
from minidr.training.grad_cache import RandomState, grad_cached
from minidr.training.losses import in_batch_targets, info_nce
from minidr.training.trainer import TrainConfig, fit

QUERIES = ["what is a dense retriever", "who wrote bm25", "how do rivers form",
           "price of a passport", "when is tax day"]
PASSAGES = [f"passage {i} about {w}" for i, w in
            enumerate("retrievers paris bm25 fish rivers tax passport rain april "
                      "colours".split())]


def in_batch(q, p, batch):
    """DPR's in-batch softmax on embeddings (temperature 0.05)."""
    return info_nce(q @ p.T, in_batch_targets(len(q), batch.group), 0.05)


def make_batch(encoder):
    return GroupedBatch(encoder.tokenize_queries(QUERIES),
                        encoder.tokenize_passages(PASSAGES), 2)


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


def test_chunks_give_the_whole_batch_gradients(encoder):
    encoder.eval()                          # no dropout: one pass is the reference
    batch = make_batch(encoder)
    q = encoder.encode_query(**batch.queries)
    p = encoder.encode_passage(**batch.passages)
    reference, _ = in_batch(q, p, batch)
    reference.backward()
    expected = grads(encoder)
    for chunk in (1, 3, 100):
        encoder.zero_grad()
        loss, _ = grad_cached(in_batch, chunk)(encoder, batch)
        assert torch.isclose(loss, reference.detach(), rtol=1e-5), chunk
        got = grads(encoder)
        assert got.keys() == expected.keys()
        for name, g in expected.items():
            assert torch.allclose(got[name], g, rtol=1e-4, atol=1e-7), (chunk, name)
    with pytest.raises(ValueError, match="chunk_size"):
        grad_cached(in_batch, 0)


def test_the_second_pass_replays_the_first_passes_dropout(encoder):
    encoder.train()                                   # dropout on
    seen = []
    encode = encoder.encode_passage

    def recording(**tokens):
        out = encode(**tokens)
        seen.append(out.detach().clone())
        return out

    encoder.encode_passage = recording
    try:
        grad_cached(in_batch, 4)(encoder, make_batch(encoder))
    finally:
        del encoder.encode_passage
    first, second = seen[:3], seen[3:]                # 10 passages: chunks 4, 4, 2
    assert len(second) == 3
    assert all(torch.allclose(a, b) for a, b in zip(first, second))


def test_random_state_replays_then_moves_on():
    x = torch.ones(1000)
    state = RandomState()
    a = torch.nn.functional.dropout(x, 0.5)
    with state:
        b = torch.nn.functional.dropout(x, 0.5)
    c = torch.nn.functional.dropout(x, 0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_fit_trains_with_a_grad_cached_loss(encoder):
    batch = make_batch(encoder)
    trainer = fit(encoder, grad_cached(in_batch, 3), lambda i: batch,
                  TrainConfig(steps=15, lr=3e-3))
    losses = [h["loss"] for h in trainer.history]
    assert losses[-1] < losses[0]
