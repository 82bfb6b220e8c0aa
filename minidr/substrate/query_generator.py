"""The book's query generator, trained once per profile and cached: passages in,
queries out (doc2query in chapter 13, QGen and GPL in chapter 11).

No trained doc2query model can be downloaded offline, so one is trained here
(:func:`train_generator`): a BERT2BERT encoder-decoder warm-started from the
teacher's bottom three layers (``cpu``; ``ci`` uses the small MLM backbone)
and trained by teacher forcing on the (passage, query) pairs of every training
query: its judged passage if labeled, else the teacher's top-1
(:func:`~minidr.substrate.student.student_examples`). Dev and DL19 queries are
never seen. The weights (about 150 MB in float32) are kept in the cache, not in
the repository; :func:`load_generator` trains them on first use (resumable)
and writes a card beside them. In Colab it loads the published
``castorini/doc2query-t5-base-msmarco`` instead.

Example::

    gen, card = load_generator(get_profile("cpu"), mm)   # trains once (~25 min)
    gen.generate([mm.corpus["7067032"]], n=3)

Reference:
    Nogueira & Lin (2019), From doc2query to docTTTTTquery: the generator
    trained on MS MARCO's (passage, query) pairs.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_write_text
from ..core.config import PROFILES
from ..core.cost import CostMeter
from ..core.paths import cache_root
from ..models.query_generator import HUB_GENERATOR, QueryGenerator
from ..models.teacher import TEACHER, teacher_path
from ..training.batches import EpochOrder, Example
from ..training.recipe import Budget, Recipe
from ..training.trainer import TrainConfig, fit, set_seed
from .student import student_examples

__all__ = ["GeneratorRecipe", "RECIPE", "generator_dir", "generator_pairs",
           "GeneratorBatches", "train_generator", "load_generator", "dev_loss"]

CARD = "card.json"


@dataclass(frozen=True)
class GeneratorRecipe(Recipe):
    """The generator's settings and budgets.

    Attributes:
        starts: profile -> (backbone, layers kept; ``None``: all). ``"teacher"``
            is all-MiniLM-L6-v2's folder.
        max_passage_len, max_query_len: tokens read and written.
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(30, 8), "cpu": Budget(1200, 32), "gpu": Budget(8000, 64)})
    lr: float = 2e-4
    starts: dict[str, tuple[str, int | None]] = field(default_factory=lambda: {
        "ci": ("data/models/bert-L2-H128", None), "cpu": ("teacher", 3),
        "gpu": ("teacher", 3)})
    max_passage_len: int = 128
    max_query_len: int = 20

    def start(self, profile) -> tuple[str, int | None]:
        """``(backbone path, layers)`` for ``profile``."""
        path, layers = self.per_profile(self.starts, profile)
        return (teacher_path() if path == "teacher" else path), layers


RECIPE = GeneratorRecipe()


def generator_dir(profile) -> Path:
    """``<cache_root()>/generators/qgen__<profile>``: the trained generator."""
    return cache_root() / "generators" / f"qgen__{getattr(profile, 'name', profile)}"


def generator_pairs(data, scores) -> list[Example]:
    """The training pairs: one (query, passage) per training query, the judged
    passage if labeled, else the teacher's top-1 (``Example.teacher``)."""
    return student_examples(data, scores)


class GeneratorBatches:
    """``batches(i)``: the i-th batch of (passage, query) pairs, tokenized for
    teacher forcing; a seeded shuffle per epoch.

    Args:
        generator: the :class:`QueryGenerator` (tokenizes).
        examples: from :func:`generator_pairs`.
        corpus: pid -> text.
        batch_size: pairs per batch.
    """

    def __init__(self, generator: QueryGenerator, examples: list[Example], corpus,
                 batch_size: int, seed: int = 0):
        self.generator, self.corpus = generator, corpus
        self.order = EpochOrder(examples, batch_size, seed)

    def __call__(self, i: int) -> dict:
        chosen = self.order.select(i)
        return self.generator.tokenize([self.corpus[ex.positive] for ex in chosen],
                                       [ex.query for ex in chosen])


def dev_loss(generator: QueryGenerator, pairs: list[tuple[str, str]],
             batch_size: int = 64) -> float:
    """Mean per-token cross-entropy of held-out (passage, query) pairs.

    Args:
        pairs: (passage text, query text).

    Returns:
        Nats per query token (``exp`` of it is the perplexity).
    """
    total, tokens = 0.0, 0
    generator.eval()
    with torch.no_grad():
        for s in range(0, len(pairs), batch_size):
            chunk = pairs[s:s + batch_size]
            batch = generator.tokenize(*zip(*chunk))
            n = int((batch["labels"] != -100).sum())
            batch = {k: v.to(generator.device) for k, v in batch.items()}
            total += float(generator(batch)) * n
            tokens += n
    return total / max(tokens, 1)


