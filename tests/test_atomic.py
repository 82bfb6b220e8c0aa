"""minidr.atomic: a file or directory appears whole, or not at all."""
from __future__ import annotations

import os

import pytest

from minidr.core.atomic import atomic_dir, atomic_write_text


def test_atomic_write_text_writes_and_creates_parents(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b" / "f.txt", "héllo\n")
    assert path == tmp_path / "a" / "b" / "f.txt"
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert os.listdir(path.parent) == ["f.txt"]


def test_atomic_write_text_replaces(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "old")
    atomic_write_text(tmp_path / "f.txt", "new")
    assert (tmp_path / "f.txt").read_text() == "new"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_text_failure_leaves_nothing(tmp_path):
    with pytest.raises(UnicodeEncodeError):
        # a lone surrogate cannot be encoded: the write fails midway
        atomic_write_text(tmp_path / "f.txt", "ok so far \ud800")
    assert os.listdir(tmp_path) == []


def test_atomic_write_text_failure_keeps_the_old_file(tmp_path, monkeypatch):
    atomic_write_text(tmp_path / "f.txt", "old")

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "f.txt", "new")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["f.txt"]
    assert (tmp_path / "f.txt").read_text() == "old"


def test_atomic_dir_success(tmp_path):
    with atomic_dir(tmp_path / "index") as tmp:
        assert tmp.parent == tmp_path and tmp != tmp_path / "index"
        assert not (tmp_path / "index").exists()  # not visible while being built
        (tmp / "part").write_text("1")
    assert (tmp_path / "index" / "part").read_text() == "1"
    assert os.listdir(tmp_path) == ["index"]


def test_atomic_dir_replaces_an_existing_dir(tmp_path):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "stale").write_text("old")
    with atomic_dir(tmp_path / "index") as tmp:
        (tmp / "fresh").write_text("new")
    assert os.listdir(tmp_path / "index") == ["fresh"]
    assert os.listdir(tmp_path) == ["index"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_dir_failure_leaves_nothing(tmp_path, error):
    with pytest.raises(error):
        with atomic_dir(tmp_path / "cache" / "index") as tmp:
            (tmp / "half").write_text("written before the crash")
            raise error("interrupted")
    assert os.listdir(tmp_path / "cache") == []


def test_atomic_dir_failure_keeps_the_old_dir(tmp_path):
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / "good").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "index") as tmp:
            (tmp / "half").write_text("new")
            raise RuntimeError
    assert os.listdir(tmp_path) == ["index"]
    assert os.listdir(tmp_path / "index") == ["good"]
