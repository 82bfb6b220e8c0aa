"""Where things live: the repository's committed data, and the cache.

One home for every path, so no module computes ``Path(__file__).parent.parent``
itself. Committed artifacts (subset ids, backbones, teacher files, results)
live in the repository the package was installed from (an editable install,
as the README and the Colab setup cell do); caches live under
``$MINIDR_CACHE`` (default ``~/.cache/minidr``).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "repo_data_dir", "models_dir", "teacher_dir", "cache_root"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def repo_data_dir() -> Path:
    """``<repo>/data``: subset ids, published runs, backbones, teacher files."""
    return REPO_ROOT / "data"


def models_dir() -> Path:
    """``<repo>/data/models``: the offline backbones and shared models."""
    return repo_data_dir() / "models"


def teacher_dir() -> Path:
    """``<repo>/data/teacher``:
    the teacher's labels (and scores) of training queries."""
    return repo_data_dir() / "teacher"


def cache_root() -> Path:
    """Where indexes, embeddings and trained models are cached.

    ``$MINIDR_CACHE`` or ``~/.cache/minidr``.
    """
    return Path(os.environ.get("MINIDR_CACHE") or Path.home() / ".cache" / "minidr")