def _dev_pairs(data) -> list[tuple[str, str]]:
    dev = data.splits["dev"]
    return [(data.corpus[pid], dev.queries[qid]) for qid in sorted(dev.qrels)
            for pid, g in sorted(dev.qrels[qid].items())
            if g > 0 and pid in data.corpus and qid in dev.queries]


def train_generator(data, scores, profile, recipe: GeneratorRecipe = RECIPE,
                    out: str | Path | None = None, device: str | None = None,
                    examples_shown: int = 5) -> Path:
    """Train the query generator of ``profile`` and save it with its card.

    Resumable: checkpoints go to ``<out>.ckpt`` and a rerun continues there.

    Args:
        data: MiniMARCO (``load_minimarco``).
        scores: the teacher's scores of the training queries
            (``load_teacher_scores()``), for the unlabeled queries' positives.
        profile: picks the start and the budget.
        out: folder to write (default :func:`generator_dir`).
        device: ``"cpu"``/``"cuda"`` (default: CUDA if available).

    Returns:
        The folder: the generator (:meth:`QueryGenerator.save`) and ``card.json``
        (start, budget, cost, dev cross-entropy before and after, examples).
    """
    out = Path(out or generator_dir(profile))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    budget, (start, layers) = recipe.budget(profile), recipe.start(profile)
    set_seed(0)
    gen = QueryGenerator.from_backbone(start, layers,
                                       max_passage_len=recipe.max_passage_len,
                                       max_query_len=recipe.max_query_len).to(device)
    examples = generator_pairs(data, scores)
    held_out = _dev_pairs(data)
    before = dev_loss(gen, held_out)
    batches = GeneratorBatches(gen, examples, data.corpus, budget.batch_size)
    cost = CostMeter()

    def loss(model, batch):
        return model(batch), {}

    trainer = fit(gen, loss, batches, TrainConfig(
        steps=budget.steps, lr=recipe.lr, device=device,
        checkpoint_dir=str(out) + ".ckpt"), cost=cost)
    after = dev_loss(gen, held_out)
    shown = held_out[:examples_shown]
    card = {
        "start": TEACHER if start == teacher_path() else str(start),
        "layers": layers, "profile": getattr(profile, "name", profile),
        "recipe": recipe.settings(), "pairs": len(examples),
        "teacher_pairs": sum(ex.teacher for ex in examples),
        "steps": budget.steps, "batch_size": budget.batch_size,
        "train_seconds": round(trainer.cost.elapsed, 1),
        "final_loss": float(np.mean([h["loss"] for h in trainer.history[-50:]])),
        "dev_pairs": len(held_out), "dev_loss_before": round(before, 4),
        "dev_loss_after": round(after, 4),
        "dev_perplexity_after": round(math.exp(after), 2),
        "examples": [{"passage": p, "query": q, "generated": g} for (p, q), g in
                     zip(shown, gen.generate([p for p, _ in shown], n=3))]}
    gen.to("cpu").save(out)
    atomic_write_text(out / CARD, json.dumps(card, indent=1) + "\n")
    shutil.rmtree(str(out) + ".ckpt", ignore_errors=True)  # done: no resuming needed
    return out


def load_generator(profile, data=None, scores=None,
                   train: bool = True) -> tuple[QueryGenerator, dict]:
    """The generator of ``profile`` and its card; trained first if missing.

    Args:
        profile: ``colab`` loads ``castorini/doc2query-t5-base-msmarco``; the
            others the generator trained here (:func:`train_generator`).
        data, scores: needed only when it must be trained.
        train: if ``False``, a missing generator raises instead.

    Raises:
        FileNotFoundError: missing and ``train=False`` (or no ``data``); the
            message gives the command that builds it.
    """
    name = getattr(profile, "name", profile)
    if name == "colab":
        return QueryGenerator.from_pretrained(HUB_GENERATOR), {"start": HUB_GENERATOR}
    path = generator_dir(name)
    if not (path / CARD).is_file():
        if not train or data is None or scores is None:
            raise FileNotFoundError(
                f"no query generator for profile {name!r} at {path}; train it with "
                f"`python -m minidr generator --profile {name}`")
        train_generator(data, scores, PROFILES[name])
    card = json.loads((path / CARD).read_text())
    return QueryGenerator.from_pretrained(path), card
