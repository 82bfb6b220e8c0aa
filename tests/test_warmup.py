"""minidr.warmup: chapter 04's DPR + BM25 model, trained once and then read from the cache."""
import json

import numpy as np

from minidr.config import get_profile
from minidr.cost import CostMeter
from minidr.dense import encode_corpus
from minidr.sparse import cache_root
from minidr.warmup import RECIPE, dpr_budget, warmup_encoder


def test_trained_once_then_cached_with_its_measured_cost(ci, tiny_bert):
    profile = get_profile("ci", backbone=str(tiny_bert))
    first, cost = warmup_encoder(ci, profile)
    assert cost["steps"] == dpr_budget(profile)[0] and cost["corpus_encode_seconds"] > 0
    assert (first.pooling, first.similarity) == (RECIPE["pooling"], RECIPE["similarity"])
    (cost_file,) = (cache_root() / "warmup").glob("*.cost.json")
    assert json.loads(cost_file.read_text()) == cost

    again, cost_again = warmup_encoder(ci, profile)          # from the cache: same weights, same cost
    assert again.fingerprint() == first.fingerprint() and cost_again == cost
    # its corpus embeddings were cached right after training, under the same fingerprint
    meter = CostMeter()
    cached = encode_corpus(again, ci.corpus, cost=meter)
    assert "passages_encoded" not in meter.counts                    # nothing was encoded again
    assert cached.shape == (len(ci.corpus), again.dim) and np.isfinite(cached).all()
