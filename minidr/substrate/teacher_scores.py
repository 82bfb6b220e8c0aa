"""The teacher's top-k passages and scores for every training query,
made once and committed.

Encodes the corpus and the 394 labeled + 49,045 unlabeled training queries with
the teacher (all-MiniLM-L6-v2), searches exactly (faiss, inner product of unit
vectors = cosine) and writes :data:`~minidr.data.teacher_scores.SCORES_FILE`
with a card. On 2 CPU cores the corpus encode is the expensive part (about 13
minutes); on a GPU the whole command takes minutes::

    python -m minidr teacher-scores --k 50

The cost (seconds, passages and queries encoded, hardware) is kept in the
file's metadata, so every method that uses the scores can charge it.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from ..core.atomic import atomic_write_text
from ..core.cost import CostMeter
from ..data.formats import corpus_fingerprint
from ..data.teacher_scores import SCORES_FILE, TeacherScores, write_teacher_scores
from ..models.teacher import TEACHER, load_teacher
from ..retrieval.dense import encode_corpus
from ..retrieval.embedding_cache import cached_embeddings, corpus_cache_key

__all__ = ["training_queries", "score_queries", "build_teacher_scores"]


def training_queries(data) -> dict[str, str]:
    """Every training query: the labeled ``train`` split, then the unlabeled ones."""
    return {**data.splits["train"].queries, **data.unlabeled_queries}


def score_queries(teacher, corpus_ids: list[str], corpus_emb: np.ndarray,
                  queries: dict[str, str], k: int = 50,
                  cost: CostMeter | None = None) -> TeacherScores:
    """Each query's exact top-``k`` passages under ``teacher``.

    Args:
        teacher: a bi-encoder with ``encode_queries`` (unit-length embeddings).
        corpus_ids: pids, one per row of ``corpus_emb``.
        corpus_emb: (N, H) passage embeddings by the same teacher.
        queries: qid -> text.
        k: passages kept per query.
        cost: charged ``queries_encoded``.

    Shapes:
        corpus_emb (N, H); query embeddings (Q, H); returned pids, scores (Q, k).
    """
    if k < 2 or k > len(corpus_ids):
        raise ValueError(f"k must be in [2, {len(corpus_ids)}], got {k}")
    emb = np.ascontiguousarray(corpus_emb, dtype=np.float32)               # (N, H)
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    q_emb = teacher.encode_queries(list(queries.values()))                 # (Q, H)
    if cost is not None:
        cost.add(queries_encoded=len(queries))
    # (Q, k)
    scores, rows = index.search(np.ascontiguousarray(q_emb, dtype=np.float32), k)
    pids = np.array([int(p) for p in corpus_ids], dtype=np.int64)[rows]   # (Q, k)
    return TeacherScores(np.array([int(q) for q in queries], dtype=np.int64),
                         pids.astype(np.int32), scores.astype(np.float16))


def build_teacher_scores(data, out_dir: str | Path, k: int = 50, teacher=None) -> Path:
    """Score every training query with the teacher; write the file and its card.

    Args:
        data: a :class:`~minidr.data.minimarco.MiniMarco`
            (the full slice for the shipped file).
        out_dir: destination folder (``data/teacher``).
        k: passages kept per query.
        teacher: the scoring bi-encoder (default:
            :func:`~minidr.models.teacher.load_teacher`).

    Returns:
        The written file.
    """
    out_dir = Path(out_dir)
    cost = CostMeter()
    start = time.time()
    name = TEACHER if teacher is None else (getattr(teacher, "name_or_path", "")
                                            or type(teacher).__name__)
    with cost:
        teacher = teacher or load_teacher()
        # (N, H): timed
        emb = encode_corpus(teacher, data.corpus, cache=False, cost=cost)
        # kept, so that chapters searching with the teacher do not encode it again
        cached_embeddings(corpus_cache_key(teacher, data.corpus), lambda: emb)
        scores = score_queries(teacher, list(data.corpus), emb, training_queries(data),
                               k, cost)
    summary = cost.summary()
    device = (("CUDA " + torch.cuda.get_device_name()) if torch.cuda.is_available()
              else "CPU")
    meta = {"teacher": name, "k": k, "queries": len(scores),
            "slice": data.slice_name,
            "corpus_fingerprint": corpus_fingerprint(data.corpus),
            "seconds": round(cost.seconds, 1),
            "passages_encoded": summary.get("passages_encoded", 0),
            "queries_encoded": summary.get("queries_encoded", 0),
            "hardware": f"{platform.machine()}, "
                        f"{torch.get_num_threads()} torch threads, {device}",
            "torch": torch.__version__}
    scores = TeacherScores(scores.qids, scores.pids, scores.scores, meta)
    path = write_teacher_scores(out_dir / SCORES_FILE, scores)
    size_mb = path.stat().st_size / 2**20
    atomic_write_text(out_dir / "SCORES.md", f"""\
# Teacher scores of every training query

`{SCORES_FILE}` ({size_mb:.1f} MB): for each of the {len(scores):,} MS MARCO training
queries of MiniMARCO ({len(data.splits['train'].queries)} labeled + \
{len(data.unlabeled_queries):,}
unlabeled; {data.slice_name} slice), the top-{k} MiniMARCO passages of the teacher
`{meta['teacher']}` and their cosine scores, best first (exact search). Query ids int64,
passage ids int32, scores float16. Read it with \
`minidr.data.teacher_scores.load_teacher_scores()`.

Made by `python -m minidr teacher-scores --k {k}` in {time.time() - start:.0f} s wall
({meta['seconds']:.0f} s metered; {meta['passages_encoded']:,} passages and
{meta['queries_encoded']:,} queries encoded; {meta['hardware']}, torch {meta['torch']}).
Every method that trains on these scores charges this cost in its results record.

The teacher saw MS MARCO training data (never TREC DL 2019 or our dev queries): \
a student
distilled from it learns from a model that has read more MS MARCO than the student has.
The book marks every such result (`teacher_labels: true`).
""")
    return path
