"""minidr.results: one JSON record per (chapter, method, profile),
read back as a leaderboard."""
from __future__ import annotations

import json
import math
import platform
import shutil
import subprocess
from pathlib import Path

import numpy
import pandas as pd
import pytest

from minidr.core.config import get_profile
from minidr.core.results import leaderboard, load_results, record_result, results_dir

REPO_ROOT = Path(__file__).resolve().parent.parent

METRICS = {"dl19": {"nDCG@10": 0.506, "MRR@10": 0.702, "R@100": 0.491},
           "dev": {"nDCG@10": 0.40, "MRR@10": 0.35, "R@100": 0.80}}
COLUMNS = ["chapter", "method", "profile", "dl19 nDCG@10", "dev MRR@10", "dev R@100",
           "wall s", "teacher s", "teacher labels", "commit"]


def test_record_result_writes_one_complete_json(tmp_path):
    path = record_result("01_bm25", "BM25 (k1=0.9, b=0.4)", METRICS, get_profile("ci"),
                         cost={"wall_seconds": 12.5, "queries": 43},
                         params={"k1": 0.9, "b": 0.4},
                         data_source="/data/msmarco-passage", directory=tmp_path)
    assert path.parent == tmp_path
    assert path.name.endswith("__ci.json") and path.name.startswith("01_bm25__")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["chapter"] == "01_bm25"
    assert record["method"] == "BM25 (k1=0.9, b=0.4)"
    assert record["profile"] == "ci"
    assert record["metrics"] == METRICS
    assert record["cost"] == {"wall_seconds": 12.5, "queries": 43}
    assert record["params"] == {"k1": 0.9, "b": 0.4}
    assert record["teacher_labels"] is False
    assert record["data_source"] == "/data/msmarco-passage"
    assert record["created"]
    assert record["python"] == platform.python_version()
    assert record["versions"]["numpy"] == numpy.__version__
    assert {"pandas", "ir_measures"} <= set(record["versions"])
    assert "git_commit" in record


@pytest.mark.skipif(not (REPO_ROOT / ".git").exists() or shutil.which("git") is None,
                    reason="not a git checkout")
def test_record_carries_the_git_commit(tmp_path):
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    record = json.loads(record_result("c", "m", METRICS, "ci",
                                      directory=tmp_path).read_text())
    assert record["git_commit"] in (head, head + "-dirty")


def test_profile_may_be_a_name_and_method_is_file_safe(tmp_path):
    path = record_result("02_dense", "DPR/in-batch (lr=1e-5) *best*", METRICS, "cpu",
                         directory=tmp_path)
    assert path.parent == tmp_path  # the "/" did not make a subfolder
    assert not set(path.name) & set(" /()*=")
    assert json.loads(path.read_text())["method"] == "DPR/in-batch (lr=1e-5) *best*"


def test_recording_again_replaces_the_record(tmp_path):
    record_result("01_bm25", "BM25", {"dl19": {"nDCG@10": 0.1}}, "ci",
                  directory=tmp_path)
    record_result("01_bm25", "BM25", {"dl19": {"nDCG@10": 0.2}}, "ci",
                  directory=tmp_path)
    record_result("01_bm25", "BM25", {"dl19": {"nDCG@10": 0.3}}, "cpu",
                  directory=tmp_path)
    records = load_results(tmp_path)
    got = [(r["profile"], r["metrics"]["dl19"]["nDCG@10"]) for r in records]
    assert got == [("ci", 0.2), ("cpu", 0.3)]


def test_results_dir_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDR_RESULTS", str(tmp_path))
    assert results_dir() == tmp_path
    path = record_result("c", "m", METRICS, "ci")
    assert path.parent == tmp_path
    assert len(load_results()) == 1


def test_load_results_sorted_by_chapter_then_method(tmp_path):
    for chapter, method in [("03_x", "b"), ("01_y", "z"), ("03_x", "a"), ("02_z", "m")]:
        record_result(chapter, method, METRICS, "ci", directory=tmp_path)
    assert [(r["chapter"], r["method"]) for r in load_results(tmp_path)] == [
        ("01_y", "z"), ("02_z", "m"), ("03_x", "a"), ("03_x", "b")]


def test_leaderboard_columns_and_values(tmp_path):
    record_result("01_bm25", "BM25", METRICS, "ci", cost={"wall_seconds": 3.0},
                  directory=tmp_path)
    record_result("05_distill", "student", {"dl19": {"nDCG@10": 0.6}}, "cpu",
                  cost={"wall_seconds": 9.0, "teacher_scores_seconds": 2172.0},
                  teacher_labels=True, directory=tmp_path)
    table = leaderboard(tmp_path)
    assert list(table.columns) == COLUMNS
    assert len(table) == 2
    bm25 = table.set_index("method").loc["BM25"]
    assert ((bm25["dl19 nDCG@10"], bm25["dev MRR@10"], bm25["dev R@100"])
            == (0.506, 0.35, 0.80))
    assert bm25["wall s"] == 3.0 and not bm25["teacher labels"]
    student = table.set_index("method").loc["student"]
    assert student["dl19 nDCG@10"] == 0.6
    assert student["dev MRR@10"] is None or math.isnan(student["dev MRR@10"])
    assert bool(student["teacher labels"]) is True
    assert student["teacher s"] == 2172.0 and pd.isna(bm25["teacher s"])


def test_leaderboard_profile_filter_and_custom_columns(tmp_path):
    record_result("01_bm25", "BM25", METRICS, "ci", directory=tmp_path)
    record_result("01_bm25", "BM25", METRICS, "cpu", directory=tmp_path)
    table = leaderboard(tmp_path, profile="cpu", columns=(("dl19", "R@100"),))
    assert table["profile"].tolist() == ["cpu"]
    assert "dl19 R@100" in table.columns and "dl19 nDCG@10" not in table.columns
    assert table["dl19 R@100"].tolist() == [0.491]


def test_empty_results_dir(tmp_path):
    assert load_results(tmp_path) == []
    assert len(leaderboard(tmp_path)) == 0


def test_record_keeps_the_training_curve(tmp_path):
    curve = [{"step": 0, "seconds": 0.0, "dl19 nDCG@10": 0.2},
             {"step": 10, "seconds": 5.5, "dl19 nDCG@10": 0.3}]
    path = record_result("05_ance", "ANCE", METRICS, "ci", curve=curve,
                         directory=tmp_path)
    assert json.loads(path.read_text())["curve"] == curve
    plain = record_result("05_ance", "other", METRICS, "ci", directory=tmp_path)
    assert json.loads(plain.read_text())["curve"] == []
