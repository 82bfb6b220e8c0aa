"""minidr.data: split sizes, the ci slice, error messages, and the ir_datasets route."""
from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import pytest

import minidr.data.minimarco
from minidr.data.minimarco import DataNotFoundError, IRDS, RUN_NAMES, load_minimarco
from minidr.data.formats import DataFormatError, corpus_fingerprint, rank, read_qrels


# --- the full MiniMARCO ---------------------------------------------------------------

def test_full_sizes(full):
    assert len(full.corpus) == 43_076
    sizes = {name: len(s) for name, s in full.splits.items()}
    assert sizes == {"train": 394, "dl19": 43, "dev": 583}
    assert len(full.unlabeled_queries) == 49_045
    assert full.slice_name == "full"
    # 365 official train queries + 29 dev queries outside dev.small
    origins = list(full.train_origin.values())
    assert (origins.count("train"), origins.count("dev")) == (365, 29)
    assert set(full.train_origin) == set(full.splits["train"].queries)


def test_full_queries_have_texts_and_judgments(full):
    for name, split in full.splits.items():
        assert split.name == name
        assert set(split.qrels) == set(split.queries)
        assert all(isinstance(t, str) and t.strip()
                   for t in split.queries.values()), name
    # every dl19 and dev query has a positive (dev: inside the corpus, by definition)
    assert all(any(g >= 1 for g in r.values())
               for r in full.splits["dl19"].qrels.values())
    assert all(any(g >= 1 and p in full.corpus for p, g in r.items())
               for r in full.splits["dev"].qrels.values())


def test_min_rel_per_split(full):
    assert full.splits["dl19"].min_rel == 2  # TREC DL convention
    assert full.splits["dev"].min_rel == 1
    assert full.splits["train"].min_rel == 1


def test_dl19_keeps_official_graded_judgments(full, data_dir):
    official = read_qrels(data_dir / "trec-dl-2019" / "qrels.txt")
    assert full.splits["dl19"].qrels == official
    assert {g for r in official.values() for g in r.values()} == {0, 1, 2, 3}
    assert sum(len(r) for r in full.splits["dl19"].qrels.values()) == 9_260


def test_train_qrels_are_positives_inside_the_corpus(full, ci):
    for mm in (full, ci):
        for qid, judged in mm.splits["train"].qrels.items():
            assert judged, f"train query {qid} has no positive"
            assert all(g > 0 for g in judged.values()), qid
            assert all(p in mm.corpus for p in judged), qid


def test_unlabeled_queries_have_no_positive_in_the_corpus(full, data_dir):
    unlabeled = set(full.unlabeled_queries)
    assert not unlabeled & set(full.splits["train"].queries)
    judged = read_qrels(data_dir / "qrels.train.tsv", keep=unlabeled)
    assert not any(g > 0 and p in full.corpus
                   for r in judged.values() for p, g in r.items())


def test_runs_are_restricted_to_the_evaluated_queries(full):
    assert set(full.runs) == set(RUN_NAMES)
    dl19 = set(full.splits["dl19"].queries)
    for name in RUN_NAMES:
        if name.startswith("dl19."):
            assert set(full.runs[name]) == dl19, name
            assert all(len(docs) == 100 for docs in full.runs[name].values()), name
    assert set(full.runs["dev-small.bm25-top20"]) <= set(full.splits["dev"].queries)


def test_corpus_keeps_the_collection_order(full, data_dir):
    with open(data_dir / "collection.tsv", encoding="utf-8") as f:
        first = [next(f).split("\t", 1)[0] for _ in range(5)]
    assert list(full.corpus)[:5] == first


# --- the ci slice ---------------------------------------------------------------------

def test_ci_sizes(ci):
    assert len(ci.corpus) == 3_000
    assert ({name: len(s) for name, s in ci.splits.items()}
            == {"train": 100, "dl19": 12, "dev": 100})
    assert len(ci.unlabeled_queries) == 1_000
    assert ci.slice_name == "ci"


