"""MiniMARCO: load the book's MS MARCO passage subset into plain structures.

Two routes give the same ids (committed under ``data/minimarco/``):

* **a directory** (``MINIDR_DATA`` or ``data_dir=``), e.g.
  ``../shared/data/msmarco-passage``: the offline route used by CI and laptops;
* **ir_datasets** (``msmarco-passage``), used when no directory is given: it
  downloads the full MS MARCO collection (about 1 GB, in Colab) and selects the
  subset's ids.

Splits (see ``data/README.md``):

=========  =========  ====================================================
split      queries    what
=========  =========  ====================================================
``train``  394        labeled training queries: 365 train + 29 dev (outside
                      dev.small), each with a judged positive in the corpus
``dl19``   43         TREC DL 2019, graded 0-3 (the primary test set)
``dev``    583        dev.small queries with a positive in the corpus
=========  =========  ====================================================

Example::

    >>> from minidr import load_minimarco
    >>> mm = load_minimarco(slice_name="ci")    # reads $MINIDR_DATA  # doctest: +SKIP
    >>> len(mm.corpus), len(mm.splits["dl19"].queries)    # doctest: +SKIP
    (3000, 12)
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..core.atomic import atomic_write_text
from .formats import (Corpus, Qrels, Queries, Run, corpus_fingerprint,
                      read_id_text_tsv, read_qrels, read_trec_run)
from .subset import (CI_BM25_DEPTH, CI_PASSAGES, CI_QUERIES, CI_UNLABELED, SPLITS,
                     SubsetIds, ids_dir, read_ids)

__all__ = ["Split", "MiniMarco", "load_minimarco", "DataNotFoundError", "derive_ids",
           "build_ids", "RUN_NAMES"]

RUN_NAMES = ("dl19.bm25", "dl19.bm25-rm3", "dl19.tasb", "dl19.ada2",
             "dl19.splade-pp-ed", "dl19.repllama", "dev-small.bm25-top20")

# Which official ir_datasets ids hold each split's queries and qrels.
IRDS = {"collection": "msmarco-passage", "train": "msmarco-passage/train",
        "train-dev": "msmarco-passage/dev", "dev": "msmarco-passage/dev/small",
        "dl19": "msmarco-passage/trec-dl-2019/judged"}


class DataNotFoundError(FileNotFoundError):
    """Neither a data directory nor the ir_datasets download is available."""


@dataclass(frozen=True)
class Split:
    """One query set with its judgments.

    Attributes:
        name: ``train``, ``dl19`` or ``dev``.
        queries: qid -> text.
        qrels: qid -> pid -> grade. ``dl19`` and ``dev`` keep the official
            judgments; ``train`` keeps only positives inside the corpus.
        min_rel: the grade from which a passage counts as relevant for binary
            measures (RR, recall): 2 on TREC DL (the track's convention), else 1.
    """

    name: str
    queries: Queries
    qrels: Qrels
    min_rel: int = 1

    def __len__(self) -> int:
        return len(self.queries)


@dataclass
class MiniMarco:
    """The corpus, the three splits, unlabeled training queries and published runs.

    Attributes:
        corpus: pid -> passage text, in the collection's order.
        splits: ``train`` / ``dl19`` / ``dev`` -> :class:`Split`.
        unlabeled_queries: train qid -> text for MS MARCO train queries with no
            judged positive in the corpus (for teacher labelling).
        runs: published first-stage runs, name -> run (``dl19.bm25`` ...).
        train_origin: train qid -> the official set it comes from.
        slice_name: ``"full"`` or ``"ci"``.
        source: where the data was read from.
    """

    corpus: Corpus
    splits: dict[str, Split]
    unlabeled_queries: Queries
    runs: dict[str, Run]
    train_origin: dict[str, str] = field(default_factory=dict)
    slice_name: str = "full"
    source: str = ""

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return (f"MiniMarco({self.slice_name}: {len(self.corpus):,} passages; {sizes}; "
                f"{len(self.unlabeled_queries):,} unlabeled; source={self.source})")


def _min_rel(split: str) -> int:
    return 2 if split == "dl19" else 1


def _local_files(root: Path) -> dict[str, Path]:
    return {"collection": root / "collection.tsv",
            "train_q": root / "queries.train.tsv",
            "train_qrels": root / "qrels.train.tsv",
            "dev_q": root / "queries.dev.tsv",
            "dev_qrels": root / "qrels.dev.tsv",
            "small_q": root / "queries.dev.small.tsv",
            "small_qrels": root / "qrels.dev.small.tsv",
            "dl19_q": root / "trec-dl-2019" / "queries.tsv",
            "dl19_qrels": root / "trec-dl-2019" / "qrels.txt", "runs": root / "runs"}


def _check_dir(root: Path) -> dict[str, Path]:
    files = _local_files(root)
    missing = [str(p.relative_to(root)) for p in files.values() if not p.exists()]
    if not root.is_dir() or missing:
        what = "does not exist" if not root.is_dir() else f"lacks {', '.join(missing)}"
        raise DataNotFoundError(
            f"MiniMARCO directory {root} {what}. Point MINIDR_DATA (or data_dir=) at a "
            "copy of msmarco-passage/ (see data/README.md), or unset it to download "
            "through ir_datasets."
        )
    return files


def _read_runs(runs_dir: Path) -> dict[str, Run]:
    return {name: read_trec_run(runs_dir / f"{name}.trec") for name in RUN_NAMES}


def _load_local(root: Path, ids: SubsetIds) -> tuple[Corpus, Queries, dict, dict, dict]:
    f = _check_dir(root)
    want = set(ids.pids)
    corpus_all = read_id_text_tsv(f["collection"], keep=want)
    missing = want - corpus_all.keys()
    if missing:
        raise DataNotFoundError(
            f"{f['collection']} lacks {len(missing):,} of the {len(want):,} passages "
            f"the subset lists (e.g. pid {min(missing)}): it is not the MiniMARCO "
            "collection, or it is truncated."
        )
    corpus = {p: corpus_all[p] for p in ids.pids}
    q_train_ids = ({q for q, o in ids.train_origin.items() if o == "train"}
                   | set(ids.unlabeled))
    q_dev_ids = {q for q, o in ids.train_origin.items() if o == "dev"}
    texts = {**read_id_text_tsv(f["train_q"], keep=q_train_ids),
             **read_id_text_tsv(f["dev_q"], keep=q_dev_ids)}
    qrels = {"train": {**read_qrels(f["train_qrels"], keep=q_train_ids),
                       **read_qrels(f["dev_qrels"], keep=q_dev_ids)},
             "dev": read_qrels(f["small_qrels"], keep=set(ids.queries["dev"])),
             "dl19": read_qrels(f["dl19_qrels"], keep=set(ids.queries["dl19"]))}
    texts.update(read_id_text_tsv(f["small_q"], keep=set(ids.queries["dev"])))
    texts.update(read_id_text_tsv(f["dl19_q"], keep=set(ids.queries["dl19"])))
    where = {("queries", "train"): f"{f['train_q']} / {f['dev_q']}",
             ("queries", "unlabeled"): str(f["train_q"]),
             ("queries", "dev"): str(f["small_q"]),
             ("queries", "dl19"): str(f["dl19_q"]),
             ("qrels", "dev"): str(f["small_qrels"]),
             ("qrels", "train"): f"{f['train_qrels']} / {f['dev_qrels']}",
             ("qrels", "dl19"): str(f["dl19_qrels"])}
    return corpus, texts, qrels, _read_runs(f["runs"]), where


def _ir_datasets_load(name: str):
    """``ir_datasets.load(name)``; a seam that tests replace with local fixtures."""
    import ir_datasets

    return ir_datasets.load(name)


def _load_ir_datasets(ids: SubsetIds) -> tuple[Corpus, Queries, dict, dict, dict]:
    """The download route: full MS MARCO through ir_datasets, then the subset's ids."""
    try:
        store = _ir_datasets_load(IRDS["collection"]).docs_store()
        docs = store.get_many(ids.pids)
        corpus = {p: docs[p].text for p in ids.pids}
        wanted = {"train": ({q for q, o in ids.train_origin.items() if o == "train"}
                            | set(ids.unlabeled)),
                  "train-dev": {q for q, o in ids.train_origin.items() if o == "dev"},
                  "dev": set(ids.queries["dev"]), "dl19": set(ids.queries["dl19"])}
        texts, qrels = {}, {"train": {}, "dev": {}, "dl19": {}}
        for key, qids in wanted.items():
            ds = _ir_datasets_load(IRDS[key])
            texts.update({q.query_id: q.text for q in ds.queries_iter()
                          if q.query_id in qids})
            target = qrels["train"] if key.startswith("train") else qrels[key]
            for r in ds.qrels_iter():
                if r.query_id in qids:
                    target.setdefault(r.query_id, {})[r.doc_id] = int(r.relevance)
    except Exception as e:  # offline, blocked, or a broken download
        raise DataNotFoundError(
            "MiniMARCO not found. Either set MINIDR_DATA to a local copy of "
            "msmarco-passage/ "
            "(e.g. export MINIDR_DATA=../shared/data/msmarco-passage), "
            "or connect to the internet so that ir_datasets can download "
            "msmarco-passage (about 1 GB). "
            f"The download failed with: {type(e).__name__}: {e}"
        ) from e
    where = {("queries", "train"): f"{IRDS['train']} / {IRDS['train-dev']}",
             ("queries", "unlabeled"): IRDS["train"], ("queries", "dev"): IRDS["dev"],
             ("queries", "dl19"): IRDS["dl19"], ("qrels", "dev"): IRDS["dev"],
             ("qrels", "train"): f"{IRDS['train']} / {IRDS['train-dev']}",
             ("qrels", "dl19"): IRDS["dl19"]}
    # The published runs are not in ir_datasets: the repository ships copies.
    return corpus, texts, qrels, _read_runs(ids_dir().parent / "runs"), where


def _require(found, wanted: list[str], what: str, split: str, source: str) -> None:
    """Every query the subset lists must be found;
    a truncated file must not shift the numbers."""
    missing = [q for q in wanted if q not in found]
    if missing:
        raise DataNotFoundError(
            f"{source} lacks {what} for {len(missing):,} of the {len(wanted):,} "
            f"{split} queries (e.g. qid {missing[0]}): the file is truncated or is "
            "not the MiniMARCO one. Copy it again (see data/README.md)."
        )


def load_minimarco(data_dir: str | os.PathLike | None = None,
                   slice_name: str = "full") -> MiniMarco:
    """Load MiniMARCO (or its ``ci`` slice).

    Args:
        data_dir: a local ``msmarco-passage`` directory. ``None`` reads
            ``MINIDR_DATA``; if that is unset too, downloads via ir_datasets.
        slice_name: ``"full"`` (43,076 passages) or ``"ci"`` (3,000).

    Raises:
        DataNotFoundError: no directory and no download possible, or the
            directory lacks files or passages; the message says how to fix it.
        DataFormatError: a malformed line (names the file and line number).
    """
    ids = read_ids(slice_name)
    data_dir = data_dir or os.environ.get("MINIDR_DATA") or None
    if data_dir:
        root = Path(data_dir).expanduser().resolve()
        corpus, texts, qrels, runs, where = _load_local(root, ids)
        # a name and the corpus's fingerprint, never a machine path (records travel)
        source = f"local:{root.name}, corpus {corpus_fingerprint(corpus)}"
    else:
        corpus, texts, qrels, runs, where = _load_ir_datasets(ids)
        source = f"ir_datasets:msmarco-passage, corpus {corpus_fingerprint(corpus)}"
    _require(texts.keys(), ids.unlabeled, "texts", "unlabeled",
             where[("queries", "unlabeled")])
    splits = {}
    for name in SPLITS:
        qids = ids.queries[name]
        _require(texts.keys(), qids, "texts", name, where[("queries", name)])
        q_qrels = {q: qrels[name].get(q, {}) for q in qids}
        if name == "train":  # training needs positives it can see
            q_qrels = {q: {p: g for p, g in r.items() if p in corpus and g > 0}
                       for q, r in q_qrels.items()}
        judged = {q for q, r in q_qrels.items() if any(g > 0 for g in r.values())}
        _require(judged, qids, "a positive judgment", name, where[("qrels", name)])
        splits[name] = Split(name, {q: texts[q] for q in qids}, q_qrels, _min_rel(name))
    run_qids = set(ids.queries["dl19"]) | set(ids.queries["dev"])
    runs = {n: {q: r for q, r in run.items() if q in run_qids}
            for n, run in runs.items()}
    return MiniMarco(corpus=corpus, splits=splits,
                     unlabeled_queries={q: texts[q] for q in ids.unlabeled}, runs=runs,
                     train_origin=dict(ids.train_origin), slice_name=slice_name,
                     source=source)


def derive_ids(data_dir: str | os.PathLike) -> SubsetIds:
    """Derive the subset's ids from a MiniMARCO directory (how data/minimarco was made).

    ``train``: train queries, and dev queries outside dev.small, that have a
    judged positive in the collection and a known text. ``dev``: dev.small
    queries with a positive in the collection. ``dl19``: the 43 judged queries.
    """
    f = _check_dir(Path(data_dir))
    pids = list(read_id_text_tsv(f["collection"]))
    in_corpus = set(pids)

    def with_positive(qrels: Qrels) -> set[str]:
        return {q for q, r in qrels.items()
                if any(g > 0 and p in in_corpus for p, g in r.items())}

    train_q, dev_q = read_id_text_tsv(f["train_q"]), read_id_text_tsv(f["dev_q"])
    small = read_id_text_tsv(f["small_q"])
    train = sorted(with_positive(read_qrels(f["train_qrels"])) & train_q.keys(),
                   key=int)
    extra = sorted((with_positive(read_qrels(f["dev_qrels"])) & dev_q.keys())
                   - small.keys(), key=int)
    dev = sorted(with_positive(read_qrels(f["small_qrels"])) & small.keys(), key=int)
    dl19 = sorted(read_id_text_tsv(f["dl19_q"]), key=int)
    origin = {**{q: "train" for q in train}, **{q: "dev" for q in extra}}
    unlabeled = sorted(train_q.keys() - set(train), key=int)
    return SubsetIds(pids=pids,
                     queries={"train": list(origin), "dl19": dl19, "dev": dev},
                     train_origin=origin, unlabeled=unlabeled)


def build_ids(data_dir, out: Path | None = None, seed: int = 0) -> Path:
    """Write the id lists derived from a MiniMARCO directory, and the ci slice.

    The ci recipe: sample ``CI_QUERIES`` queries per split; keep every passage
    judged relevant for them, the BM25 top-``CI_BM25_DEPTH`` of the dl19 and dev
    queries (from the published runs), then random passages up to ``CI_PASSAGES``.
    """
    out = out or ids_dir()
    ids = derive_ids(data_dir)
    atomic_write_text(out / "pids.txt", "\n".join(ids.pids) + "\n")
    atomic_write_text(out / "train.tsv",
                      "".join(f"{q}\t{o}\n" for q, o in ids.train_origin.items()))
    for name in ("dl19", "dev"):
        atomic_write_text(out / f"{name}.txt", "\n".join(ids.queries[name]) + "\n")
    atomic_write_text(out / "unlabeled.txt", "\n".join(ids.unlabeled) + "\n")

    data = load_minimarco(data_dir, "full")
    rng = random.Random(seed)
    s = data.splits
    kept = {name: sorted(rng.sample(sorted(s[name].queries), CI_QUERIES[name]))
            for name in SPLITS}
    pids: set[str] = set()
    for name in SPLITS:
        for q in kept[name]:
            pids |= {p for p, g in s[name].qrels.get(q, {}).items()
                     if g >= 1 and p in data.corpus}
    for name, run in (("dl19", data.runs["dl19.bm25"]),
                      ("dev", data.runs["dev-small.bm25-top20"])):
        for q in kept[name]:
            ranked = sorted(run.get(q, {}).items(),
                            key=lambda kv: -kv[1])[:CI_BM25_DEPTH]
            pids |= {p for p, _ in ranked if p in data.corpus}
    rest = sorted(set(data.corpus) - pids)
    pids |= set(rng.sample(rest, max(0, CI_PASSAGES - len(pids))))
    ordered = [p for p in data.corpus if p in pids]  # keep the collection's order
    unlabeled = sorted(rng.sample(sorted(data.unlabeled_queries), CI_UNLABELED),
                       key=int)
    atomic_write_text(out / "ci.json", json.dumps(
        {"recipe": {"seed": seed, "queries": CI_QUERIES, "passages": CI_PASSAGES,
                    "bm25_depth": CI_BM25_DEPTH, "unlabeled": CI_UNLABELED},
         "queries": kept, "unlabeled": unlabeled, "pids": ordered}) + "\n")
    return out
