"""RocketQAv2: a retriever and a re-ranker trained together (chapter 08).

Dynamic listwise distillation (Ren et al. 2021). Each query comes with a
list of candidates, its positive first, then negatives. The retriever (a
bi-encoder) and the re-ranker (a cross-encoder) each score the whole list,
and each softmax turns the scores into a distribution over it:

    p_de = softmax(s_de / tau),     p_ce = softmax(s_ce),
    L    = KL(p_de || p_ce)  -  log p_ce[positive].

The second term trains the re-ranker on the labels; the first pulls the two
distributions together, with gradients into *both* models. Unlike static
distillation (chapter 10), the teacher is not frozen: it learns while it
teaches, and the retriever's view flows back into it.

The control (:func:`listwise_loss`) trains the same retriever on the same
lists with the labels alone: the softmax over its own list, positive as the
target.

Reference:
    Ren et al. (2021), RocketQAv2: A Joint Training Method for Dense Passage
    Retrieval and Passage Re-ranking, EMNLP.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..training.batches import Example, GroupedBatches
from ..training.recipe import COSINE_TEMPERATURE, BiEncoderRecipe, Budget
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["RocketQAv2Recipe", "RECIPE", "JointRanker", "JointBatch", "JointBatches",
           "list_scores", "dynamic_listwise_loss", "listwise_loss", "train_listwise"]


@dataclass(frozen=True)
class RocketQAv2Recipe(BiEncoderRecipe):
    """Chapter 08's RocketQAv2 settings and budgets.

    Attributes:
        temperature: the retriever's softmax temperature (cosine scores).
        list_size: candidates per query (1 positive + ``list_size - 1``
            negatives).
        reranker_max_len: tokens of a (query, passage) pair for the re-ranker
            (``None``: 160, or fewer if the backbone was pretrained shorter).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 4), "cpu": Budget(250, 16), "gpu": Budget(2000, 32)})
    lr: float = 1e-4
    temperature: float = COSINE_TEMPERATURE
    list_size: int = 8
    reranker_max_len: int | None = None


RECIPE = RocketQAv2Recipe()


class JointRanker(torch.nn.Module):
    """The retriever and the re-ranker as one module, so that one optimizer
    trains both.

    Args:
        retriever: a :class:`~minidr.models.bi_encoder.BiEncoder`.
        reranker: a :class:`~minidr.models.cross_encoder.CrossEncoder`.
    """

    def __init__(self, retriever, reranker):
        super().__init__()
        self.retriever, self.reranker = retriever, reranker


@dataclass
class JointBatch:
    """B queries with their lists of G candidates, tokenized for both models.

    Attributes:
        queries: retriever tokens (B, Lq).
        passages: retriever tokens (B*G, Lp), each query's list in a row,
            positive first.
        pairs: re-ranker tokens (B*G, L) of (query, candidate), same order;
            ``None`` when only the retriever trains.
        group: G.
    """

    queries: Any
    passages: Any
    pairs: Any
    group: int

    def counts(self) -> dict[str, int]:
        """What this batch costs: texts the retriever encodes, pairs the
        re-ranker scores."""
        return {"queries_encoded": int(self.queries["input_ids"].shape[0]),
                "passages_encoded": int(self.passages["input_ids"].shape[0]),
                "pairs_scored": 0 if self.pairs is None
                else int(self.pairs["input_ids"].shape[0])}


