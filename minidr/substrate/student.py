"""The shared warm-up student: a small bi-encoder distilled from the teacher's scores
of all 49,439 training queries, trained once and committed.

Chapters 05-07 (ANCE, LTRe, STAR/ADORE) and the later chapters start from a
retriever that is already useful, so that their techniques have something to
improve. It is trained here, longer than one chapter may train, with the
teacher's signal on every training query, not only the 394 labeled ones.

The recipe is in-batch listwise distillation (the in-batch signal of TAS-B and
RocketQAv2): each of the ``B`` queries of a batch brings its positive (its
judged passage if labeled, else the teacher's top-1) and one hard negative
sampled from the teacher's ranks ``hard_ranks``; every query is scored against
all ``2B`` passages by the student and by the teacher (cosine of the teacher's
embeddings, computed once), and the student minimises KL(teacher || student)
over each row (:func:`~minidr.training.losses.distill_kl`)::

    python -m minidr student              # trains, evaluates, writes data/models/
    python -m minidr student --size L3-H384   # the larger student (RECIPES)

Two sizes are recipes here. ``L2-H128`` (:data:`RECIPE`) starts from SPLADE-tiny's
encoder and is the one chapters 05-07 start from: it trains about 100 passages
per second on two CPU cores. ``L3-H384`` (:data:`RECIPE_L3`) starts from the
teacher's own bottom three layers (as DistilBERT starts from its teacher's
layers) and trains four times slower; it answers what a stronger student costs.

Reference:
    Hofstaetter et al. (2021), Efficiently Teaching an Effective Dense Retriever
    with Balanced Topic Aware Sampling (TAS-B), SIGIR: in-batch teacher scores.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus, corpus_fingerprint
from ..data.teacher_scores import TeacherScores
from ..models.backbones import keep_bottom_layers
from ..models.bi_encoder import BiEncoder
from ..models.teacher import TEACHER, teacher_path
from ..retrieval.dense import encode_corpus
from ..retrieval.embedding_cache import cached_embeddings, embedding_key
from ..training.batches import EncodedCost, EpochOrder, Example
from ..training.losses import distill_kl, embedding_stats
from ..training.recipe import COSINE_TEMPERATURE, Budget, Recipe
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["StudentRecipe", "RECIPE", "RECIPE_L3", "RECIPES", "student_start",
           "student_key", "DistillBatch", "DistillBatches",
           "student_examples", "training_sample", "teacher_embeddings",
           "distill_loss", "train_student"]


@dataclass(frozen=True)
class StudentRecipe(Recipe):
    """The warm-up student's settings and budgets.

    Attributes:
        size: the student's name, ``L<layers>-H<hidden>`` (its folder is
            ``data/models/student-<size>``).
        backbone: where the student starts (``data/models/...``, a hub id, or
            :data:`~minidr.models.teacher.TEACHER` for the teacher's own weights).
        layers: keep only the bottom ``layers`` of the backbone's layers (``None``:
            all of them).
        pooling, similarity: the bi-encoder (mean pooling, cosine: as the teacher).
        max_query_len, max_passage_len: truncation in tokens.
        temperature, teacher_temperature: the two softmax temperatures of the KL.
        hard_ranks: the hard negative is drawn from the teacher's ranks ``lo`` to
            ``hi``, both included (1-based; rank 1 is the teacher's top passage;
            unlike :func:`~minidr.training.teacher_targets.teacher_negatives`,
            whose ``hi`` is excluded, kept so that the committed students
            reproduce).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8, eval_every=10), "cpu": Budget(4000, 64, eval_every=800),
        "gpu": Budget(20000, 256, eval_every=2000)})
    lr: float = 2e-4
    size: str = "L2-H128"
    backbone: str = "data/models/splade-tiny"
    layers: int | None = None
    pooling: str = "mean"
    similarity: str = "cos"
    max_query_len: int = 32
    max_passage_len: int = 128
    temperature: float = COSINE_TEMPERATURE
    teacher_temperature: float = COSINE_TEMPERATURE
    hard_ranks: tuple[int, int] = (3, 30)

    @property
    def model_settings(self) -> dict:
        """Keyword arguments of
        :meth:`~minidr.models.bi_encoder.BiEncoder.from_pretrained`."""
        return {"pooling": self.pooling, "similarity": self.similarity,
                "max_query_len": self.max_query_len,
                "max_passage_len": self.max_passage_len}


RECIPE = StudentRecipe()
# The teacher's bottom 3 of 6 layers (hidden 384): a quarter of the L2-H128 speed,
# 32,000 of the 49k queries once in the cpu budget (its corpus encodings, 11 min
# each, are the start and the end only); lr for a start that is
# already a retriever.
RECIPE_L3 = StudentRecipe(
    size="L3-H384", backbone=TEACHER, layers=3, lr=1e-4,
    budgets={"ci": Budget(4, 4, eval_every=2), "cpu": Budget(1000, 32),
             "gpu": Budget(10000, 128, eval_every=2000)})
