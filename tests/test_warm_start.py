"""minidr.substrate.warm_start: chapter 04's DPR + BM25 model, trained once,
then cached."""
import dataclasses
import json

import numpy as np

from minidr.core.config import get_profile
from minidr.core.cost import CostMeter
from minidr.core.paths import cache_root
from minidr.methods.dpr import RECIPE
from minidr.retrieval.dense import encode_corpus
from minidr.substrate.warm_start import warm_start


def test_trained_once_then_cached_with_its_measured_cost(ci, tiny_bert):
    profile = get_profile("ci", backbone=str(tiny_bert))
    first, cost = warm_start(ci, profile)
    assert (cost["steps"] == RECIPE.budget(profile).steps
            and cost["corpus_encode_seconds"] > 0)
    assert (first.pooling, first.similarity) == (RECIPE.pooling, RECIPE.similarity)
    (cost_file,) = (cache_root() / "warm_start").glob("*.cost.json")
    assert json.loads(cost_file.read_text()) == cost

    # from the cache: same weights, same cost
    again, cost_again = warm_start(ci, profile)
    assert again.fingerprint() == first.fingerprint() and cost_again == cost
    # its corpus embeddings were cached right after training, under the same fingerprint
    meter = CostMeter()
    cached = encode_corpus(again, ci.corpus, cost=meter)
    assert "passages_encoded" not in meter.counts  # nothing was encoded again
    assert cached.shape == (len(ci.corpus), again.dim) and np.isfinite(cached).all()


def test_a_changed_recipe_is_a_new_cache_entry(ci, tiny_bert):
    profile = get_profile("ci", backbone=str(tiny_bert))
    warm_start(ci, profile)
    other = dataclasses.replace(RECIPE, lr=RECIPE.lr / 2)
    warm_start(ci, profile, recipe=other)
    assert len(list((cache_root() / "warm_start").glob("*.cost.json"))) == 2
