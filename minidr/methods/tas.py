"""Topic-aware sampling (TAS) and balanced margin sampling (TAS-B), chapter 9.

A batch's other passages are free negatives (in-batch negatives, chapter 4),
but in a random batch they are about other topics and teach little: any model
already ranks a passage on tax law below one on river fish. TAS
(Hofstaetter et al. 2021) builds each batch from **one topic**: the training
queries are clustered (k-means on a baseline model's query embeddings) and a
batch takes its queries from one cluster, so the other queries' passages are
near misses. TAS-B adds **balanced pairs**: each query's negative is drawn so
that the teacher's margins ``t(q, p+) - t(q, p-)`` are spread evenly over
their range (``bins`` equal-width bins, a bin uniformly, then a pair in it)
rather than dominated by the many easy negatives.

The loss is the paper's and the same for every arm: Margin-MSE on each
query's own (positive, negative) pair plus ``in_batch_weight`` times
Margin-MSE against every other passage of the batch, both on the teacher's
scores (:class:`~minidr.training.teacher_embeddings.TeacherEmbeddings`). So
the arms of :data:`ARMS` differ only in which queries share a batch and which
negative each query gets:

* ``"random batches"`` (the control): a shuffled order, a uniform negative;
* ``"balanced pairs"``: a shuffled order, the balanced negative;
* ``"TAS"``: topic batches, the uniform negative;
* ``"TAS-B"``: topic batches, the balanced negative.

A query's negative depends only on the seed, the query and the epoch, never on
the batch it falls in, so the control and TAS train on identical (query,
positive, negative) triples, grouped differently.

Example::

    clusters = cluster_queries(teacher.query_vectors(qids), n_clusters)
    batches = tas_batches(student, "TAS-B", examples, mm.corpus, candidates,
                          TeacherTargets(scores), clusters, batch_size=32)
    train_tas(student, batches, teacher, steps=250)

References:
    Hofstaetter, Lin, Yang, Lin & Hanbury (2021), Efficiently Teaching an
    Effective Dense Retriever with Balanced Topic Aware Sampling, SIGIR
    (section 3; reference code: sebastian-hofstaetter/matchmaker,
    ``tas_balanced_training_loader.py`` and ``config/train/modes/tas_balanced.yaml``).
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

import faiss
import numpy as np
import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus
from ..training.batches import EpochOrder, Example, GroupedBatch
from ..training.losses import margin_mse
from ..training.recipe import COSINE_TEMPERATURE, BiEncoderRecipe, Budget
from ..training.teacher_embeddings import TeacherEmbeddings
from ..training.teacher_targets import TeacherTargets
from ..training.trainer import TrainConfig, Trainer, fit

__all__ = ["TasRecipe", "RECIPE", "ARMS", "cluster_queries", "TopicOrder",
           "margin_bins", "balanced_choice", "TripleBatches", "tas_batches",
           "tas_loss", "train_tas"]

# arm -> (topic batches?, balanced pairs?)
ARMS = {"random batches": (False, False), "balanced pairs": (False, True),
        "TAS": (True, False), "TAS-B": (True, True)}


@dataclass(frozen=True)
class TasRecipe(BiEncoderRecipe):
    """Chapter 9's settings: one loss and budget for every arm.

    Attributes:
        pooling, similarity: the bi-encoder (mean pooling, cosine: as chapter 04).
        teacher_ranks: the teacher's ranks ``[lo, hi)`` a query's negatives come
            from (its stored top 50 without the first two).
        queries_per_cluster: k-means gets ``len(examples) // queries_per_cluster``
            clusters (the paper: 2,000 clusters of 400,000 queries, 200 each).
        bins: equal-width margin bins of TAS-B's balanced sampling (the paper: 10).
        in_batch_weight: weight of the in-batch Margin-MSE (the paper: 0.75).
        temperature, teacher_temperature: cosine scores are divided by them
            before margins are taken (both margins in units of 1/tau).
    """

    budgets: dict[str, Budget] = field(default_factory=lambda: {
        "ci": Budget(20, 8), "cpu": Budget(250, 32), "gpu": Budget(2000, 32)})
    lr: float = 1e-4
    teacher_ranks: tuple[int, int] = (3, 51)
    queries_per_cluster: int = 200
    bins: int = 10
    in_batch_weight: float = 0.75
    temperature: float = COSINE_TEMPERATURE
    teacher_temperature: float = COSINE_TEMPERATURE

    def n_clusters(self, n_queries: int) -> int:
        """How many topics ``n_queries`` training queries are split into (>= 2)."""
        return max(2, n_queries // self.queries_per_cluster)


RECIPE = TasRecipe()


def cluster_queries(vectors: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Each query's topic: spherical k-means (faiss) on its embedding.

    Args:
        vectors: one embedding per query (unit length for a cosine model).
        n_clusters: k, at most the number of queries.
        seed: k-means' seed.

    Shapes:
        vectors (n, H) -> labels (n,) int64 in ``[0, n_clusters)``.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)                   # (n, H)
    if not 1 <= n_clusters <= len(x):
        raise ValueError(f"n_clusters must be in [1, {len(x)}], got {n_clusters}")
    kmeans = faiss.Kmeans(x.shape[1], n_clusters, niter=20, seed=seed,
                          spherical=True, min_points_per_centroid=1)
    kmeans.train(x)
    _, labels = kmeans.index.search(x, 1)                                 # (n, 1)
    return labels[:, 0].astype(np.int64)


class TopicOrder(EpochOrder):
    """TAS's order: each batch holds queries of one topic where it can.

    Per epoch, each topic's examples are shuffled and cut into full batches;
    the leftovers of all topics are pooled, shuffled and cut into mixed
    batches; then the batches are shuffled (a last, partial batch stays last
    and continues into the next epoch). Every example is still seen once per
    epoch, as in :class:`~minidr.training.batches.EpochOrder`, so TAS and the
    random order train on the same examples; only the grouping differs. (The
    paper draws a random cluster per batch, with replacement.)

    Args:
        examples: the training examples.
        topics: one topic id per example (e.g. :func:`cluster_queries`).
        batch_size: examples per batch.
        seed: the shuffling seed.
    """

    def __init__(self, examples: list[Example], topics, batch_size: int,
                 seed: int = 0):
        super().__init__(examples, batch_size, seed)
        if len(topics) != len(examples):
            raise ValueError(f"expected one topic per example ({len(examples)}), "
                             f"got {len(topics)}")
        self.topics = [int(t) for t in topics]

    def permutation(self, epoch: int) -> list[int]:
        rng, size = random.Random(self.seed * 1_000_003 + epoch), self.batch_size
        members: dict[int, list[int]] = {}
        for i, topic in enumerate(self.topics):
            members.setdefault(topic, []).append(i)
        batches, leftovers = [], []
        for topic in sorted(members):
            ids = members[topic]
            rng.shuffle(ids)
            full = len(ids) - len(ids) % size
            batches += [ids[j:j + size] for j in range(0, full, size)]   # one topic
            leftovers += ids[full:]
        rng.shuffle(leftovers)
        batches += [leftovers[j:j + size] for j in range(0, len(leftovers), size)]
        partial = batches.pop() if batches and len(batches[-1]) < size else []
        rng.shuffle(batches)
        return [i for batch in batches + [partial] for i in batch]


def margin_bins(margins: np.ndarray, bins: int) -> list[np.ndarray]:
    """The pairs of each of ``bins`` equal-width bins over ``[min, max]`` margin.

    Shapes:
        margins (n,) -> ``bins`` index arrays (all n indices in one bin when the
        margins are all equal).

    Example::

        >>> [b.tolist() for b in margin_bins(np.array([0.0, 0.1, 0.2, 1.0]), 2)]
        [[0, 1, 2], [3]]
    """
    lo, hi = float(margins.min()), float(margins.max())
    if hi == lo:
        return [np.arange(len(margins))]
    which = np.minimum(((margins - lo) / (hi - lo) * bins).astype(int), bins - 1)
    return [np.flatnonzero(which == b) for b in range(bins)]


def balanced_choice(margins: np.ndarray, bins: int, rng: random.Random) -> int:
    """TAS-B's pair sampling: a non-empty margin bin uniformly, then a pair in it.

    A query's many easy negatives (large margins) crowd one end of the range;
    uniform sampling over bins gives the few hard ones (small margins) and the
    few very easy ones as much weight as the crowd.

    Shapes:
        margins (n,) -> an index in ``[0, n)``.
    """
    bin_ = rng.choice([b for b in margin_bins(margins, bins) if len(b)])
    return int(rng.choice(list(bin_)))


class TripleBatches:
    """``batches(i)``: B (query, positive, negative) triples as a
    :class:`~minidr.training.batches.GroupedBatch` (G = 2: positive, negative).

    Args:
        encoder: tokenizes (``tokenize_queries``, ``tokenize_passages``); ``None``
            when only :meth:`triples` is used.
        order: which examples batch ``i`` holds (:class:`EpochOrder` or
            :class:`TopicOrder`).
        corpus: pid -> text.
        candidates: qid -> the query's candidate negatives, best-scored first
            (e.g. :func:`~minidr.training.teacher_targets.teacher_negatives`).
        targets: the teacher's stored scores; required when ``balanced``.
        balanced: TAS-B's balanced choice instead of a uniform one.
        bins: margin bins of the balanced choice.
        seed: the sampling seed.
    """

    def __init__(self, encoder, order: EpochOrder, corpus: Corpus,
                 candidates: dict[str, list[str]],
                 targets: TeacherTargets | None = None, balanced: bool = False,
                 bins: int = RECIPE.bins, seed: int = 0):
        if balanced and targets is None:
            raise ValueError("balanced pairs need the teacher's scores (targets=)")
        self.encoder, self.order, self.corpus = encoder, order, corpus
        self.candidates, self.targets = candidates, targets
        self.balanced, self.bins, self.seed = balanced, bins, seed
        self._pids = list(corpus)

    def negative(self, example: Example, epoch: int) -> str:
        """The example's negative in ``epoch``: a pure function of the seed, the
        query and the epoch. A query without candidates gets a random passage."""
        rng = random.Random(zlib.crc32(f"{self.seed}/{example.qid}/{epoch}".encode()))
        pool = [p for p in self.candidates.get(example.qid, [])
                if p != example.positive]
        if not pool:
            while (p := rng.choice(self._pids)) == example.positive:
                pass
            return p
        if not self.balanced:
            return rng.choice(pool)
        t = self.targets.group(example.qid, [example.positive, *pool])  # (1 + n,)
        t = t.astype(np.float64)          # margins as exact as the stored scores
        return pool[balanced_choice(t[0] - t[1:], self.bins, rng)]

    def triples(self, i: int) -> tuple[list[Example], list[str]]:
        """Batch ``i``'s examples and its 2B passage ids ``[pos_0, neg_0, ...]``."""
        chosen = self.order.select_with_epochs(i)
        pids = [p for epoch, ex in chosen for p in (ex.positive,
                                                    self.negative(ex, epoch))]
        return [ex for _, ex in chosen], pids

    def __call__(self, i: int) -> GroupedBatch:
        examples, pids = self.triples(i)
        return GroupedBatch(self.encoder.tokenize_queries([e.query for e in examples]),
                            self.encoder.tokenize_passages([self.corpus[p]
                                                            for p in pids]),
                            2, [e.qid for e in examples], pids)


