"""Teacher labels for the unlabeled training queries, with a measured calibration.

Only 394 training queries have a judged positive inside MiniMARCO. The other
49,045 MS MARCO training queries can still teach a retriever if a teacher
(all-MiniLM-L6-v2, see :mod:`minidr.models.teacher`) labels them: its top-1 passage
becomes the positive, **kept only when the teacher is confident**: the score
margin between its first and second passage is at least ``min_margin``.

The margin is calibrated on the 394 labeled queries: for each threshold, the
share of kept queries whose teacher top-1 is the judged positive. Two caveats,
written into the card: MS MARCO judgments are sparse (a top-1 that is not the
judged passage may still be relevant), so the precision is a lower bound on
those queries; and for the unlabeled queries the judged positive is *outside*
the subset by construction, so their labels are the best passage MiniMARCO
has, which may be less relevant than on the labeled queries.

Writes ``data/teacher/minilm-train-labels.tsv`` and a card ``README.md``::

    python -m minidr teacher-labels
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..core.atomic import atomic_write_text
from ..core.cost import CostMeter
from ..data.formats import Queries
from ..data.teacher_labels import LABEL_COLUMNS, LABELS_FILE, write_labels
from ..models.bi_encoder import BiEncoder
from ..models.teacher import TEACHER, load_teacher
from ..retrieval.dense import encode_corpus

__all__ = ["THRESHOLDS", "TARGET_PRECISION", "label_queries", "calibrate",
           "build_teacher_labels"]

THRESHOLDS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2)
# High on purpose: on labeled queries (whose positive is in the corpus) the teacher's
# top-1 is right ~90% of the time at any margin, but unlabeled queries lack their judged
# positive by construction. We keep only margins at which the teacher is as sure as it
# is when a positive exists, i.e. the subset holds a passage clearly better than all
# others.
TARGET_PRECISION = 0.95


def label_queries(teacher: BiEncoder, corpus_ids: Sequence[str], corpus_emb: np.ndarray,
                  queries: Queries, min_margin: float, k: int = 2,
                  batch_size: int = 256, progress: bool = True) -> pd.DataFrame:
    """Label each query with the teacher's top-1 passage where top1 - top2 >=
    ``min_margin``.

    Exact search (``faiss.IndexFlatIP``), so the result is a function of the
    inputs only. Ties (e.g. duplicate passages) have margin 0 and are dropped
    whenever ``min_margin > 0``.

    Args:
        teacher: the bi-encoder that encoded ``corpus_emb`` (it encodes the queries).
        corpus_ids: pids, one per row of ``corpus_emb``.
        corpus_emb: (n, H) passage embeddings from ``teacher.encode_passages``.
        queries: qid -> text.
        min_margin: the confidence threshold on ``score(top1) - score(top2)``.
        k: passages retrieved per query (>= 2; the margin uses the first two).

    Shapes:
        corpus_emb (n, H); query embeddings (m, H); search results (m, k).

    Returns:
        ``DataFrame[qid, pid, score, margin]``, one row per kept query, in the
        order of ``queries``; ``attrs`` holds ``teacher``, ``min_margin``, ``queries``.

    References:
        Qu et al., 2021, RocketQA, Sec. 4.3 (pseudo-labelled training queries).
    """
    import faiss

    corpus_ids = [str(p) for p in corpus_ids]
    emb = np.ascontiguousarray(corpus_emb, dtype=np.float32)          # (n, H)
    if emb.ndim != 2 or len(emb) != len(corpus_ids):
        raise ValueError(f"corpus_emb has shape {emb.shape} "
                         f"but there are {len(corpus_ids)} corpus ids")
    if k < 2 or len(corpus_ids) < 2:
        raise ValueError("a margin needs k >= 2 and at least 2 passages "
                         f"(k={k}, n={len(corpus_ids)})")
    qids = list(queries)
    q_emb = teacher.encode_queries([queries[q] for q in qids], batch_size=batch_size,
                                   progress=progress)                  # (m, H)
    if q_emb.shape[1] != emb.shape[1]:
        raise ValueError(f"query embeddings have {q_emb.shape[1]} dimensions, "
                         f"passages {emb.shape[1]}: "
                         "were the passages encoded by this teacher?")
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    # (m, k) each, best first
    scores, rows = index.search(q_emb, min(k, len(corpus_ids)))
    margin = scores[:, 0] - scores[:, 1]                               # (m,)
    keep = np.flatnonzero(margin >= min_margin)
    df = pd.DataFrame({"qid": [qids[i] for i in keep],
                       "pid": [corpus_ids[rows[i, 0]] for i in keep],
                       "score": scores[keep, 0].astype(np.float64),
                       "margin": margin[keep].astype(np.float64)},
                      columns=list(LABEL_COLUMNS))
    df.attrs.update(teacher=(getattr(teacher, "name_or_path", "")
                             or type(teacher).__name__),
                    min_margin=float(min_margin), queries=len(qids))
    return df


def calibrate(labeled: pd.DataFrame, qrels, unlabeled: pd.DataFrame) -> pd.DataFrame:
    """Precision on labeled queries and coverage of unlabeled ones,
    per margin threshold.

    Args:
        labeled, unlabeled: ``label_queries`` output with every query kept
            (margin >= -1).
        qrels: the train split's qrels (qid -> pid -> grade).
    """
    hit = np.array([qrels.get(q, {}).get(p, 0) > 0
                    for q, p in zip(labeled["qid"], labeled["pid"])])
    rows = []
    for t in THRESHOLDS:
        keep = labeled["margin"].to_numpy() >= t
        rows.append({"min_margin": t, "labeled kept": int(keep.sum()),
                     "precision (top-1 = judged positive)":
                         float(hit[keep].mean()) if keep.any() else np.nan,
                     "unlabeled kept": int((unlabeled["margin"] >= t).sum()),
                     "unlabeled coverage": float((unlabeled["margin"] >= t).mean())})
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                       for v in row) + " |")
    return "\n".join(lines)


def build_teacher_labels(data, out_dir: str | Path,
                         min_margin: float | None = None) -> Path:
    """Label ``data.unlabeled_queries`` with the teacher and write labels + card into
    ``out_dir``.

    Args:
        data: a :class:`~minidr.data.minimarco.MiniMarco`
            (the full slice for the shipped labels).
        out_dir: destination folder.
        min_margin: threshold; ``None`` picks the smallest threshold of
            :data:`THRESHOLDS` whose precision reaches :data:`TARGET_PRECISION`.
    """
    out_dir = Path(out_dir)
    cost = CostMeter()
    start = time.time()
    with cost:
        teacher = load_teacher()
        emb = encode_corpus(teacher, data.corpus, cost=cost)                  # (n, 384)
        ids = list(data.corpus)
        train = data.splits["train"]
        labeled = label_queries(teacher, ids, emb, train.queries, min_margin=-1.0)
        unlabeled = label_queries(teacher, ids, emb, data.unlabeled_queries,
                                  min_margin=-1.0)
        cost.add(queries_encoded=len(train) + len(data.unlabeled_queries))
    table = calibrate(labeled, train.qrels, unlabeled)
    if min_margin is None:
        good = table[table["precision (top-1 = judged positive)"] >= TARGET_PRECISION]
        min_margin = float(good["min_margin"].min()) if len(good) else THRESHOLDS[-1]
    kept = unlabeled[unlabeled["margin"] >= min_margin].reset_index(drop=True)
    write_labels(kept, out_dir / LABELS_FILE, teacher=TEACHER, min_margin=min_margin)
    summary = cost.summary()
    atomic_write_text(out_dir / "README.md", f"""\
