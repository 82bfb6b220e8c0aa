"""Any teacher's scores of the pairs a training run will see, and teacher ensembles.

The stored top-k (:class:`~minidr.training.teacher_targets.TeacherTargets`)
holds one teacher's scores. To ask *which teacher teaches best*, every teacher
must score exactly the same (query, passage) pairs: each query's positive and
the negatives its batches draw. :func:`batch_pairs` lists those pairs,
:meth:`PairTargets.from_teacher` has a teacher score them (a dense bi-encoder
through its embeddings, a sparse one such as SPLADE through its term
weights; both cached on disk), and a :class:`PairTargets` stands in for
``TeacherTargets`` in a distillation loss.

Teachers score in different units: a cosine, a cosine of a model trained at a
much lower temperature, a sparse dot product. Margin-MSE regresses the
teacher's *margins*, so units matter. :meth:`PairTargets.calibrated_to`
rescales a teacher so that its margins (positive minus negative) have the
spread of a reference teacher's, and :func:`ensemble` averages calibrated
teachers, as TAS-B averages its two teachers' scores (Hofstaetter et al. 2021).

Example::

    >>> a = PairTargets({"q": {"p": 0.9, "n": 0.5, "m": 0.1}}, "a")  # positive first
    >>> b = PairTargets({"q": {"p": 30.0, "n": 10.0, "m": 20.0}}, "b")
    >>> a.margins(), b.margins()          # standard deviations 0.2 and 5
    (array([0.4, 0.8]), array([20., 10.]))
    >>> b.calibrated_to(a)(["q"], ["p", "n", "m"], 3)     # b * 0.2 / 5
    tensor([[1.2000, 0.4000, 0.8000]])
    >>> ensemble([a, b.calibrated_to(a)])(["q"], ["p", "n", "m"], 3)
    tensor([[1.0500, 0.4500, 0.4500]])
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..core.cost import CostMeter
from ..data.formats import Corpus, corpus_fingerprint
from ..retrieval.embedding_cache import cached_embeddings, cached_sparse, embedding_key

__all__ = ["batch_pairs", "PairTargets", "ensemble"]


def batch_pairs(batches, steps: int) -> dict[str, list[str]]:
    """Every (query, passage) pair the first ``steps`` batches hold.

    Args:
        batches: a :class:`~minidr.training.batches.GroupedBatches`.
        steps: how many batches training will draw.

    Returns:
        qid -> its positive first, then every other passage drawn for it
        (in draw order, without repeats).
    """
    pairs: dict[str, list[str]] = {}
    for i in range(steps):
        examples, (_, _, pids) = batches.select(i), batches.texts(i)
        group = len(pids) // len(examples)
        for k, ex in enumerate(examples):
            seen = pairs.setdefault(ex.qid, [])
            seen += [p for p in pids[k * group:(k + 1) * group] if p not in seen]
    return pairs


def _dense(teacher, texts: dict[str, str], queries: bool, progress: bool) -> np.ndarray:
    encode = teacher.encode_queries if queries else teacher.encode_passages
    key = embedding_key(f"{teacher.fingerprint()}-{'q' if queries else 'p'}",
                        corpus_fingerprint(texts))
    return cached_embeddings(key, lambda: encode(list(texts.values()),
                                                 progress=progress))   # (n, H)


def _sparse(teacher, texts: dict[str, str], progress: bool) -> sp.csr_matrix:
    key = embedding_key(teacher.fingerprint(), corpus_fingerprint(texts))
    return cached_sparse(key, lambda: teacher.encode(list(texts.values()),
                                                     progress=progress))  # (n, V)


class PairTargets:
    """``targets(qids, pids, group) -> (B, G)``: one teacher's score of every
    pair it was asked about (the call signature of
    :class:`~minidr.training.teacher_targets.TeacherTargets`).

    Args:
        scores: qid -> {pid: score}, each query's positive first.
        name: the teacher's name, for tables.

    Attributes:
        cost: what scoring cost (``queries_encoded``, ``passages_encoded``,
            seconds); zero when the embeddings came from the cache.
    """

    def __init__(self, scores: dict[str, dict[str, float]], name: str = ""):
        self.scores, self.name = scores, name
        self.cost = CostMeter()

    @classmethod
    def from_teacher(cls, teacher, queries: dict[str, str], corpus: Corpus,
                     pairs: dict[str, list[str]], name: str = "",
                     progress: bool = False) -> "PairTargets":
        """Have ``teacher`` score every pair of ``pairs``.

        Args:
            teacher: a dense bi-encoder (``encode_queries``, ``encode_passages``,
                ``fingerprint``; scores are dot products of its embeddings) or
                a sparse encoder (``encode`` to a CSR matrix, as
                :class:`~minidr.models.splade.Splade`; scores are sparse dot
                products).
            queries: qid -> text; corpus: pid -> text.
            pairs: qid -> pids, positive first (:func:`batch_pairs`).
            name: the teacher's name.
            progress: show progress bars while embedding.

        Shapes:
            each query's embedding ``(H,)`` or ``(V,)`` sparse, dotted with
            each of its passages'.
        """
        qids = sorted(pairs)
        pids = sorted({p for ps in pairs.values() for p in ps})
        q_texts = {q: queries[q] for q in qids}
        p_texts = {p: corpus[p] for p in pids}
        out = cls({}, name)
        with out.cost:
            if callable(getattr(teacher, "encode_queries", None)):
                q = _dense(teacher, q_texts, True, progress)              # (nq, H)
                p = _dense(teacher, p_texts, False, progress)             # (np, H)
            else:
                q, p = (_sparse(teacher, q_texts, progress),
                        _sparse(teacher, p_texts, progress))              # (n, V)
        out.cost.add(queries_encoded=len(qids), passages_encoded=len(pids))
        q_row = {qid: i for i, qid in enumerate(qids)}
        p_row = {pid: i for i, pid in enumerate(pids)}
        for qid in pairs:                                 # in the order of ``pairs``
            i, rows = q_row[qid], [p_row[pid] for pid in pairs[qid]]
            if sp.issparse(q):
                s = np.asarray((p[rows] @ q[i].T).todense()).ravel()      # (n,)
            else:
                s = p[rows] @ q[i]                                        # (n,)
            out.scores[qid] = dict(zip(pairs[qid], map(float, s)))
        return out

    def margins(self) -> np.ndarray:
        """Each query's positive minus each of its other passages, in the
        order of its queries and passages (two teachers of the same pairs align).

        Shapes:
            returns (number of pairs - number of queries,).
        """
        out = [s[0] - np.asarray(s[1:]) for s in
               (list(v.values()) for v in self.scores.values())]
        return np.concatenate(out) if out else np.zeros(0)

    def scaled(self, factor: float, name: str | None = None) -> "PairTargets":
        """Every score multiplied by ``factor``."""
        return PairTargets({q: {p: s * factor for p, s in v.items()}
                            for q, v in self.scores.items()},
                           self.name if name is None else name)

    def calibration(self, reference: "PairTargets") -> float:
        """The factor that gives this teacher's margins the standard deviation
        of ``reference``'s margins (on the pairs each scored)."""
        spread = float(np.std(self.margins()))
        if spread == 0:
            raise ValueError(f"teacher {self.name!r} gives every pair the same "
                             "margin: nothing to calibrate")
        return float(np.std(reference.margins())) / spread

    def calibrated_to(self, reference: "PairTargets") -> "PairTargets":
        """Rescaled by :meth:`calibration`: the same units as ``reference``
        for Margin-MSE, and the same ranking as before."""
        return self.scaled(self.calibration(reference))

    def __call__(self, qids: list[str], pids: list[str], group: int) -> torch.Tensor:
        if len(pids) != len(qids) * group:
            raise ValueError(f"expected {len(qids)} x {group} pids, got {len(pids)}")
        out = np.zeros((len(qids), group), dtype=np.float32)              # (B, G)
        for i, qid in enumerate(qids):
            known = self.scores.get(qid, {})
            for j, pid in enumerate(pids[i * group:(i + 1) * group]):
                if pid not in known:
                    raise KeyError(f"teacher {self.name!r} never scored ({qid!r}, "
                                   f"{pid!r}): build its PairTargets from the "
                                   "pairs of these batches (batch_pairs)")
                out[i, j] = known[pid]
        return torch.from_numpy(out)


def ensemble(targets: list[PairTargets], name: str = "ensemble") -> PairTargets:
    """The mean of several teachers' scores of the same pairs (calibrate them
    to common units first, :meth:`PairTargets.calibrated_to`).

    Raises:
        ValueError: the teachers did not score the same pairs.
    """
    first = targets[0].scores
    for t in targets[1:]:
        if t.scores.keys() != first.keys() or any(
                t.scores[q].keys() != v.keys() for q, v in first.items()):
            raise ValueError(f"teachers {targets[0].name!r} and {t.name!r} scored "
                             "different pairs: score the same batch_pairs")
    return PairTargets({q: {p: float(np.mean([t.scores[q][p] for t in targets]))
                            for p in v} for q, v in first.items()}, name)
