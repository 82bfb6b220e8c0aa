"""The teacher's scores of every training query, on disk: top-k passages and scores.

Distillation (Margin-MSE, KL), RocketQA's denoising and TAS-B's balanced
sampling all need to know what the teacher thinks of many passages per
training query, not only its top-1 label. ``data/teacher/minilm-train-top50.npz``
holds, for each of the 49,439 training queries (394 labeled + 49,045
unlabeled), the teacher's top-``k`` MiniMARCO passages and their cosine
scores, best first: query ids as int64, passage ids as int32, scores as
float16 (about 15 MB). :meth:`TeacherScores.labels` turns it into the hard
labels at a margin (:mod:`minidr.data.teacher_labels` holds the calibrated
view), :meth:`TeacherScores.run` into a run for any subset of queries and
passages (e.g. the ``ci`` slice).

Example::

    scores = load_teacher_scores()                 # validated; clear error if damaged
    scores.k, len(scores)                          # (50, 49439)
    # qid -> {pid: score}
    run = scores.run(corpus=mm.corpus, queries=mm.unlabeled_queries)
    labels = scores.labels(min_margin=0.15)        # DataFrame[qid, pid, score, margin]
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import atomic_file
from ..core.paths import teacher_dir
from .formats import DataFormatError, Run
from .teacher_labels import LABEL_COLUMNS

__all__ = ["SCORES_FILE", "TeacherScores", "write_teacher_scores",
           "read_teacher_scores", "load_teacher_scores"]

SCORES_FILE = "minilm-train-top50.npz"
_ARRAYS = ("qids", "pids", "scores", "meta")


@dataclass(frozen=True)
class TeacherScores:
    """Each query's top-``k`` passages and teacher scores, best first.

    Attributes:
        qids: (n,) int64 query ids.
        pids: (n, k) int32 passage ids, best first.
        scores: (n, k) float16 cosine scores, non-increasing along each row.
        meta: how it was made: teacher, k, corpus fingerprint, cost, hardware.
    """

    qids: np.ndarray
    pids: np.ndarray
    scores: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.qids)

    @property
    def k(self) -> int:
        return self.pids.shape[1]

    def row_of(self) -> dict[str, int]:
        """qid (as text) -> its row in ``pids`` and ``scores``."""
        return {str(q): i for i, q in enumerate(self.qids)}

    def run(self, corpus=None, queries=None, k: int | None = None) -> Run:
        """The scores as a run: ``qid -> {pid: score}``.

        Args:
            corpus: keep only passages in it (e.g. the ``ci`` slice's corpus).
            queries: keep only these query ids (a mapping or set).
            k: keep each query's first ``k`` (after filtering by ``corpus``).
        """
        keep_q = None if queries is None else {str(q) for q in queries}
        run: Run = {}
        for qid, pids, scores in zip(self.qids, self.pids, self.scores):
            q = str(qid)
            if keep_q is not None and q not in keep_q:
                continue
            row = {str(p): float(s) for p, s in zip(pids, scores)
                   if corpus is None or str(p) in corpus}
            run[q] = dict(list(row.items())[:k]) if k else row
        return run

    def labels(self, min_margin: float, queries=None) -> pd.DataFrame:
        """Hard labels: the top-1 passage where top1 - top2 >= ``min_margin``.

        The same rule as :func:`minidr.substrate.teacher_labels.label_queries`,
        on float16 scores (margins rounded to about 1e-3).

        Returns:
            ``DataFrame[qid, pid, score, margin]`` in the stored query order.
        """
        margin = (self.scores[:, 0].astype(np.float64)
                  - self.scores[:, 1].astype(np.float64))
        keep = margin >= min_margin
        if queries is not None:
            wanted = {str(q) for q in queries}
            keep &= np.array([str(q) in wanted for q in self.qids])
        df = pd.DataFrame({"qid": self.qids[keep].astype(str),
                           "pid": self.pids[keep, 0].astype(str),
                           "score": self.scores[keep, 0].astype(np.float64),
                           "margin": margin[keep]}, columns=list(LABEL_COLUMNS))
        df.attrs.update(teacher=self.meta.get("teacher", ""),
                        min_margin=float(min_margin), queries=int(keep.size))
        return df.reset_index(drop=True)


def write_teacher_scores(path: str | os.PathLike, scores: TeacherScores) -> Path:
    """Write compressed arrays and the metadata (JSON), atomically."""
    _validate(scores, Path(path))
    meta = np.frombuffer(json.dumps(scores.meta, sort_keys=True).encode(),
                         dtype=np.uint8)
    with atomic_file(path) as f:
        np.savez_compressed(f, qids=scores.qids.astype(np.int64),
                            pids=scores.pids.astype(np.int32),
                            scores=scores.scores.astype(np.float16), meta=meta)
    return Path(path)


def _bad(path: Path, what: str) -> DataFormatError:
    return DataFormatError(f"{path}: {what}. The teacher-scores file is damaged or was "
                           "made by another version: re-create it with "
                           "`python -m minidr teacher-scores`.")


def _validate(s: TeacherScores, path: Path) -> None:
    n = len(s.qids)
    if (s.qids.ndim != 1 or s.pids.shape != s.scores.shape or s.pids.ndim != 2
            or len(s.pids) != n):
        raise _bad(path, f"inconsistent shapes qids {s.qids.shape}, "
                         f"pids {s.pids.shape}, scores {s.scores.shape}")
    if s.pids.shape[1] < 2:
        raise _bad(path, "fewer than 2 passages per query")
    if len(np.unique(s.qids)) != n:
        raise _bad(path, "a query id is repeated")
    if not np.isfinite(s.scores.astype(np.float32)).all():
        raise _bad(path, "non-finite scores")
    if (np.diff(s.scores.astype(np.float32), axis=1) > 1e-3).any():
        raise _bad(path, "scores are not sorted best first")
    expected = s.meta.get("queries")
    if expected is not None and expected != n:
        raise _bad(path, f"the metadata says {expected} queries but there are {n} "
                         "(truncated?)")


def read_teacher_scores(path: str | os.PathLike) -> TeacherScores:
    """Read and validate a file written by :func:`write_teacher_scores`.

    Raises:
        FileNotFoundError: no such file (the message says how to make it).
        DataFormatError: unreadable, missing arrays, inconsistent or unsorted
            (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: make it with "
                                "`python -m minidr teacher-scores` (minutes on a GPU)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [a for a in _ARRAYS if a not in z.files]
            if missing:
                raise _bad(path, f"missing arrays {missing}")
            arrays = {a: z[a] for a in _ARRAYS}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        if isinstance(e, DataFormatError):
            raise
        raise _bad(path, f"cannot be read ({type(e).__name__}: {e})") from None
    try:
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad(path, "unreadable metadata") from None
    scores = TeacherScores(arrays["qids"], arrays["pids"], arrays["scores"], meta)
    _validate(scores, path)
    return scores


def load_teacher_scores(path: str | os.PathLike | None = None) -> TeacherScores:
    """The committed teacher scores (``data/teacher/minilm-train-top50.npz``),
    validated."""
    return read_teacher_scores(path or teacher_dir() / SCORES_FILE)
