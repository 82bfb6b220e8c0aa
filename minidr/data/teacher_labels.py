"""The teacher's labels of training queries on disk: a strict TSV reader and writer.

A labels file (``data/teacher/minilm-train-labels.tsv``) holds, for each
unlabeled training query the teacher was confident about, its top-1 passage,
score and margin over the top-2 (see :mod:`minidr.substrate.teacher_labels`).
Chapters read it with :func:`load_teacher_labels`.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd

from ..core.atomic import atomic_write_text
from ..core.paths import teacher_dir
from .formats import DataFormatError

__all__ = ["LABEL_COLUMNS", "LABELS_FILE", "write_labels", "read_labels",
           "load_teacher_labels"]

LABEL_COLUMNS = ("qid", "pid", "score", "margin")
LABELS_FILE = "minilm-train-labels.tsv"
_HEADER = re.compile(r"# teacher=(?P<teacher>[^,\t]+), "
                     r"min_margin=(?P<min_margin>[^,]+), "
                     r"queries=(?P<queries>\d+), kept=(?P<kept>\d+)")


def load_teacher_labels(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The committed teacher labels (``data/teacher/minilm-train-labels.tsv``),
    validated.

    Args:
        path: another labels file (default: the committed one).

    Returns:
        ``DataFrame[qid, pid, score, margin]``, see :func:`read_labels`.
    """
    return read_labels(path or teacher_dir() / LABELS_FILE)


def write_labels(df: pd.DataFrame, path: str | os.PathLike, teacher: str | None = None,
                 min_margin: float | None = None, queries: int | None = None) -> Path:
    """Write labels as TSV (atomically): a
    ``# teacher=..., min_margin=..., queries=..., kept=...`` line, a column header, then
    ``qid pid score margin`` rows.

    ``teacher``, ``min_margin`` and ``queries`` default to ``df.attrs`` (set by
    :func:`label_queries`).
    """
    meta = {"teacher": teacher, "min_margin": min_margin, "queries": queries}
    meta = {k: df.attrs.get(k) if v is None else v for k, v in meta.items()}
    missing = [k for k, v in meta.items() if v is None]
    if missing:
        raise ValueError(f"write_labels needs {missing}: pass them, "
                         "or use the DataFrame label_queries returned")
    if list(df.columns) != list(LABEL_COLUMNS):
        raise ValueError(f"expected columns {list(LABEL_COLUMNS)}, "
                         f"got {list(df.columns)}")
    lines = [f"# teacher={meta['teacher']}, min_margin={float(meta['min_margin']):g}, "
             f"queries={int(meta['queries'])}, kept={len(df)}\n",
             "\t".join(LABEL_COLUMNS) + "\n"]
    for qid, pid, score, margin in df.itertuples(index=False):
        if any(c in f"{qid}{pid}" for c in "\t\n\r "):
            raise ValueError(f"ids must not contain whitespace: {qid!r}, {pid!r}")
        lines.append(f"{qid}\t{pid}\t{score:.6f}\t{margin:.6f}\n")
    return atomic_write_text(path, "".join(lines))


def _bad(path, lineno: int, expected: str, line: str) -> DataFormatError:
    return DataFormatError(f"{path}:{lineno}: expected {expected}, got {line[:120]!r}. "
                           "The labels file is truncated or was edited: "
                           "re-create it with label_queries and write_labels.")


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
        raise FileNotFoundError(f"{path} does not exist "
                                "(expected a teacher labels file)")
    rows, seen, header = [], set(), None
    with open(path, encoding="utf-8", newline="\n") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if lineno == 1:
                header = _HEADER.fullmatch(line)
                if not header:
                    raise _bad(path, 1, "'# teacher=..., min_margin=..., "
                                        "queries=N, kept=N'", line)
            elif lineno == 2:
                if line != "\t".join(LABEL_COLUMNS):
                    raise _bad(path, 2, repr("\t".join(LABEL_COLUMNS)), line)
            elif line:
                parts = line.split("\t")
                try:
                    qid, pid, score, margin = parts
                    score, margin = float(score), float(margin)
                except ValueError:
                    raise _bad(path, lineno, "'qid<TAB>pid<TAB>score<TAB>margin'",
                               line) from None
                if (not qid or not pid or " " in qid + pid
                        or not math.isfinite(score + margin) or margin < 0):
                    raise _bad(path, lineno,
                               "non-empty ids, finite scores and a margin >= 0", line)
                if qid in seen:
                    raise _bad(path, lineno,
                               f"one label per query, but qid {qid} is repeated", line)
                seen.add(qid)
                rows.append((qid, pid, score, margin))
    if header is None:
        raise DataFormatError(f"{path} is empty (expected a teacher labels file)")
    if len(rows) != int(header["kept"]):
        raise DataFormatError(f"{path}: the header says kept={header['kept']} "
                              f"but there are {len(rows)} rows: the file is truncated. "
                              "Re-create it with label_queries and write_labels.")
    df = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    df.attrs.update(teacher=header["teacher"], min_margin=float(header["min_margin"]),
                    queries=int(header["queries"]))
    return df
