"""The results registry: one JSON record per (chapter, method, profile).

Every chapter ends by calling :func:`record_result`; the leaderboard chapter
reads them all back with :func:`load_results`. A record carries what is needed
to trust and reproduce the number: metrics per split, the profile, the cost,
the parameters, library versions, the git commit and the data source.

Records live in ``results/`` at the repository root (``$MINIDR_RESULTS``
overrides), named ``<chapter>__<method>__<profile>.json``, written atomically.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

from .atomic import atomic_write_text
from .paths import REPO_ROOT

__all__ = ["results_dir", "record_result", "load_results", "leaderboard", "environment"]

_PACKAGES = ("minidr", "torch", "transformers", "pyserini", "faiss-cpu", "ir_measures",
             "numpy", "pandas")


def results_dir() -> Path:
    """``$MINIDR_RESULTS`` or ``<repo>/results``."""
    env = os.environ.get("MINIDR_RESULTS")
    return Path(env) if env else REPO_ROOT / "results"


# What executing the chapters writes: records, run times, and the notebooks' own
# outputs (an executed notebook is committed with the code that produced them).
_OUTPUTS = (":(exclude)results", ":(exclude)notebooks")


def _git_commit() -> str | None:
    """The code's commit; ``-dirty`` if a tracked file outside the outputs changed."""
    repo = REPO_ROOT
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no", "--", ".", *_OUTPUTS],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment() -> dict:
    """Versions, platform and commit: recorded with every result."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.machine(), "cpus": os.cpu_count(),
            "versions": versions, "git_commit": _git_commit()}


def record_result(chapter: str, method: str, metrics: dict[str, dict[str, float]],
                  profile, cost: dict | None = None, params: dict | None = None,
                  teacher_labels: bool = False, data_source: str = "",
                  curve: list[dict] | None = None,
                  directory: str | os.PathLike | None = None) -> Path:
    """Write one result record and return its path.

    Args:
        chapter: e.g. ``"01_bm25"``.
        method: e.g. ``"BM25 (k1=0.9, b=0.4)"``.
        metrics: ``{split: {measure: value}}``, e.g. from
            :func:`minidr.evaluation.metrics.evaluate_splits`.
        profile: a :class:`~minidr.core.config.Profile` or its name.
        cost: from :meth:`minidr.core.cost.CostMeter.summary`.
        params: hyper-parameters worth reproducing.
        teacher_labels: whether training used teacher-labeled queries.
        data_source: where MiniMARCO came from (``MiniMarco.source``).
        curve: quality measured during training, one dict per point, e.g.
            ``{"step": 100, "seconds": 412.0, "dl19 nDCG@10": 0.31}`` (the
            efficiency plots of chapters 05-07 compare methods on it).
    """
    profile_name = getattr(profile, "name", profile)
    record = {"chapter": chapter, "method": method, "profile": profile_name,
              "metrics": metrics, "cost": cost or {}, "params": params or {},
              "teacher_labels": teacher_labels, "data_source": data_source,
              "curve": curve or [],
              "created":
                  _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              **environment()}
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in method).strip("-")
    path = Path(directory or results_dir()) / f"{chapter}__{slug}__{profile_name}.json"
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=False) + "\n")
    return path


def load_results(directory: str | os.PathLike | None = None) -> list[dict]:
    """All records, sorted by chapter then method."""
    root = Path(directory or results_dir())
    # <chapter>__<method>__<profile>
    records = [json.loads(p.read_text(encoding="utf-8"))
               for p in sorted(root.glob("*__*__*.json"))]
    return sorted(records, key=lambda r: (r["chapter"], r["method"], r["profile"]))


def leaderboard(directory: str | os.PathLike | None = None, profile: str | None = None,
                columns=(("dl19", "nDCG@10"), ("dev", "MRR@10"),
                         ("dev", "R@100"))) -> pd.DataFrame:
    """One row per record: chosen metrics, cost and provenance.

    Args:
        directory: the results folder (default :func:`results_dir`).
        profile: keep only this profile's records.
        columns: ``(split, measure)`` pairs to show.
    """
    rows = []
    for r in load_results(directory):
        if profile and r["profile"] != profile:
            continue
        row = {"chapter": r["chapter"], "method": r["method"], "profile": r["profile"]}
        for split, measure in columns:
            row[f"{split} {measure}"] = r["metrics"].get(split, {}).get(measure)
        row["wall s"] = r["cost"].get("wall_seconds")
        # what the teacher cost: its stored scores (paid once for every chapter
        # that uses them) plus the chapter's own teacher runs, if any
        spent = [r["cost"][k] for k in ("teacher_scores_seconds", "teacher_seconds")
                 if r["cost"].get(k) is not None]
        row["teacher s"] = sum(spent) if spent else None
        row["teacher labels"] = r.get("teacher_labels", False)
        row["commit"] = r.get("git_commit")
        rows.append(row)
    return pd.DataFrame(rows)
