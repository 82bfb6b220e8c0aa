"""QGen and GPL: a dense retriever trained on generated queries (chapter 11).

Without training queries, a corpus still teaches something: a query generator
(doc2query, chapter 13's :class:`~minidr.models.query_generator.QueryGenerator`)
writes queries for its passages, and each (generated query, its passage) is a
training pair.

* **QGen** (Ma et al. 2021; the baseline of Wang et al. 2022): DPR's in-batch
  softmax on generated pairs, exactly as on real ones
  (:func:`~minidr.methods.dpr.train_dpr`: nothing new to write). A generated query is
  noisy: it may be vague ("what is the definition"), or another passage may
  answer it better than its own, and the label cannot say so.
* **GPL** (Wang et al. 2022): the same generated queries, each with one hard
  negative mined from a dense retriever's top 50, and *pseudo labels*: a
  stronger scorer (their cross-encoder; here the teacher, the book's
  all-MiniLM-L6-v2 bi-encoder) scores both passages, and the student's margin
  regresses the teacher's (Margin-MSE). A vague query or a "negative" better
  than the positive gets a small or negative margin instead of a wrong label.

Everything that is not the method comes from the library:
:func:`~minidr.training.mining.ann_negatives` mines (here with the teacher's
cached corpus index), :class:`~minidr.training.teacher_embeddings.TeacherEmbeddings`
scores pairs exactly (``.targets``), :func:`~minidr.training.losses.margin_mse`
is the loss. The functions take any examples, so the same GPL recipe runs on
real queries too (the chapter's control for "generated vs real").

Example::

    gq = generate_corpus_queries(gen, mm.corpus, n=RECIPE.n_generated(P))
    examples = generated_examples(gq.queries, 8000)
    negatives = ann_negatives(teacher, examples, mm.corpus, n=50, depth=50,
                              cache=True)                   # the teacher mines
    pseudo = TeacherEmbeddings(teacher, mm.corpus, {e.qid: e.query for e in examples})
    train_gpl(student, examples, mm.corpus, negatives, pseudo.targets, 250, 32)

References:
    Wang, Thakur, Reimers & Gurevych (2022), GPL: Generative Pseudo Labeling
    for Unsupervised Domain Adaptation of Dense Retrieval, NAACL.
    Ma, Korotkov, Yang, Hall & McDonald (2021), Zero-shot Neural Passage
    Retrieval via Domain-targeted Synthetic Question Generation, EACL (QGen).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..training.batch_losses import group_scores
from ..training.batches import Example, GroupedBatch, GroupedBatches
from ..training.losses import margin_mse
from ..training.recipe import COSINE_TEMPERATURE, BiEncoderRecipe, Budget
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["GPLRecipe", "RECIPE", "generated_examples", "gpl_loss", "train_gpl"]

# qid of a generated query: "gen-<pid>-<j>", never a real MS MARCO qid
GENERATED_PREFIX = "gen-"


@dataclass(frozen=True)
class GPLRecipe(BiEncoderRecipe):
    """Chapter 11's settings: one budget for every arm.

    Attributes:
        pooling, similarity: the bi-encoder (mean pooling, cosine: as chapter 04).
        temperature: the student's cosine scores are divided by it.
        teacher_temperature: the teacher's cosine scores are divided by it,
            so that both margins are in the same units (as chapter 10).
        n_neg: mined negatives per query and step (GPL: 1).
        depth: negatives are drawn from the miner's top ``depth`` (GPL: 50).
        queries_per_passage: profile -> queries generated per passage (the
            largest of chapter 13's, so both chapters share one cache).
        top_k: top-k sampling of the generator (docTTTTTquery's 10).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8), "cpu": Budget(250, 32), "gpu": Budget(2000, 64)})
    # DPR's (chapter 04) learning rate and budgets: QGen is DPR on generated pairs
    lr: float = 1e-4
    temperature: float = COSINE_TEMPERATURE
    teacher_temperature: float = COSINE_TEMPERATURE
    n_neg: int = 1
    depth: int = 50
    queries_per_passage: dict[str, int] = field(default_factory=lambda: {
        "ci": 2, "cpu": 3, "gpu": 20})
    top_k: int = 10

    def n_generated(self, profile) -> int:
        """Queries generated per passage under ``profile``."""
        return self.per_profile(self.queries_per_passage, profile)


RECIPE = GPLRecipe()


def generated_examples(queries: Mapping[str, Sequence[str]], n: int,
                       seed: int = 0) -> list[Example]:
    """``n`` training pairs from generated queries: ``n`` distinct passages
    (a seeded sample), each with one of its queries drawn at random.

    Args:
        queries: pid -> its generated queries
            (:attr:`~minidr.substrate.generated_queries.GeneratedQueries.queries`).
        n: pairs wanted (all passages when there are fewer).
        seed: the sampling seed.

    Returns:
        Examples with qid ``"gen-<pid>-<j>"`` (``j``: which of the passage's
        queries), the generated query and the passage as its positive.

    Raises:
        ValueError: ``n < 1``, or a passage without queries.

    Example::

        >>> generated_examples({"7": ["what is x", "x meaning"]}, 1)[0].positive
        '7'
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    empty = [pid for pid, qs in queries.items() if not qs]
    if empty:
        raise ValueError(f"{len(empty)} passages have no generated queries, e.g. "
                         f"{empty[:3]}: generate with n >= 1")
    rng = random.Random(seed)
    pids = sorted(queries)
    pids = rng.sample(pids, min(n, len(pids)))
    out = []
    for pid in pids:
        j = rng.randrange(len(queries[pid]))
        out.append(Example(f"{GENERATED_PREFIX}{pid}-{j}", queries[pid][j], pid))
    return out


def gpl_loss(encoder, batch: GroupedBatch,
             targets: Callable[[list[str], list[str], int], torch.Tensor],
             recipe: GPLRecipe = RECIPE) -> tuple[torch.Tensor, dict]:
    """GPL's loss: Margin-MSE between the student's and the pseudo labeler's
    margins, ``(s(q, p+) - s(q, p-)) - (t(q, p+) - t(q, p-))``, squared.

    Args:
        encoder: a cosine :class:`~minidr.models.bi_encoder.BiEncoder`.
        batch: B queries with groups of G = 1 + n_neg passages, positive first.
        targets: ``(qids, pids, group) -> (B, G)`` scores of the pseudo labeler
            (e.g. ``TeacherEmbeddings.targets``, see
            :class:`~minidr.training.teacher_embeddings.TeacherEmbeddings`).
        recipe: the two temperatures.

    Shapes:
        student and teacher scores (B, G), in units of 1 / temperature; loss ().

    Reference:
        Wang et al. (2022), GPL, NAACL, section 3 (pseudo labeling, MarginMSE).
    """
    student = group_scores(encoder, batch) / recipe.temperature           # (B, G)
    teacher = targets(batch.qids, batch.pids, batch.group).to(student.device)
    teacher = teacher / recipe.teacher_temperature                        # (B, G)
    return margin_mse(student[:, 0], student[:, 1:], teacher[:, 0], teacher[:, 1:])


def train_gpl(encoder, examples: list[Example], corpus: Corpus,
              negatives: dict[str, list[str]],
              targets: Callable[[list[str], list[str], int], torch.Tensor],
              steps: int, batch_size: int, recipe: GPLRecipe = RECIPE,
              seed: int = 0, cost: CostMeter | None = None,
              device: str | None = None) -> Trainer:
    """GPL: Margin-MSE on (query, positive, mined negative) with pseudo labels.

    Args:
        encoder: a cosine :class:`~minidr.models.bi_encoder.BiEncoder`, trained
            in place.
        examples, corpus, batch_size, seed: see
            :class:`~minidr.training.batches.GroupedBatches`.
        negatives: qid -> mined negatives (e.g.
            :func:`~minidr.training.mining.ann_negatives` with ``depth=recipe.depth``);
            each step samples ``recipe.n_neg`` of them.
        targets: the pseudo labeler's scores, see :func:`gpl_loss`.
        steps: optimizer steps (AdamW, ``recipe.lr``, 10% warm-up, linear decay).
        cost, device: see :func:`~minidr.training.trainer.fit`.

    Reference:
        Wang et al. (2022), GPL, NAACL.
    """
    batches = GroupedBatches(encoder, examples, corpus, batch_size, recipe.n_neg,
                             negatives, seed)
    config = TrainConfig(steps=steps, lr=recipe.lr, seed=seed, device=device)
    return fit(encoder, lambda m, b: gpl_loss(m, b, targets, recipe), batches, config,
               cost)
