"""The MiniMARCO subset definition: which passages and queries, by id.

The id lists are committed under ``data/minimarco/`` so that the offline
directory route and the ir_datasets download route select *the same* corpus
and queries. This module reads them, and rebuilds them (once, by a maintainer)
from the shared MiniMARCO directory::

    python -m minidr subset --data ../shared/data/msmarco-passage

The ``ci`` slice is a few thousand passages that contain every judged-relevant
passage of the queries it keeps, plus BM25 candidates and random distractors,
so that the same chapters run end to end in CI in minutes.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_write_text

__all__ = ["SubsetIds", "ids_dir", "read_ids", "build_ids", "SPLITS"]

SPLITS = ("train", "dl19", "dev")
# How many queries of each split the ci slice keeps, and its corpus size.
CI_QUERIES = {"train": 100, "dl19": 12, "dev": 100}
CI_UNLABELED = 1000
CI_PASSAGES = 3000
CI_BM25_DEPTH = 20


def ids_dir() -> Path:
    """``data/minimarco`` of the repository this package was installed from."""
    here = Path(__file__).resolve().parent.parent / "data" / "minimarco"
    if not here.is_dir():
        raise FileNotFoundError(
            f"{here} not found: minidr reads its subset id lists from the repository's data/ "
            "folder. Install it from a clone: `git clone <repo> && pip install -e <repo>`."
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


def build_ids(data_dir, out: Path | None = None, seed: int = 0) -> Path:
    """Write the id lists derived from a MiniMARCO directory, and the ci slice.

    The ci recipe: sample ``CI_QUERIES`` queries per split; keep every passage
    judged relevant for them, the BM25 top-``CI_BM25_DEPTH`` of the dl19 and dev
    queries (from the published runs), then random passages up to ``CI_PASSAGES``.
    """
    from .data import derive_ids, load_minimarco  # data imports this module

    out = out or ids_dir()
    ids = derive_ids(data_dir)
    atomic_write_text(out / "pids.txt", "\n".join(ids.pids) + "\n")
    atomic_write_text(out / "train.tsv", "".join(f"{q}\t{o}\n" for q, o in ids.train_origin.items()))
    for name in ("dl19", "dev"):
        atomic_write_text(out / f"{name}.txt", "\n".join(ids.queries[name]) + "\n")
    atomic_write_text(out / "unlabeled.txt", "\n".join(ids.unlabeled) + "\n")

    data = load_minimarco(data_dir, "full")
    rng = random.Random(seed)
    s = data.splits
    kept = {name: sorted(rng.sample(sorted(s[name].queries), CI_QUERIES[name])) for name in SPLITS}
    pids: set[str] = set()
    for name in SPLITS:
        for q in kept[name]:
            pids |= {p for p, g in s[name].qrels.get(q, {}).items() if g >= 1 and p in data.corpus}
    for name, run in (("dl19", data.runs["dl19.bm25"]), ("dev", data.runs["dev-small.bm25-top20"])):
        for q in kept[name]:
            ranked = sorted(run.get(q, {}).items(), key=lambda kv: -kv[1])[:CI_BM25_DEPTH]
            pids |= {p for p, _ in ranked if p in data.corpus}
    rest = sorted(set(data.corpus) - pids)
    pids |= set(rng.sample(rest, max(0, CI_PASSAGES - len(pids))))
    ordered = [p for p in data.corpus if p in pids]  # keep the collection's order
    unlabeled = sorted(rng.sample(sorted(data.unlabeled_queries), CI_UNLABELED), key=int)
    atomic_write_text(out / "ci.json", json.dumps(
        {"recipe": {"seed": seed, "queries": CI_QUERIES, "passages": CI_PASSAGES,
                    "bm25_depth": CI_BM25_DEPTH, "unlabeled": CI_UNLABELED},
         "queries": kept, "unlabeled": unlabeled, "pids": ordered}) + "\n")
    return out
