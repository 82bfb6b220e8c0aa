"""SPLADE's representation by hand vs the code; quantization; the Lucene impact
index returns the quantized dot product."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from minidr.models.splade import Splade, splade_pool
from minidr.retrieval.impact import ImpactIndex, quantize


def test_splade_pool_by_hand():
    logits = torch.tensor([[[0.5, -1.0, 2.0],             # text 1, position 1
                            [1.5, 0.0, -3.0],             # position 2
                            [9.0, 9.0, 9.0]]])            # padding: ignored
    got = splade_pool(logits, torch.tensor([[1, 1, 0]]))
    expected = [max(np.log(1.5), np.log(2.5)), 0.0, np.log(3.0)]
    assert torch.allclose(got, torch.tensor([expected], dtype=torch.float32))


def test_encode_is_the_pooled_mlm_head_in_input_order(tiny_bert):
    splade = Splade.from_pretrained(tiny_bert, max_length=16)
    texts = ["a much longer text about rivers and fish", "short one"]
    vectors = splade.encode(texts, batch_size=2, progress=False)
    assert vectors.shape == (2, len(splade.vocabulary))
    splade.eval()
    for i, text in enumerate(texts):                      # each text alone, no padding
        tokens = splade.tokenizer(text, return_tensors="pt", truncation=True,
                                  max_length=16)
        with torch.no_grad():
            logits = splade.mlm(**tokens).logits[0]                   # (L, V)
        by_hand = torch.log1p(torch.relu(logits)).max(dim=0).values    # (V,)
        assert np.allclose(vectors[i].toarray()[0], by_hand.numpy(), atol=1e-5)
    top = splade.terms(vectors[0], top=3)
    assert len(top) == 3 and list(top.values()) == sorted(top.values(), reverse=True)


def test_quantize_round_trips_within_half_a_step():
    rng = np.random.default_rng(0)
    dense = rng.random((5, 20)) * (rng.random((5, 20)) < 0.3) * 3
    q = quantize(sp.csr_matrix(dense), scale=100)
    assert q.dtype == np.int32 and (q.data != 0).all()
    assert np.abs(q.toarray() / 100 - dense).max() <= 0.005 + 1e-12
    with pytest.raises(ValueError, match="scale"):
        quantize(sp.csr_matrix(dense), scale=0)


def test_impact_search_is_the_quantized_dot_product(tmp_path):
    vocabulary = ["river", "fish", "tax", "##ing"]
    docs = sp.csr_matrix(np.array([[1.2, 0.5, 0.0, 0.0],
                                   [0.0, 2.0, 0.3, 0.0],
                                   [0.0, 0.0, 1.7, 0.9]]))
    pids = ["d1", "d2", "d3"]
    index = ImpactIndex(docs, pids, vocabulary, key="toy", cache_dir=tmp_path)
    queries = sp.csr_matrix(np.array([[1.0, 0.25, 0.0, 0.0],
                                      [0.0, 0.0, 0.0, 0.5],
                                      [0.0, 0.0, 0.0, 0.0]]))
    run = index.search(queries, ["q1", "q2", "q3"], k=10)
    expected = (quantize(queries) @ quantize(docs).T).toarray() / 100 ** 2
    for i, q in enumerate(["q1", "q2"]):
        want = {p: expected[i, j] for j, p in enumerate(pids) if expected[i, j] > 0}
        assert run[q].keys() == want.keys()
        for p, s in want.items():
            assert run[q][p] == pytest.approx(s, rel=1e-6)
    assert run["q3"] == {}                               # nothing to match
    assert index.size_bytes > 0 and index.build_seconds >= 0
    stamp = (index.index_dir / "minidr-complete.txt").stat().st_mtime_ns
    again = ImpactIndex(docs, pids, vocabulary, key="toy", cache_dir=tmp_path)
    assert (again.index_dir / "minidr-complete.txt").stat().st_mtime_ns == stamp
    assert again.build_seconds == index.build_seconds        # the cost, kept
    with pytest.raises(ValueError, match="2 passages"):
        ImpactIndex(docs, pids[:2], vocabulary, key="bad", cache_dir=tmp_path)


def test_impact_search_takes_queries_of_more_than_1024_terms(tmp_path):
    rng = np.random.default_rng(0)
    vocabulary = [f"t{i}" for i in range(2000)]
    docs = sp.csr_matrix(rng.random((6, 2000)) * (rng.random((6, 2000)) < 0.8))
    index = ImpactIndex(docs, [f"d{i}" for i in range(6)], vocabulary, key="wide",
                        cache_dir=tmp_path)
    queries = sp.csr_matrix(rng.random((1, 2000)) + 0.01)         # 2,000 terms
    run = index.search(queries, ["q"], k=6)
    expected = (quantize(queries) @ quantize(docs).T).toarray()[0] / 100 ** 2
    assert len(run["q"]) == 6
    for j in range(6):
        assert run["q"][f"d{j}"] == pytest.approx(expected[j], rel=1e-6)
