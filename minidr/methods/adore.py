"""ADORE: LTRe's fixed-index, query-only training, with pairs weighted by the metric.

ADORE (Zhan et al., 2021) keeps everything of LTRe (:mod:`minidr.methods.ltre`): the
passage embeddings of a trained model are fixed, and at every step the current
query encoder retrieves its *dynamic hard negatives* from the full index. What
changes is the loss. Plain RankNet treats every (positive, negative) pair
alike, although swapping a positive at rank 30 with a negative at rank 31 does
nothing to MRR@10 while lifting a positive from rank 2 to rank 1 doubles its
reciprocal rank. ADORE weights each pair's RankNet loss by ``|delta RR@10|``,
the change in the metric if the two swapped places (LambdaLoss;
:func:`~minidr.training.losses.delta_rr`)::

    loss = sum over pairs of  |RR(r+) - RR(r-)| * log(1 + exp(-sigma * (s+ - s-)))
           / #pairs

ADORE+STAR, the paper's best model, is this module started from the STAR
model with STAR's passage embeddings as the fixed index; nothing here is
specific to STAR::

    doc_emb = encode_corpus(star, mm.corpus)  # (n, H), fixed
    index = DenseIndex.build(doc_emb, list(mm.corpus))
    trainer = train_adore(star, examples, index, doc_emb, steps=2000)
    runs = search_splits(star, index, mm)     # the same fixed index

Settings and where they come from (``jingtaozhan/DRhard``, ``adore/train.py``
and README): ``n = 200`` retrieved per query (``--neg_topk 200``); AdamW, lr
``5e-6`` (our :data:`RECIPE` uses LTRe's ``5e-4``, for budgets of hundreds of
steps; see :mod:`minidr.methods.ltre`),
batch 32, 2,000 warm-up steps, 6 epochs; weights
``|1/rank_i - 1/rank_j|`` set to 0 beyond ``--metric_cut`` (its
``metric_weights``); weighted loss summed over pairs and divided by their
number. The README's passage command passes ``--metric_cut 200``; we default
to ``cutoff = 10``, MS MARCO passage's official MRR@10, which the chapter
reports. ``sigma``: see :data:`minidr.training.recipe.COSINE_SIGMA`.

Reference:
    Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
    Negatives, SIGIR (arXiv 2104.08051). Wang et al. (2018), The LambdaLoss
    Framework for Ranking Metric Optimization, CIKM.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from ..core.cost import CostMeter
from ..training.batches import Example
from ..training.fixed_index import FixedIndexRecipe, train_query_encoder
from ..training.losses import delta_rr
from ..training.trainer import Trainer

__all__ = ["ADORERecipe", "RECIPE", "train_adore"]


@dataclass(frozen=True)
class ADORERecipe(FixedIndexRecipe):
    """ADORE's settings and budgets (chapter 07): LTRe's, plus the metric's depth.

    Attributes:
        cutoff: depth of the target metric, MRR@``cutoff``.
    """

    cutoff: int = 10


RECIPE = ADORERecipe()


def train_adore(encoder, examples: list[Example], index, doc_emb: np.ndarray,
                steps: int, batch_size: int = 32, lr: float = RECIPE.lr,
                n: int = RECIPE.n, cutoff: int = RECIPE.cutoff,
                sigma: float = RECIPE.sigma, seed: int = 0,
                checkpoint_dir: str | None = None, cost: CostMeter | None = None,
                callbacks=(), device: str | None = None) -> Trainer:
    """ADORE: the fixed-index query training with RankNet pairs weighted by
    ``delta_rr``.

    At every step the batch's queries retrieve their top-``n`` non-positive
    passages from ``index``; each (positive, negative) pair weighs
    ``|RR@cutoff(positive's rank) - RR@cutoff(negative's rank)|``, where the
    positive's rank is 1 + the number of retrieved negatives scoring above it
    (RR 0 if it is below all ``n``) and a negative's rank is its rank in the
    index's full ranking.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder` (e.g. STAR), its query
            side trained in place.
        examples, index, doc_emb, steps, batch_size, lr, sigma, seed,
        checkpoint_dir, cost, callbacks, device: as in
            :func:`~minidr.training.fixed_index.train_query_encoder`.
        n: dynamic hard negatives retrieved per query (ADORE: 200).
        cutoff: depth of the target metric, MRR@``cutoff``.

    Shapes:
        doc_emb ``(len(index), H)`` float32.

    Returns:
        the :class:`~minidr.training.trainer.Trainer` (``.history`` per step: loss,
        ``pair_accuracy``, ``weight_mean``, ``train_mrr10``, ``retrieval_seconds`` ...).

    Reference:
        Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
        Negatives, SIGIR, section on ADORE.
    """
    # (pos_rank (B,), neg_rank (B, n)) -> (B, n)
    weighting = partial(delta_rr, cutoff=cutoff)
    return train_query_encoder(encoder, examples, index, doc_emb, steps, batch_size, lr,
                               n, sigma, weighting=weighting, seed=seed,
                               checkpoint_dir=checkpoint_dir, cost=cost,
                               callbacks=callbacks, device=device)