def test_ci_is_a_subset_of_full(ci, full):
    assert all(full.corpus[p] == t for p, t in ci.corpus.items())
    # collection order
    assert list(ci.corpus) == [p for p in full.corpus if p in ci.corpus]
    for name, split in ci.splits.items():
        assert all(full.splits[name].queries[q] == t
                   for q, t in split.queries.items()), name
        assert split.min_rel == full.splits[name].min_rel
    assert set(ci.unlabeled_queries) <= set(full.unlabeled_queries)


def test_ci_contains_every_relevant_passage_of_its_queries(ci, full):
    for name, split in ci.splits.items():
        for qid in split.queries:
            relevant = {p for p, g in full.splits[name].qrels[qid].items()
                        if g >= 1 and p in full.corpus}
            assert relevant, (name, qid)
            missing = relevant - ci.corpus.keys()
            assert not missing, (f"{name} query {qid}: "
                                 f"ci lacks relevant passages {sorted(missing)}")
            # and the slice keeps the official judgments of the query
            assert split.qrels[qid] == full.splits[name].qrels[qid], (name, qid)


def test_ci_contains_the_bm25_top20_of_its_test_queries(ci, full):
    for split, run in (("dl19", "dl19.bm25"), ("dev", "dev-small.bm25-top20")):
        top = rank({q: full.runs[run].get(q, {}) for q in ci.splits[split].queries}, 20)
        assert all(p in ci.corpus for pids in top.values() for p in pids), split


def test_ci_runs_keep_only_ci_queries(ci):
    for name, run in ci.runs.items():
        split = "dl19" if name.startswith("dl19.") else "dev"
        assert set(run) <= set(ci.splits[split].queries), name
    assert set(ci.runs["dl19.bm25"]) == set(ci.splits["dl19"].queries)


def test_unknown_slice_raises(data_dir):
    with pytest.raises(ValueError, match="bogus"):
        load_minimarco(data_dir, "bogus")


# --- missing and malformed data -------------------------------------------------------

def test_missing_directory_names_minidr_data(tmp_path):
    with pytest.raises(DataNotFoundError) as e:
        load_minimarco(tmp_path / "nowhere", "ci")
    assert "MINIDR_DATA" in str(e.value)
    assert "nowhere" in str(e.value)
    assert isinstance(e.value, FileNotFoundError)


def test_missing_directory_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDR_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="MINIDR_DATA"):
        load_minimarco(None, "ci")


def test_directory_lacking_a_file_names_it(data_copy):
    root = data_copy(omit=("qrels.dev.tsv",))
    with pytest.raises(DataNotFoundError) as e:
        load_minimarco(root, "ci")
    assert "qrels.dev.tsv" in str(e.value)
    assert "MINIDR_DATA" in str(e.value)


def test_data_copy_fixture_loads_like_the_real_dir(data_copy, ci):
    """The symlinked stand-in is faithful,
    so the failures below come from the corruption."""
    mm = load_minimarco(data_copy(copy=("queries.dev.small.tsv",)), "ci")
    assert mm.corpus == ci.corpus
    assert mm.splits["dev"].queries == ci.splits["dev"].queries


def _rewrite_line(path: Path, lineno: int, edit) -> str:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_text("\n".join(lines), encoding="utf-8")
    return lines[lineno - 1]


def test_malformed_query_line_names_file_and_line(data_copy):
    root = data_copy(copy=("queries.dev.small.tsv",))
    _rewrite_line(root / "queries.dev.small.tsv", 1234,
                  lambda s: s.replace("\t", " ", 1))
    with pytest.raises(DataFormatError) as e:
        load_minimarco(root, "ci")
    assert "queries.dev.small.tsv:1234:" in str(e.value)