def tas_batches(encoder, arm: str, examples: list[Example], corpus: Corpus,
                candidates: dict[str, list[str]], targets: TeacherTargets,
                topics, batch_size: int, recipe: TasRecipe = RECIPE,
                seed: int = 0) -> TripleBatches:
    """The batch source of one arm of :data:`ARMS`.

    Args:
        encoder: tokenizes (may be ``None`` for :meth:`TripleBatches.triples`).
        arm: one of :data:`ARMS`.
        examples, corpus, candidates, targets: see :class:`TripleBatches`.
        topics: one topic per example (used by the topic arms).
        batch_size: queries per batch (B).
        recipe: ``bins``.
        seed: the order's and the sampler's seed.
    """
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose one of {list(ARMS)}")
    by_topic, balanced = ARMS[arm]
    order = (TopicOrder(examples, topics, batch_size, seed) if by_topic
             else EpochOrder(examples, batch_size, seed))
    return TripleBatches(encoder, order, corpus, candidates, targets, balanced,
                         recipe.bins, seed)


def tas_loss(encoder, batch: GroupedBatch, teacher: TeacherEmbeddings,
             recipe: TasRecipe = RECIPE) -> tuple[torch.Tensor, dict]:
    """TAS-B's loss: pairwise Margin-MSE plus in-batch Margin-MSE, on teacher scores.

    For query i with positive ``p+_i`` and negative ``p-_i``:

        L = MSE(s_i(p+_i) - s_i(p-_i),  t_i(p+_i) - t_i(p-_i))
            + w * mean_{d in other groups} MSE(s_i(p+_i) - s_i(d), t_i(p+_i) - t_i(d))

    with ``s``, ``t`` the student's and the teacher's cosines over temperature.

    Args:
        encoder: a cosine :class:`~minidr.models.bi_encoder.BiEncoder`.
        batch: B triples, passages laid out ``[pos_0, neg_0, pos_1, ...]``.
        teacher: the teacher's embeddings (scores of any pair of the batch).
        recipe: ``in_batch_weight`` and the temperatures.

    Shapes:
        q (B, H), p (2B, H); scores s, t (B, 2B); in-batch margins (B, 2B - 2).
    """
    if batch.group != 2:
        raise ValueError(f"expected (positive, negative) groups, got G={batch.group}")
    q = encoder.encode_query(**batch.queries)                             # (B, H)
    p = encoder.encode_passage(**batch.passages)                          # (2B, H)
    s = encoder.score(q, p) / recipe.temperature                          # (B, 2B)
    t = teacher.scores(batch.qids, batch.pids).to(s.device)               # (B, 2B)
    t = t / recipe.teacher_temperature
    rows = torch.arange(len(q), device=s.device)
    pos, neg = 2 * rows, 2 * rows + 1                   # each row's own pair
    pair, stats = margin_mse(s[rows, pos], s[rows, neg], t[rows, pos], t[rows, neg])
    others = torch.ones_like(s, dtype=torch.bool)
    others[rows, pos] = others[rows, neg] = False       # every other group's passage
    in_batch, ib = margin_mse(s[rows, pos], s[others].view(len(q), -1),
                              t[rows, pos], t[others].view(len(q), -1))
    stats = {"pair_mse": stats["mse"], "pair_agreement": stats["agreement"],
             "in_batch_mse": ib["mse"], "in_batch_teacher_margin": ib["teacher_margin"]}
    return pair + recipe.in_batch_weight * in_batch, stats


def train_tas(encoder, batches: TripleBatches, teacher: TeacherEmbeddings,
              steps: int, recipe: TasRecipe = RECIPE, seed: int = 0,
              cost: CostMeter | None = None, checkpoint_dir: str | None = None,
              device: str | None = None) -> Trainer:
    """Train ``encoder`` (in place) with :func:`tas_loss` on ``batches``.

    Args:
        encoder: a cosine :class:`~minidr.models.bi_encoder.BiEncoder`.
        batches: one arm's batches (:func:`tas_batches`).
        teacher: the teacher's embeddings (prepare them first to keep the
            teacher's time out of the student's cost).
        steps: optimizer steps (AdamW, ``recipe.lr``, 10% warm-up, linear decay).
        cost, checkpoint_dir, device: see :func:`~minidr.training.trainer.fit`.

    Returns:
        The trainer (``.history``, ``.cost``).
    """
    config = TrainConfig(steps=steps, lr=recipe.lr, seed=seed,
                         checkpoint_dir=checkpoint_dir, device=device)
    return fit(encoder, lambda m, b: tas_loss(m, b, teacher, recipe), batches, config,
               cost)
