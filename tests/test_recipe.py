"""Recipes are the one home of each method's settings;
fit() charges what batches cost."""
import dataclasses
import inspect

import pytest
import torch

from minidr.core.cost import CostMeter
from minidr.methods import adore, ance, bert_cat, dpr, ltre, star
from minidr.training.batches import Example, GroupedBatches
from minidr.training.recipe import COSINE_SIGMA, COSINE_TEMPERATURE, Budget
from minidr.training.trainer import TrainConfig, fit

METHODS = {"dpr": (dpr, dpr.train_dpr), "ance": (ance, ance.train_ance),
           "star": (star, star.train_star), "ltre": (ltre, ltre.train_ltre),
           "adore": (adore, adore.train_adore),
           "bert_cat": (bert_cat, bert_cat.train_cross_encoder)}


@pytest.mark.parametrize("name", METHODS)
def test_library_defaults_are_the_recipe(name):
    module, train = METHODS[name]
    recipe = module.RECIPE
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()
                if p.default not in (inspect.Parameter.empty, None)}  # None: derived
    shared = {k: v for k, v in recipe.settings().items() if k in defaults}
    assert shared and all(defaults[k] == v for k, v in shared.items()), (name, shared)


@pytest.mark.parametrize("name", METHODS)
def test_every_recipe_has_a_budget_per_profile(name):
    recipe = METHODS[name][0].RECIPE
    for profile in ("ci", "cpu", "gpu", "colab"):
        b = recipe.budget(profile)
        assert isinstance(b, Budget) and b.steps > 0 and b.batch_size > 0
    assert recipe.budget("ci").steps < recipe.budget("cpu").steps
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.lr = 1.0


def test_shared_constants_and_equal_budgets():
    assert COSINE_SIGMA == 1 / COSINE_TEMPERATURE == 20
    assert dpr.RECIPE.temperature == ance.RECIPE.temperature == COSINE_TEMPERATURE
    assert star.RECIPE.sigma == ltre.RECIPE.sigma == adore.RECIPE.sigma == COSINE_SIGMA
    # chapter 03 compares BERT_CAT and BERT_DOT at equal budget
    for p in ("ci", "cpu", "gpu"):
        assert bert_cat.RECIPE.budget(p) == dpr.RECIPE.budget(p)
        assert adore.RECIPE.budget(p) == ltre.RECIPE.budget(p)
    assert bert_cat.RECIPE.lr == dpr.RECIPE.lr


def test_hard_negatives_must_be_set_before_a_batch():
    ex = [Example("q1", "a", "p1"), Example("q2", "b", "p2")]
    batches = GroupedBatches(None, ex, {"p1": "x", "p2": "y", "p3": "z"}, 2, n_hard=1)
    with pytest.raises(ValueError, match="needs hard negatives"):
        batches.texts(0)
    batches.hard_negatives = {}  # set (e.g. by an ANCE refresh): topped up
    assert len(batches.texts(0)[1]) == 4


def test_fit_charges_each_batch_and_defaults_checkpoints(tmp_path):
    class Batch:
        def __init__(self, i):
            self.x = torch.full((3, 1), float(i))

        def counts(self):
            return {"queries_encoded": 3, "passages_encoded": 6}

    model = torch.nn.Linear(1, 1)
    cost = CostMeter()
    config = TrainConfig(steps=4, lr=0.1, device="cpu", checkpoint_dir=str(tmp_path))
    assert config.checkpoint_every == 50                # max(steps // 5, 50)
    trainer = fit(model, lambda m, b: (m(b.x).pow(2).mean(), {}), Batch, config, cost)
    assert trainer.step == 4 and (tmp_path / "checkpoint.pt").exists()
    assert (cost.counts["queries_encoded"] == 12
            and cost.counts["passages_encoded"] == 24)
    assert TrainConfig(steps=10).checkpoint_every == 0  # no folder, no checkpoints


def test_per_profile_falls_back_to_the_gpu_entry():
    from minidr.core.config import get_profile
    from minidr.training.recipe import Recipe
    table = {"ci": 1, "gpu": 3}
    assert Recipe.per_profile(table, "ci") == 1
    assert Recipe.per_profile(table, get_profile("ci")) == 1
    assert Recipe.per_profile(table, "colab") == 3
    with pytest.raises(KeyError, match="no 'gpu' entry"):
        Recipe.per_profile({"ci": 1}, "cpu")