class JointBatches:
    """``batches(i)``: the i-th :class:`JointBatch`, drawn as
    :class:`~minidr.training.batches.GroupedBatches` draws its groups.

    Args:
        retriever: tokenizes queries and passages.
        reranker: tokenizes pairs; ``None``: no pairs (the control).
        examples, corpus, batch_size, negatives, seed: see ``GroupedBatches``
            (``negatives``: qid -> candidate negative pids).
        list_size: G.
    """

    def __init__(self, retriever, reranker, examples: list[Example], corpus: Corpus,
                 batch_size: int, negatives: dict[str, list[str]], list_size: int,
                 seed: int = 0):
        if list_size < 2:
            raise ValueError(f"a list needs a positive and a negative, got "
                             f"list_size={list_size}")
        self.retriever, self.reranker, self.group = retriever, reranker, list_size
        self.groups = GroupedBatches(None, examples, corpus, batch_size,
                                     list_size - 1, negatives, seed)

    def __call__(self, i: int) -> JointBatch:
        queries, passages, _ = self.groups.texts(i)
        pairs = None
        if self.reranker is not None:
            repeated = [q for q in queries for _ in range(self.group)]    # B*G
            pairs = self.reranker.tokenize(repeated, passages)
        return JointBatch(self.retriever.tokenize_queries(queries),
                          self.retriever.tokenize_passages(passages), pairs,
                          self.group)


def list_scores(retriever, batch: JointBatch) -> torch.Tensor:
    """The retriever's score of each query's own candidates.

    Shapes:
        q (B, H), p (B*G, H) -> (B, G, H); returns (B, G), positive in column 0.
    """
    q = retriever.encode_query(**batch.queries)                          # (B, H)
    p = retriever.encode_passage(**batch.passages)                       # (B*G, H)
    return torch.einsum("bh,bgh->bg", q, p.view(q.shape[0], batch.group, -1))


def dynamic_listwise_loss(model: JointRanker, batch: JointBatch,
                          temperature: float = RECIPE.temperature):
    """RocketQAv2's loss: ``KL(p_de || p_ce) - log p_ce[positive]``, averaged
    over queries; gradients reach both models.

    Shapes:
        s_de, s_ce (B, G) -> log-distributions (B, G) -> loss ().
    """
    s_de = list_scores(model.retriever, batch)                           # (B, G)
    s_ce = model.reranker(**batch.pairs).view(-1, batch.group)           # (B, G)
    log_de = F.log_softmax(s_de / temperature, dim=-1)
    log_ce = F.log_softmax(s_ce, dim=-1)
    kl = (log_de.exp() * (log_de - log_ce)).sum(-1).mean()
    supervised = -log_ce[:, 0].mean()
    agree = (s_de.argmax(-1) == s_ce.argmax(-1)).float().mean()
    return kl + supervised, {"kl": float(kl.detach()),
                             "reranker_ce": float(supervised.detach()),
                             "top1_agreement": float(agree)}


def listwise_loss(retriever, batch: JointBatch,
                  temperature: float = RECIPE.temperature):
    """The control: softmax cross-entropy over each query's own list, the
    positive as the target (no re-ranker).

    Shapes:
        s_de (B, G) -> loss ().
    """
    s_de = list_scores(retriever, batch)                                 # (B, G)
    return -F.log_softmax(s_de / temperature, dim=-1)[:, 0].mean(), {}


def train_listwise(retriever, examples: list[Example], corpus: Corpus,
                   negatives: dict[str, list[str]], steps: int, batch_size: int,
                   recipe: RocketQAv2Recipe = RECIPE, reranker=None, seed: int = 0,
                   cost: CostMeter | None = None,
                   device: str | None = None) -> Trainer:
    """Train on lists of ``recipe.list_size`` candidates: jointly with
    ``reranker`` (RocketQAv2) or, without one, the retriever alone (the
    control). Both models are trained in place.

    Returns:
        The trainer (``.history`` holds the KL, the re-ranker's loss and how
        often the two agree on the top candidate).
    """
    batches = JointBatches(retriever, reranker, examples, corpus, batch_size,
                           negatives, recipe.list_size, seed)
    config = TrainConfig(steps=steps, lr=recipe.lr, seed=seed, device=device)
    if reranker is None:
        return fit(retriever, lambda m, b: listwise_loss(m, b, recipe.temperature),
                   batches, config, cost)
    return fit(JointRanker(retriever, reranker),
               lambda m, b: dynamic_listwise_loss(m, b, recipe.temperature),
               batches, config, cost)
