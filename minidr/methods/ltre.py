"""LTRe: train the query encoder against a fixed passage index,
retrieving at every step.

Learning To Retrieve (Zhan et al., 2020) splits dense retrieval training in two.
A trained document encoder embeds the corpus **once**; those embeddings and
their index (exact, or compressed with PQ) never change again. Then, at every
step, the *current* query encoder embeds the batch's queries, searches the
full index, and a pairwise loss pushes each query's positive above the
irrelevant passages it actually retrieved: no sampling, the negatives are the
model's present mistakes, and a step costs one query forward pass plus one search.
The loop itself is :func:`minidr.training.fixed_index.train_query_encoder`,
shared with ADORE (:mod:`minidr.methods.adore`), which weights the pairs::

    doc_emb = encode_corpus(warm, mm.corpus)  # (n, H), fixed
    index = DenseIndex.build(doc_emb, list(mm.corpus), kind="ivfpq")
    trainer = train_ltre(warm, examples, index, index.reconstruct_all(), steps=2000)
    runs = search_splits(warm, index, mm)     # the same fixed index

Settings, from the official code of the same authors (``jingtaozhan/DRhard``,
``adore/train.py``; its README presents the LTRe paper as the previous version
of ADORE): ``n = 200`` passages retrieved per query (``--neg_topk 200``); a
RankNet loss over every (relevant, retrieved irrelevant) pair, averaged over
pairs then queries; AdamW, batch 32. Their lr is ``5e-6`` over thousands of
steps; our budgets are hundreds of steps from a small distilled student, and
:data:`RECIPE` uses ``5e-4``, chosen by the learning-rate sweep of chapter 06
(at ``2e-5`` the query encoder hardly moves). Their scores are raw dot
products of unnormalised RoBERTa
embeddings with ``sigma = 1``; our models use cosine scores in [-1, 1], so
``sigma = 1 / 0.05 = 20`` (:data:`minidr.training.recipe.COSINE_SIGMA`).

Reference:
    Zhan et al. (2020), Learning To Retrieve: How to Train a Dense Retrieval
    Model Effectively and Efficiently, arXiv 2010.10469.
"""
from __future__ import annotations

import numpy as np

from ..core.cost import CostMeter
from ..training.batches import Example
from ..training.fixed_index import FixedIndexRecipe, train_query_encoder
from ..training.trainer import Trainer

__all__ = ["LTReRecipe", "RECIPE", "train_ltre"]


class LTReRecipe(FixedIndexRecipe):
    """LTRe's settings and budgets (chapter 06):
    the fixed-index defaults, unweighted pairs."""


RECIPE = LTReRecipe()


def train_ltre(encoder, examples: list[Example], index, doc_emb: np.ndarray, steps: int,
               batch_size: int = 32, lr: float = RECIPE.lr, n: int = RECIPE.n,
               sigma: float = RECIPE.sigma, seed: int = 0, static: bool = False,
               checkpoint_dir: str | None = None, cost: CostMeter | None = None,
               callbacks=(), device: str | None = None) -> Trainer:
    """LTRe: the fixed-index query training with the plain (unweighted) RankNet loss.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder`, its query side
            trained in place.
        examples, index, doc_emb, steps, batch_size, lr, n, sigma, seed, static,
        checkpoint_dir, cost, callbacks, device: see
            :func:`~minidr.training.fixed_index.train_query_encoder`.

    Shapes:
        doc_emb ``(len(index), H)`` float32.

    Reference:
        Zhan et al. (2020), Learning To Retrieve, arXiv 2010.10469.
    """
    return train_query_encoder(encoder, examples, index, doc_emb, steps, batch_size, lr,
                               n, sigma, weighting=None, seed=seed, static=static,
                               checkpoint_dir=checkpoint_dir, cost=cost,
                               callbacks=callbacks, device=device)
