"""minidr.subset: the committed id lists,
and rebuilding them from the data directory."""
from __future__ import annotations

import json

import pytest

import minidr.data.minimarco
from minidr.data import subset
from minidr.data.minimarco import SPLITS, build_ids
from minidr.data.subset import ids_dir, read_ids


def test_full_ids():
    ids = read_ids("full")
    assert len(ids.pids) == len(set(ids.pids)) == 43_076
    assert ({s: len(ids.queries[s]) for s in SPLITS}
            == {"train": 394, "dl19": 43, "dev": 583})
    assert len(ids.unlabeled) == 49_045
    assert list(ids.train_origin) == ids.queries["train"]
    assert set(ids.train_origin.values()) == {"train", "dev"}
    assert not set(ids.unlabeled) & set(ids.queries["train"])


def test_ci_ids_are_inside_full():
    full, ci = read_ids("full"), read_ids("ci")
    assert len(ci.pids) == subset.CI_PASSAGES
    assert {s: len(ci.queries[s]) for s in SPLITS} == subset.CI_QUERIES
    assert len(ci.unlabeled) == subset.CI_UNLABELED
    assert set(ci.pids) <= set(full.pids)
    for s in SPLITS:
        assert set(ci.queries[s]) <= set(full.queries[s]), s
    assert ci.train_origin == {q: full.train_origin[q] for q in ci.queries["train"]}
    assert set(ci.unlabeled) <= set(full.unlabeled)


def test_ci_json_records_its_recipe():
    recipe = json.loads((ids_dir() / "ci.json").read_text())["recipe"]
    assert recipe["passages"] == subset.CI_PASSAGES
    assert recipe["queries"] == subset.CI_QUERIES
    assert recipe["unlabeled"] == subset.CI_UNLABELED


def test_unknown_slice():
    with pytest.raises(ValueError, match="'full' or 'ci'"):
        read_ids("tiny")


def test_build_ids_reproduces_the_committed_lists(data_dir, full, tmp_path,
                                                  monkeypatch):
    """Deriving the ids again from the data directory gives the committed files,
    byte for byte."""
    def load_once(root, slice_name="full"):  # reuse the session's full load
        assert slice_name == "full"
        return full

    monkeypatch.setattr(minidr.data.minimarco, "load_minimarco", load_once)
    out = build_ids(data_dir, out=tmp_path / "ids")
    committed = sorted(["pids.txt", "train.tsv", "dl19.txt", "dev.txt", "unlabeled.txt",
                        "ci.json"])
    assert sorted(p.name for p in out.iterdir()) == committed  # and no temp files
    for name in committed:
        assert (out / name).read_bytes() == (ids_dir() / name).read_bytes(), name
