"""How long each chapter takes to run, per profile: measured, stored,
shown in its header.

``python3 tasks.py execute`` times every notebook it runs and records the wall
time in ``results/runtimes.json`` (chapter -> profile -> seconds and machine);
each chapter's header prints :func:`runtime_line` from it, so the run time a
reader is promised is the one measured, not a guess. A notebook executed by
nbclient also carries the timing in its cells' metadata
(:func:`notebook_seconds`).

Example::

    >>> runtime_line("99_none", runtimes={})
    'Run time: not measured yet (run `python3 tasks.py execute`).'
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path

from .atomic import atomic_write_text
from .paths import REPO_ROOT

__all__ = ["runtimes_path", "notebook_seconds", "load_runtimes", "record_runtime",
           "runtime_line"]


def runtimes_path() -> Path:
    """``$MINIDR_RESULTS/runtimes.json`` or ``<repo>/results/runtimes.json``."""
    env = os.environ.get("MINIDR_RESULTS")
    return (Path(env) if env else REPO_ROOT / "results") / "runtimes.json"


def notebook_seconds(nb) -> float | None:
    """Wall time of an executed notebook, from its cells' execution timestamps."""
    stamps = []
    for cell in nb["cells"]:
        timing = cell.get("metadata", {}).get("execution", {})
        for key in ("iopub.execute_input", "shell.execute_reply"):
            if key in timing:
                stamps.append(_dt.datetime.fromisoformat(
                    timing[key].replace("Z", "+00:00")))
    return (max(stamps) - min(stamps)).total_seconds() if len(stamps) >= 2 else None


def load_runtimes(path: str | os.PathLike | None = None) -> dict:
    """chapter -> profile -> ``{"seconds", "machine", "date"}``."""
    path = Path(path or runtimes_path())
    return json.loads(path.read_text()) if path.is_file() else {}


def record_runtime(chapter: str, profile: str, seconds: float,
                   path: str | os.PathLike | None = None) -> Path:
    """Store one chapter's measured run time under ``profile`` (atomically)."""
    path = Path(path or runtimes_path())
    table = load_runtimes(path)
    table.setdefault(chapter, {})[profile] = {
        "seconds": round(float(seconds), 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "date": _dt.date.today().isoformat()}
    return atomic_write_text(path, json.dumps(table, indent=2, sort_keys=True) + "\n")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def runtime_line(chapter: str, runtimes: dict | None = None) -> str:
    """One sentence for a chapter header: its measured run time under each profile."""
    table = load_runtimes() if runtimes is None else runtimes
    measured = table.get(chapter, {})
    if not measured:
        return "Run time: not measured yet (run `python3 tasks.py execute`)."
    order = ["ci", "cpu", "gpu", "colab"]
    parts = [f"{p} {_minutes(measured[p]['seconds'])} ({measured[p]['machine']})"
             for p in sorted(measured,
                             key=lambda p: order.index(p) if p in order else 9)]
    return "Run time, measured: " + "; ".join(parts) + "."