def test_non_numeric_query_id_names_file_and_line(data_copy):
    root = data_copy(copy=("trec-dl-2019/queries.tsv",))
    _rewrite_line(root / "trec-dl-2019" / "queries.tsv", 7, lambda s: "q" + s)
    with pytest.raises(DataFormatError, match=r"queries\.tsv:7:"):
        load_minimarco(root, "ci")


def test_malformed_qrels_line_names_file_and_line(data_copy):
    root = data_copy(copy=("trec-dl-2019/qrels.txt",))
    _rewrite_line(root / "trec-dl-2019" / "qrels.txt", 77,
                  lambda s: s.rsplit(" ", 1)[0] + " x")
    with pytest.raises(DataFormatError, match=r"qrels\.txt:77:"):
        load_minimarco(root, "ci")


def test_malformed_run_line_names_file_and_line(data_copy):
    root = data_copy(copy=("runs/dl19.tasb.trec",))
    _rewrite_line(root / "runs" / "dl19.tasb.trec", 250, lambda s: s.rsplit(" ", 2)[0])
    with pytest.raises(DataFormatError, match=r"dl19\.tasb\.trec:250:"):
        load_minimarco(root, "ci")


def _truncate(src: Path, dst: Path, n_lines: int, partial: str = "") -> None:
    with open(src, encoding="utf-8", newline="\n") as f:
        head = [next(f) for _ in range(n_lines)]
    dst.unlink()
    dst.write_text("".join(head) + partial, encoding="utf-8")


def test_truncated_collection_raises_not_found(data_copy, data_dir):
    root = data_copy()
    _truncate(data_dir / "collection.tsv", root / "collection.tsv", 20_000)
    with pytest.raises(DataNotFoundError) as e:
        load_minimarco(root, "ci")
    msg = str(e.value)
    assert "collection.tsv" in msg and "lacks" in msg


def test_collection_truncated_mid_line_names_the_last_line(data_copy, data_dir):
    root = data_copy()
    with open(data_dir / "collection.tsv", encoding="utf-8") as f:
        for _ in range(20_000):
            next(f)
        cut = next(f).split("\t", 1)[0][:3]  # the download stopped inside the pid
    _truncate(data_dir / "collection.tsv", root / "collection.tsv", 20_000, partial=cut)
    with pytest.raises(DataFormatError, match=r"collection\.tsv:20001:"):
        load_minimarco(root, "ci")


def test_truncated_queries_file_names_the_file(data_copy, data_dir):
    root = data_copy()
    _truncate(data_dir / "queries.dev.small.tsv", root / "queries.dev.small.tsv", 3_000)
    with pytest.raises((DataNotFoundError, DataFormatError),
                       match=r"queries\.dev\.small\.tsv"):
        load_minimarco(root, "ci")


class LoadedSilently(Exception):
    """A truncated file loaded without an error."""


def test_truncated_qrels_file_is_an_error(data_copy, data_dir):
    root = data_copy()
    _truncate(data_dir / "trec-dl-2019" / "qrels.txt",
              root / "trec-dl-2019" / "qrels.txt", 4_000)
    try:
        mm = load_minimarco(root, "ci")
    except (DataNotFoundError, DataFormatError) as e:
        assert "qrels.txt" in str(e)
    else:
        judged = sum(1 for r in mm.splits["dl19"].qrels.values() if r)
        assert judged < len(mm.splits["dl19"])  # the truncation did cut judged queries
        raise LoadedSilently(f"only {judged} of {len(mm.splits['dl19'])} dl19 queries "
                             "kept judgments, and no error")


# --- the ir_datasets route ------------------------------------------------------------

Doc = namedtuple("Doc", "doc_id text")
Query = namedtuple("Query", "query_id text")
Qrel = namedtuple("Qrel", "query_id doc_id relevance iteration")


def _id_text(path: Path):
    """Independent of minidr.formats on purpose: the fake must not share its bugs."""
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line:
                i, _, text = line.partition("\t")
                yield i, text


