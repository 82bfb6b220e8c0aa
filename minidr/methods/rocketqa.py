"""RocketQA: more negatives, cleaner hard negatives, more queries (chapter 08).

RocketQA (Qu et al. 2021) trains a dual encoder with three optimisations,
each a separate experiment of chapter 08:

* **cross-batch negatives** (section 4.1): with N processes, every query is
  contrasted with the passages of all N local batches
  (:mod:`minidr.training.cross_batch`, launched here by :func:`launch_cross_batch`);
  on one machine, gradient caching reaches the same large batch
  (:mod:`minidr.training.grad_cache`). :func:`in_batch_objective` is the
  in-batch softmax, cached when the batch is larger than a chunk;
* **denoised hard negatives** (4.2): the step-1 model's top-ranked passages are
  mined as negatives, and those a stronger scorer (here the teacher) scores
  like a judged positive are dropped (:func:`~minidr.training.denoise.denoise`);
  the threshold comes from the judged positives of the labeled training
  queries (:func:`denoise_threshold`);
* **data augmentation** (4.3): unlabeled queries labeled by the stronger
  scorer where it is confident; the confidence threshold is calibrated on
  the labeled queries (:func:`margin_table`, :func:`augmented_examples`).

RocketQA's scorer is a cross-encoder; ours is the book's teacher
(all-MiniLM-L6-v2) through its stored top-50 scores of every training query.

Reference:
    Qu et al. (2021), RocketQA: An Optimized Training Approach to Dense Passage
    Retrieval for Open-Domain Question Answering, NAACL.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import atomic_write_text
from ..core.cost import CostMeter
from ..data.formats import Corpus, Qrels
from ..data.teacher_scores import TeacherScores
from ..training.batches import Example, GroupedBatches
from ..training.batch_losses import in_batch_loss
from ..training.denoise import threshold_table
from ..training.grad_cache import grad_cached
from ..training.losses import in_batch_targets, info_nce
from ..training.recipe import COSINE_TEMPERATURE, BiEncoderRecipe, Budget
from ..training.teacher_targets import TeacherTargets
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["RocketQARecipe", "RECIPE", "in_batch_objective", "train_in_batch",
           "teacher_scorer", "denoise_threshold", "margin_table", "augment_margin",
           "augmented_examples", "launch_cross_batch"]


@dataclass(frozen=True)
class RocketQARecipe(BiEncoderRecipe):
    """Chapter 08's settings and budgets.

    Attributes:
        pooling, similarity, temperature: the bi-encoder and its softmax (as
            chapter 04).
        batch_sweep: profile -> the batch sizes compared at equal steps.
        chunk_size: gradient caching encodes at most this many texts with a
            graph at once; batches of at most this many texts skip it.
        mine_depth: the step-1 model's top ``mine_depth`` passages are mined.
        denoise_recall: the threshold is the teacher score that this share of
            the labeled queries' judged positives reach (0.5: the median).
        augment_precision: the teacher's top-1 labels an unlabeled query when
            its margin over the top-2 is one at which at least this share of
            labeled queries' top-1 are their judged positive.
        augment_sweep: profile -> numbers of augmented queries on the curve.
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8), "cpu": Budget(250, 32), "gpu": Budget(2000, 64)})
    lr: float = 1e-4
    temperature: float = COSINE_TEMPERATURE
    batch_sweep: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "ci": (4, 8, 16), "cpu": (16, 32, 64, 128), "gpu": (32, 64, 128, 256, 512)})
    chunk_size: int = 64
    mine_depth: int = 30
    denoise_recall: float = 0.5
    augment_precision: float = 0.9
    augment_sweep: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "ci": (0, 4, 10), "cpu": (0, 500, 1500, 5000),
        "gpu": (0, 1000, 2500, 5000)})

    def sweep(self, name: str, profile) -> tuple[int, ...]:
        """``batch_sweep`` or ``augment_sweep`` (``name``) of ``profile``."""
        return self.per_profile(getattr(self, name), profile)


RECIPE = RocketQARecipe()


def in_batch_objective(temperature: float = RECIPE.temperature,
                       chunk_size: int | None = None):
    """The in-batch softmax as a :func:`~minidr.training.trainer.fit` loss;
    with ``chunk_size``, computed by gradient caching.

    Args:
        temperature: softmax temperature (0.05 for cosine scores).
        chunk_size: ``None``: one pass with a graph over the whole batch.
            Otherwise :func:`~minidr.training.grad_cache.grad_cached` with chunks
            of ``chunk_size`` texts: the same loss and gradients, the activation
            memory of one chunk, each text encoded twice.

    Shapes:
        q (B, H), p (B*G, H) -> scores (B, B*G) -> loss ().

    Reference:
        Gao, Zhang, Han & Callan (2021), GradCache, RepL4NLP.
    """
    if chunk_size is None:
        return lambda encoder, batch: in_batch_loss(encoder, batch, temperature)

    def of_embeddings(q, p, batch):
        scores = q @ p.T                      # (B, B*G); unit vectors: cosine
        return info_nce(scores, in_batch_targets(len(q), batch.group, q.device),
                        temperature)

    return grad_cached(of_embeddings, chunk_size)