RECIPES = {r.size: r for r in (RECIPE, RECIPE_L3)}


def student_start(recipe: StudentRecipe) -> BiEncoder:
    """The untrained student: ``recipe.backbone`` (the teacher's local copy when it is
    :data:`~minidr.models.teacher.TEACHER`) cut to its bottom ``recipe.layers``."""
    path = teacher_path() if recipe.backbone == TEACHER else recipe.backbone
    student = BiEncoder.from_pretrained(path, **recipe.model_settings)
    if recipe.layers is not None:
        keep_bottom_layers(student.query_encoder, recipe.layers)
    student.name_or_path = recipe.backbone
    return student


def student_key(recipe: StudentRecipe, profile, data, examples: list[Example]) -> str:
    """A short hash of everything that decides the trained student: the recipe,
    the profile's budget, the corpus and the training examples (its checkpoint
    folder's name, so an interrupted run resumes only the same training)."""
    settings = {"recipe": recipe.settings(), "budget": recipe.budget(profile).__dict__,
                "format": 1}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=list).encode())
    h.update(corpus_fingerprint(data.corpus).encode())
    for ex in examples:
        h.update(f"{ex.qid}\t{ex.positive}\n".encode())
    return h.hexdigest()[:16]


def student_examples(data, scores: TeacherScores) -> list[Example]:
    """One example per training query that the teacher scored: the judged positive
    for labeled queries, the teacher's top-1 for the others (``teacher=True``).

    Queries or passages outside ``data`` (the ``ci`` slice) are skipped.
    """
    train = data.splits["train"]
    rows = scores.row_of()
    examples = []
    for qid, text in {**train.queries, **data.unlabeled_queries}.items():
        judged = sorted(p for p, g in train.qrels.get(qid, {}).items() if g > 0)
        if judged:
            examples.append(Example(qid, text, judged[0]))
        elif qid in rows:
            top = str(scores.pids[rows[qid], 0])
            if top in data.corpus:
                examples.append(Example(qid, text, top, teacher=True))
    return examples


def training_sample(data, scores: TeacherScores, n: int,
                    seed: int = 0) -> list[Example]:
    """A fixed, seeded sample of ``n`` of :func:`student_examples` (all of them
    when there are fewer): the training queries of one chapter's run.

    Chapters 05-07 train one epoch over ``steps * batch_size`` queries, so that
    each query is seen once and a method that mines negatives for its training
    queries (ANCE) mines exactly for the queries it trains on.

    Example::

        examples = training_sample(load_minimarco(), load_teacher_scores(), 512)
    """
    examples = student_examples(data, scores)
    if n >= len(examples):
        return examples
    return random.Random(seed).sample(examples, n)


def teacher_embeddings(teacher, texts: dict[str, str], passages: bool,
                       cost: CostMeter | None = None) -> np.ndarray:
    """The teacher's unit embeddings of ``texts``, through the embedding cache.

    Shapes:
        returns ``(len(texts), H_teacher)`` float32, rows in ``texts``' order.
    """
    if passages:
        return encode_corpus(teacher, texts, cost=cost)
    key = embedding_key(teacher.fingerprint(), corpus_fingerprint(texts))

    def compute():
        if cost is not None:
            cost.add(queries_encoded=len(texts))
        return teacher.encode_queries(list(texts.values()))
    return cached_embeddings("q" + key, compute)


@dataclass
class DistillBatch(EncodedCost):
    """B queries, each with its positive and one hard negative, and the teacher's
    scores of every query against every passage of the batch.

    Attributes:
        queries: token tensors (B, Lq).
        passages: token tensors (2B, Lp), laid out ``[pos_0, neg_0, pos_1, ...]``.
        teacher: (B, 2B) teacher cosine scores.
    """

    queries: Any
    passages: Any
    teacher: torch.Tensor
    qids: list[str] = field(default_factory=list)
    pids: list[str] = field(default_factory=list)