class FakeDocsStore:
    def __init__(self, path: Path):
        self.path = path

    def get_many(self, doc_ids):
        wanted = set(doc_ids)
        return {i: Doc(i, t) for i, t in _id_text(self.path) if i in wanted}


class FakeDataset:
    """Serves the local files the way ir_datasets serves msmarco-passage."""

    def __init__(self, docs=None, queries=None, qrels=None):
        self.docs, self.queries, self.qrels = docs, queries, qrels

    def docs_store(self):
        assert self.docs is not None, "this dataset has no docs"
        return FakeDocsStore(self.docs)

    def queries_iter(self):
        return (Query(q, t) for q, t in _id_text(self.queries))

    def qrels_iter(self):
        with open(self.qrels, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    q, it, d, g = line.split()
                    yield Qrel(q, d, int(g), it)


def _fake_ir_datasets(root: Path) -> dict[str, FakeDataset]:
    return {
        "msmarco-passage": FakeDataset(docs=root / "collection.tsv"),
        "msmarco-passage/train": FakeDataset(queries=root / "queries.train.tsv",
                                             qrels=root / "qrels.train.tsv"),
        "msmarco-passage/dev": FakeDataset(queries=root / "queries.dev.tsv",
                                           qrels=root / "qrels.dev.tsv"),
        "msmarco-passage/dev/small": FakeDataset(queries=root / "queries.dev.small.tsv",
                                                 qrels=root / "qrels.dev.small.tsv"),
        "msmarco-passage/trec-dl-2019/judged": FakeDataset(
            queries=root / "trec-dl-2019" / "queries.tsv",
            qrels=root / "trec-dl-2019" / "qrels.txt"),
    }


def test_ir_datasets_route_equals_local_route(monkeypatch, data_dir, ci):
    datasets = _fake_ir_datasets(data_dir)
    requested = []

    def fake_load(name):
        requested.append(name)
        return datasets[name]  # KeyError for a name ir_datasets does not know either

    monkeypatch.delenv("MINIDR_DATA", raising=False)
    monkeypatch.setattr(minidr.data.minimarco, "_ir_datasets_load", fake_load)
    mm = load_minimarco(None, "ci")

    assert set(requested) == set(IRDS.values())
    assert mm.source.startswith("ir_datasets")
    assert list(mm.corpus.items()) == list(ci.corpus.items())  # same texts, same order
    assert set(mm.splits) == set(ci.splits)
    for name, split in ci.splits.items():
        assert mm.splits[name].queries == split.queries, name
        assert mm.splits[name].qrels == split.qrels, name
        assert mm.splits[name].min_rel == split.min_rel, name
    assert mm.unlabeled_queries == ci.unlabeled_queries
    assert mm.train_origin == ci.train_origin
    assert mm.runs == ci.runs


def test_env_var_wins_over_ir_datasets(monkeypatch, data_dir):
    def no_download(name):
        raise AssertionError("must not download when MINIDR_DATA is set")

    monkeypatch.setenv("MINIDR_DATA", str(data_dir))
    monkeypatch.setattr(minidr.data.minimarco, "_ir_datasets_load", no_download)
    mm = load_minimarco(None, "ci")
    # a name and a fingerprint, not this machine's path
    assert mm.source == (f"local:{data_dir.name}, "
                         f"corpus {corpus_fingerprint(mm.corpus)}")
    assert "/" not in mm.source
    assert len(mm.corpus) == 3_000


def test_ir_datasets_offline_error_says_how_to_fix(monkeypatch):
    def offline(name):
        raise ConnectionError("network is unreachable")

    monkeypatch.delenv("MINIDR_DATA", raising=False)
    monkeypatch.setattr(minidr.data.minimarco, "_ir_datasets_load", offline)
    with pytest.raises(DataNotFoundError) as e:
        load_minimarco(None, "ci")
    msg = str(e.value)
    assert "MINIDR_DATA" in msg and "ir_datasets" in msg
    assert "ConnectionError" in msg
    assert isinstance(e.value.__cause__, ConnectionError)