def train_in_batch(encoder, examples: list[Example], corpus: Corpus, steps: int,
                   batch_size: int, recipe: RocketQARecipe = RECIPE,
                   hard_negatives: dict[str, list[str]] | None = None,
                   seed: int = 0, cost: CostMeter | None = None,
                   device: str | None = None) -> Trainer:
    """Train ``encoder`` in place with in-batch negatives (and one hard negative
    per query when ``hard_negatives`` is given); gradient caching when the
    batch holds more than ``recipe.chunk_size`` passages.

    Args:
        encoder: a cosine :class:`~minidr.models.bi_encoder.BiEncoder`.
        examples, corpus, batch_size, seed: see
            :class:`~minidr.training.batches.GroupedBatches`.
        steps: optimizer steps (AdamW, ``recipe.lr``, 10% warm-up, linear decay).
        hard_negatives: qid -> negative pids (e.g. denoised mined ones).
        cost, device: see :func:`~minidr.training.trainer.fit`.

    Returns:
        The trainer (``.history``, ``.cost``).
    """
    n_hard = 0 if hard_negatives is None else 1
    batches = GroupedBatches(encoder, examples, corpus, batch_size, n_hard,
                             hard_negatives, seed)
    texts = batch_size * (1 + n_hard)
    chunk = recipe.chunk_size if texts > recipe.chunk_size else None
    config = TrainConfig(steps=steps, lr=recipe.lr, seed=seed, device=device)
    return fit(encoder, in_batch_objective(recipe.temperature, chunk), batches,
               config, cost)


def _judged(qrels: Qrels) -> dict[str, set[str]]:
    return {q: {p for p, g in rel.items() if g > 0} for q, rel in qrels.items()}


def teacher_scorer(targets: TeacherTargets):
    """``score(qid, pids)`` for :func:`~minidr.training.denoise.denoise`: the
    teacher's stored score of each passage, ``-inf`` for one outside its stored
    top k.

    A passage the teacher ranked below its k-th is never dropped: it is not
    among the k passages the teacher found most relevant. (Its score is at
    most the k-th, which for a few queries with many near duplicates is above
    the threshold; dropping all their unseen passages would be a guess.)
    """
    def score(qid: str, pids: list[str]) -> list[float]:
        known = targets.of_query(qid)
        return [known.get(pid, -np.inf) for pid in pids]

    return score


def denoise_threshold(targets: TeacherTargets, qrels: Qrels,
                      recall: float = RECIPE.denoise_recall,
                      grid=np.round(np.arange(0.5, 0.91, 0.05), 2)
                      ) -> tuple[float, pd.DataFrame]:
    """The teacher score above which a mined passage counts as a likely positive.

    On the labeled queries: the score that a share ``recall`` of the judged
    positives reach (the median for 0.5), and the precision / recall table of
    :func:`~minidr.training.denoise.threshold_table` over the teacher's stored
    top k (precision is a lower bound: MS MARCO judges about one passage per
    query, so an unjudged passage above the threshold may be relevant too).

    Args:
        targets: the teacher's stored scores.
        qrels: the labeled training queries' judgments.
        recall: share of judged positives at or above the threshold.
        grid: thresholds tabulated.

    Returns:
        ``(threshold, table)``.
    """
    judged, others = [], []
    for qid, positives in _judged(qrels).items():
        if not positives or qid not in targets.rows:
            continue
        known = targets.of_query(qid)
        judged += list(targets.scores_of(qid, sorted(positives)))
        others += [s for p, s in known.items() if p not in positives]
    if not judged:
        raise ValueError("no labeled query has teacher scores: pass the training "
                         "split's qrels and the teacher scores of its queries")
    threshold = float(np.quantile(judged, 1 - recall))
    return threshold, threshold_table(judged, others, sorted({*grid, threshold}))


def margin_table(scores: TeacherScores, qrels: Qrels,
                 margins=np.round(np.arange(0.0, 0.205, 0.01), 2)) -> pd.DataFrame:
    """How often the teacher's top-1 is the judged positive, by its margin.

    On the labeled queries: for each ``m``, the share of queries whose top-1
    leads the top-2 by at least ``m`` (``kept``), and among them the share whose
    top-1 is a judged positive (``precision``, a lower bound).

    Returns:
        One row per margin: ``kept``, ``precision``, ``queries``.
    """
    rows, judged = scores.row_of(), _judged(qrels)
    margin, hit = [], []
    for qid, positives in judged.items():
        if positives and qid in rows:
            top = scores.scores[rows[qid], :2].astype(np.float64)
            margin.append(top[0] - top[1])
            hit.append(str(scores.pids[rows[qid], 0]) in positives)
    margin, hit = np.array(margin), np.array(hit)
    table = [{"margin": m, "kept": (margin >= m).mean(),
              "precision": hit[margin >= m].mean() if (margin >= m).any() else np.nan,
              "queries": int((margin >= m).sum())} for m in margins]
    return pd.DataFrame(table).set_index("margin")


