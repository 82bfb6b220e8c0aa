"""File formats of MS MARCO and TREC, read strictly and written atomically.

A malformed line is an error that names the file and the line number, never a
silent skip: a truncated download should stop the book, not shift its numbers.

Types used across the package (plain dicts, the format ir_measures and
pytrec_eval take directly)::

    Queries = dict[str, str]             # qid -> text
    Corpus  = dict[str, str]             # pid -> text
    Qrels   = dict[str, dict[str, int]]  # qid -> pid -> grade
    Run     = dict[str, dict[str, float]]  # qid -> pid -> score
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from ..core.atomic import atomic_write_text

__all__ = ["corpus_fingerprint", "Queries", "Corpus", "Qrels", "Run", "DataFormatError",
           "read_id_text_tsv", "read_qrels", "read_trec_run", "write_trec_run", "rank"]

Queries = dict[str, str]
Corpus = dict[str, str]
Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


class DataFormatError(ValueError):
    """A data file does not have the format it should;
    the message names file and line."""


_DATA_ADVICE = ("The file looks truncated or corrupted: copy it again from its source "
                "(see the README of the data directory).")


def _bad(path, lineno: int, expected: str, line: str,
         advice: str | None = None) -> DataFormatError:
    return DataFormatError(
        f"{path}:{lineno}: expected {expected}, got {line[:120]!r}. "
        + (advice or _DATA_ADVICE)
    )


def _numbered_lines(path: str | os.PathLike) -> Iterable[tuple[int, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist "
                                "(expected a MiniMARCO data file)")
    with open(path, encoding="utf-8", newline="\n") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line:
                yield lineno, line


def read_id_text_tsv(path: str | os.PathLike, keep: set[str] | None = None,
                     advice: str | None = None) -> dict[str, str]:
    """Read ``id<TAB>text`` lines (collection.tsv, queries.*.tsv).

    Args:
        path: the TSV file.
        keep: if given, only these ids are kept (the whole file is still checked).
        advice: what the error message tells the reader to do about a malformed
            line (default: copy the data file again from its source).

    Returns:
        id -> text, in file order.

    Raises:
        DataFormatError: a line without a tab, with an empty or non-numeric id.
    """
    out: dict[str, str] = {}
    for lineno, line in _numbered_lines(path):
        pid, sep, text = line.partition("\t")
        if not sep or not pid.isdigit():
            raise _bad(path, lineno, "'<numeric id>\\t<text>'", line, advice)
        if keep is None or pid in keep:
            out[pid] = text
    return out


def read_qrels(path: str | os.PathLike, keep: set[str] | None = None,
               advice: str | None = None) -> Qrels:
    """Read TREC qrels ``qid iter pid grade`` (tabs or spaces).

    Args:
        path: the qrels file.
        keep: if given, only these query ids are kept.
        advice: what the error message says to do about a malformed line
            (default: copy the data file again from its source).

    Returns:
        qid -> pid -> grade.
    """
    out: Qrels = {}
    for lineno, line in _numbered_lines(path):
        parts = line.split()
        try:
            qid, _, pid, grade = parts
            grade = int(grade)
        except ValueError:
            raise _bad(path, lineno, "'qid iter pid grade' with an integer grade", line,
                       advice) from None
        if keep is None or qid in keep:
            out.setdefault(qid, {})[pid] = grade
    return out


def read_trec_run(path: str | os.PathLike, advice: str | None = None) -> Run:
    """Read a TREC run ``qid Q0 pid rank score tag``; returns qid -> pid -> score.

    ``advice``: what the error message says to do about a malformed line
    (default: copy the data file again from its source).
    """
    out: Run = {}
    for lineno, line in _numbered_lines(path):
        parts = line.split()
        try:
            qid, _, pid, _, score, _ = parts
            out.setdefault(qid, {})[pid] = float(score)
        except ValueError:
            raise _bad(path, lineno, "'qid Q0 pid rank score tag'", line,
                       advice) from None
    return out


def rank(run: Run, k: int | None = None) -> dict[str, list[str]]:
    """Order each query's passages by score (ties broken by pid), top ``k``."""
    return {qid: [p for p, _ in sorted(docs.items(),
                                       key=lambda kv: (-kv[1], kv[0]))][:k]
            for qid, docs in run.items()}


def write_trec_run(run: Run, path: str | os.PathLike, tag: str = "minidr",
                   k: int | None = None) -> Path:
    """Write ``run`` as a TREC run file (atomically), ranks 1..k per query."""
    lines = []
    for qid, ranked in rank(run, k).items():
        for r, pid in enumerate(ranked, 1):
            lines.append(f"{qid} Q0 {pid} {r} {run[qid][pid]:.6f} {tag}\n")
    return atomic_write_text(path, "".join(lines))


def corpus_fingerprint(corpus: Corpus) -> str:
    """A short hash of the corpus' ids and texts, in order:
    the cache key of its indexes."""
    h = hashlib.sha256()
    # length-prefixed: no separator can be forged by a text
    for pid, text in corpus.items():
        for field in (pid.encode(), text.encode()):
            h.update(len(field).to_bytes(8, "little"))
            h.update(field)
    return h.hexdigest()[:16]