# Teacher labels for MS MARCO training queries

`{LABELS_FILE}`: `qid  pid  score  margin` for {len(kept):,} of the
{len(unlabeled):,} MS MARCO training queries that have no judged positive in
MiniMARCO ({data.slice_name} slice). `pid` is the top-1 MiniMARCO passage of the teacher
`{TEACHER}` (cosine similarity `score`), kept when its margin over the second passage is
at least **{min_margin}**.

Made by `python -m minidr teacher-labels` ({time.time() - start:.0f} s wall;
{summary.get('passages_encoded', 0):,} passages and \
{summary.get('queries_encoded', 0):,}
queries encoded; {platform.machine()}, {torch.get_num_threads()} torch threads, \
torch {torch.__version__}).

## Calibration on the {len(train)} labeled training queries

The threshold is the smallest margin at which the teacher's top-1 is the judged positive
for at least {TARGET_PRECISION:.0%} of the labeled queries it keeps. The bar is high on
purpose: at any margin the teacher is right on most labeled queries, whose \
positive is in
the corpus; the unlabeled queries lack theirs, and a large margin is the sign that the
subset still holds a passage clearly better than all others.

{_markdown(table)}

Caveats. MS MARCO judgments are sparse: a top-1 that is not the judged passage \
may still be
relevant, so this precision is a lower bound. The unlabeled queries are unlabeled here
*because* their judged passage is outside MiniMARCO, so the teacher picks the \
best passage
the subset has: on them the labels are noisier than this table suggests. The teacher
(all-MiniLM-L6-v2) was itself trained on MS MARCO, so chapters that use these labels are
distilling a model that has seen more MS MARCO than our students: the book marks every
result that used them (`teacher_labels: true` in the results records).
""")
    return out_dir