def augment_margin(table: pd.DataFrame,
                   precision: float = RECIPE.augment_precision) -> float:
    """The smallest margin of :func:`margin_table` whose precision reaches
    ``precision`` (a clear error if none does)."""
    ok = table.index[table["precision"] >= precision]
    if not len(ok):
        raise ValueError(f"no margin reaches precision {precision}: lower "
                         "augment_precision or extend the margins of margin_table")
    return float(ok.min())


def augmented_examples(data, scores: TeacherScores, min_margin: float, n: int,
                       seed: int = 0) -> list[Example]:
    """``n`` unlabeled training queries labeled with the teacher's top-1, drawn
    (seeded) from those with a top-1 margin of at least ``min_margin``.

    Raises:
        ValueError: fewer than ``n`` queries pass the margin.
    """
    labels = scores.labels(min_margin, queries=data.unlabeled_queries)
    pool = [Example(q, data.unlabeled_queries[q], p, teacher=True)
            for q, p in zip(labels["qid"], labels["pid"]) if p in data.corpus]
    if n > len(pool):
        raise ValueError(f"only {len(pool)} unlabeled queries have a top-1 margin "
                         f">= {min_margin}; ask for at most that many")
    return random.Random(seed).sample(pool, n)


# -- cross-batch training in N processes (torchrun) -------------------------------
def launch_cross_batch(nproc: int, backbone: str, corpus_slice: str,
                       examples: list[Example], local_batch: int, steps: int,
                       workdir: str | os.PathLike, timeout: int = 600) -> dict:
    """Train with cross-batch negatives in ``nproc`` CPU processes (gloo),
    launched by ``torchrun --standalone --nproc_per_node=nproc``.

    Each process trains ``backbone`` (a cosine bi-encoder, the same seed
    everywhere) on its ``local_batch`` queries of every step of ``examples``,
    in-batch negatives only, sharing passage embeddings with the others; rank 0
    writes what it saw (JSON, atomically) under ``workdir``.

    Args:
        nproc: processes (the world size).
        backbone: the encoder to start from (a folder or hub name).
        corpus_slice: ``"ci"`` or ``"full"``
            (:func:`~minidr.data.minimarco.load_minimarco`).
        examples: the training pairs; step ``i``'s global batch is the same in
            every process.
        local_batch: queries per process and step (global: ``nproc * local_batch``).
        steps: optimizer steps.
        workdir: where the examples and the result are written.
        timeout: seconds before the launch is abandoned.

    Returns:
        ``{"world_size", "local_batch", "negatives_per_query", "loss",
        "seconds"}``: ``loss`` per step (rank 0's share), ``seconds`` of training.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    pairs, out = workdir / "examples.jsonl", workdir / f"world{int(nproc)}.json"
    atomic_write_text(pairs, "".join(json.dumps(vars(e)) + "\n" for e in examples))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={int(nproc)}", "-m", "minidr.methods.rocketqa",
           "--backbone", str(backbone), "--corpus-slice", str(corpus_slice),
           "--examples", str(pairs), "--local-batch", str(int(local_batch)),
           "--steps", str(int(steps)), "--out", str(out)]
    threads = max(1, (os.cpu_count() or 2) // int(nproc))
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"torchrun failed with exit code {done.returncode}; "
                           f"its last output:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def _worker(argv=None) -> None:
    """One process of :func:`launch_cross_batch` (started by torchrun)."""
    import torch
    import torch.distributed as dist

    from ..data.minimarco import load_minimarco
    from ..models.bi_encoder import BiEncoder
    from ..training.cross_batch import ShardedBatches, cross_batch_objective

    parser = argparse.ArgumentParser(description=_worker.__doc__)
    for name in ("--backbone", "--corpus-slice", "--examples", "--out"):
        parser.add_argument(name, required=True)
    for name in ("--local-batch", "--steps"):
        parser.add_argument(name, type=int, required=True)
    args = parser.parse_args(argv)
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    data = load_minimarco(slice_name=args.corpus_slice)
    examples = [Example(**json.loads(line))
                for line in Path(args.examples).read_text().splitlines()]
    torch.manual_seed(0)                               # the same start everywhere
    encoder = BiEncoder.from_pretrained(args.backbone, **RECIPE.model_settings)
    batches = ShardedBatches(GroupedBatches(encoder, examples, data.corpus,
                                            args.local_batch * size))
    start = time.perf_counter()
    trainer = fit(encoder, cross_batch_objective(RECIPE.temperature), batches,
                  TrainConfig(steps=args.steps, lr=RECIPE.lr, device="cpu"))
    seconds = time.perf_counter() - start
    if rank == 0:
        atomic_write_text(args.out, json.dumps({
            "world_size": size, "local_batch": args.local_batch,
            "negatives_per_query": int(trainer.history[-1]["negatives_per_query"]),
            "loss": [h["loss"] for h in trainer.history], "seconds": seconds}))
    dist.destroy_process_group()


if __name__ == "__main__":
    _worker()
