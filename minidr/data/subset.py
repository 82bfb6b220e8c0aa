"""The MiniMARCO subset definition: which passages and queries, by id.

The id lists are committed under ``data/minimarco/`` so that the offline
directory route and the ir_datasets download route select *the same* corpus
and queries. This module reads them; :func:`minidr.data.minimarco.build_ids`
rebuilds them (once, by a maintainer) from the shared MiniMARCO directory::

    python -m minidr subset --data ../shared/data/msmarco-passage

The ``ci`` slice is a few thousand passages that contain every judged-relevant
passage of the queries it keeps, plus BM25 candidates and random distractors,
so that the same chapters run end to end in CI in minutes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..core.paths import repo_data_dir

__all__ = ["SubsetIds", "ids_dir", "read_ids", "SPLITS", "CI_QUERIES", "CI_UNLABELED",
           "CI_PASSAGES", "CI_BM25_DEPTH"]

SPLITS = ("train", "dl19", "dev")
# How many queries of each split the ci slice keeps, and its corpus size.
CI_QUERIES = {"train": 100, "dl19": 12, "dev": 100}
CI_UNLABELED = 1000
CI_PASSAGES = 3000
CI_BM25_DEPTH = 20


def ids_dir() -> Path:
    """``data/minimarco`` of the repository this package was installed from."""
    here = repo_data_dir() / "minimarco"
    if not here.is_dir():
        raise FileNotFoundError(
            f"{here} not found: minidr reads its subset id lists from the repository's "
            "data/ folder. Install it from a clone: "
            "`git clone <repo> && pip install -e <repo>`."
        )
    return here


@dataclass(frozen=True)
class SubsetIds:
    """Ids that define one slice of MiniMARCO.

    Attributes:
        pids: passage ids of the corpus, in a fixed order.
        queries: split name -> query ids (``train``, ``dl19``, ``dev``).
        train_origin: train query id -> ``"train"`` or ``"dev"`` (the official
            MS MARCO set it comes from; 29 labeled queries come from dev).
        unlabeled: train query ids with no judged positive in the corpus.
    """

    pids: list[str]
    queries: dict[str, list[str]]
    train_origin: dict[str, str]
    unlabeled: list[str]


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def read_ids(slice_name: str = "full") -> SubsetIds:
    """Read the committed id lists of ``"full"`` MiniMARCO or the ``"ci"`` slice."""
    root = ids_dir()
    origin = dict(line.split("\t") for line in _lines(root / "train.tsv"))
    full = SubsetIds(
        pids=_lines(root / "pids.txt"),
        queries={"train": list(origin), "dl19": _lines(root / "dl19.txt"),
                 "dev": _lines(root / "dev.txt")},
        train_origin=origin,
        unlabeled=_lines(root / "unlabeled.txt"),
    )
    if slice_name == "full":
        return full
    if slice_name != "ci":
        raise ValueError(f"unknown slice {slice_name!r}: use 'full' or 'ci'")
    ci = json.loads((root / "ci.json").read_text(encoding="utf-8"))
    return SubsetIds(pids=ci["pids"], queries=ci["queries"],
                     train_origin={q: origin[q] for q in ci["queries"]["train"]},
                     unlabeled=ci["unlabeled"])