class DistillBatches:
    """``i -> DistillBatch``: a pure function of the step, so training resumes exactly.

    Args:
        encoder: the student (its tokenizer and lengths).
        examples: from :func:`student_examples`.
        corpus: pid -> text.
        scores: the teacher's top-k per query (hard negatives are drawn from it).
        query_emb: (len(examples), H_t) teacher embeddings, rows in ``examples``' order.
        corpus_emb: (len(corpus), H_t) teacher embeddings, rows in ``corpus``' order.
        batch_size: B queries per batch.
        hard_ranks: teacher ranks ``lo`` to ``hi`` (both included, 1-based) of
            the hard negative.
        seed: the shuffling and sampling seed.
    """

    def __init__(self, encoder, examples: list[Example], corpus: Corpus,
                 scores: TeacherScores, query_emb: np.ndarray, corpus_emb: np.ndarray,
                 batch_size: int, hard_ranks: tuple[int, int] = (3, 30), seed: int = 0):
        if len(query_emb) != len(examples) or len(corpus_emb) != len(corpus):
            raise ValueError("teacher embeddings must have one row per example "
                             f"({len(examples)}) and per passage ({len(corpus)}), got "
                             f"{len(query_emb)} and {len(corpus_emb)}")
        lo, hi = hard_ranks
        if not 1 <= lo < hi <= scores.k:
            raise ValueError(f"hard_ranks must satisfy 1 <= lo < hi <= k={scores.k}, "
                             f"got {hard_ranks}")
        self.encoder, self.corpus, self.scores = encoder, corpus, scores
        self.order = EpochOrder(examples, batch_size, seed)
        self.row = {ex.qid: i for i, ex in enumerate(examples)}
        self.q_emb = torch.from_numpy(np.ascontiguousarray(query_emb, np.float32))
        self.p_emb = torch.from_numpy(np.ascontiguousarray(corpus_emb, np.float32))
        self.p_row = {pid: i for i, pid in enumerate(corpus)}
        self.score_row = scores.row_of()
        self.hard_ranks, self.seed = (lo, hi), seed

    def hard_negative(self, ex: Example, i: int) -> str:
        """A passage from the teacher's ranks ``lo`` to ``hi`` (both included) of
        ``ex``'s query, not its positive (a random passage if the query was not
        scored)."""
        rng = random.Random(f"{self.seed}:{i}:{ex.qid}")
        row = self.score_row.get(ex.qid)
        if row is not None:
            lo, hi = self.hard_ranks
            pool = [str(p) for p in self.scores.pids[row, lo - 1:hi]]
            pool = [p for p in pool if p != ex.positive and p in self.p_row]
            if pool:
                return rng.choice(pool)
        return rng.choice(list(self.p_row))

    def __call__(self, i: int) -> DistillBatch:
        chosen = self.order.select(i)
        pids = [p for ex in chosen for p in (ex.positive, self.hard_negative(ex, i))]
        q_t = self.q_emb[[self.row[ex.qid] for ex in chosen]]         # (B, H_t)
        p_t = self.p_emb[[self.p_row[p] for p in pids]]               # (2B, H_t)
        enc = self.encoder
        return DistillBatch(enc.tokenize_queries([ex.query for ex in chosen]),
                            enc.tokenize_passages([self.corpus[p] for p in pids]),
                            q_t @ p_t.T,                                # (B, 2B)
                            [ex.qid for ex in chosen], pids)


def distill_loss(encoder, batch: DistillBatch, temperature: float = RECIPE.temperature,
                 teacher_temperature: float = RECIPE.teacher_temperature
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """In-batch listwise distillation of one :class:`DistillBatch`.

    Shapes:
        queries (B, Lq) -> q (B, H); passages (2B, Lp) -> p (2B, H);
        student and teacher scores (B, 2B).
    """
    q = encoder.encode_query(**batch.queries)                      # (B, H)
    p = encoder.encode_passage(**batch.passages)                   # (2B, H)
    scores = encoder.score(q, p)                                   # (B, 2B)
    loss, stats = distill_kl(scores, batch.teacher.to(scores.device), temperature,
                             teacher_temperature)
    stats.update(embedding_stats(p.detach(), "p_"))
    return loss, stats


def train_student(encoder, batches: DistillBatches, steps: int,
                  recipe: StudentRecipe = RECIPE, seed: int = 0,
                  checkpoint_dir: str | None = None, cost: CostMeter | None = None,
                  callbacks=(), device: str | None = None) -> Trainer:
    """Distil the teacher into ``encoder`` (in place); returns the trainer.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder` (cosine).
        batches: a :class:`DistillBatches`.
        steps: optimizer steps (AdamW, ``recipe.lr``, 10% warm-up, linear decay).
        recipe: the temperatures and learning rate.
        checkpoint_dir: resume point (hours of training survive an interruption).
        cost, callbacks, device: see :func:`~minidr.training.trainer.fit`.
    """
    config = TrainConfig(steps=steps, lr=recipe.lr, seed=seed,
                         checkpoint_dir=checkpoint_dir, device=device)
    return fit(encoder, lambda m, b: distill_loss(m, b, recipe.temperature,
                                                  recipe.teacher_temperature),
               batches, config, cost, callbacks)
