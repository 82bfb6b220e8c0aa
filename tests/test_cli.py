"""minidr.__main__: the command line, called in-process through main()."""
from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import pytest

import minidr.core.config
from minidr.__main__ import main
from minidr.data.formats import read_trec_run
from minidr.core.results import record_result

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_info_unknown_profile_exits_2_listing_profiles(capsys):
    assert main(["info", "--profile", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err
    assert "ci, cpu, gpu, colab" in err
    assert "Traceback" not in err


def test_module_entry_point_exit_status():
    proc = subprocess.run([sys.executable, "-m", "minidr", "info",
                           "--profile", "bogus"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 2
    assert "ci, cpu, gpu, colab" in proc.stderr


def test_gpu_profile_without_gpu_exits_2(capsys, monkeypatch):
    monkeypatch.setattr(minidr.core.config, "_cuda_available", lambda: False)
    assert main(["info", "--profile", "gpu"]) == 2
    assert "GPU" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_info_ci(capsys, data_dir):
    assert main(["info", "--profile", "ci", "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "name='ci'" in out
    assert "MiniMarco(ci: 3,000 passages; train=100, dl19=12, dev=100" in out


def test_info_missing_data_exits_2(capsys, tmp_path):
    assert main(["info", "--profile", "ci", "--data", str(tmp_path / "nowhere")]) == 2
    assert "MINIDR_DATA" in capsys.readouterr().err


def test_leaderboard_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDR_RESULTS", str(tmp_path))
    assert main(["leaderboard"]) == 0
    assert "no results recorded yet" in capsys.readouterr().out
    record_result("01_bm25", "BM25 k1=0.9", {"dl19": {"nDCG@10": 0.4721}}, "ci")
    record_result("01_bm25", "BM25 k1=1.2", {"dl19": {"nDCG@10": 0.4}}, "cpu")
    assert main(["leaderboard", "--profile", "ci"]) == 0
    out = capsys.readouterr().out
    assert "BM25 k1=0.9" in out and "0.4721" in out
    assert "BM25 k1=1.2" not in out


def test_bm25_command_on_ci(capsys, tmp_path, data_dir):
    out_file = tmp_path / "bm25.trec"
    assert main(["bm25", "--profile", "ci", "--data", str(data_dir), "--split", "dl19",
                 "--k", "50", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()
             if line.split()
             and line.split()[0] in ("nDCG@10", "MRR@10", "R@100", "R@1000")}
    assert set(lines) == {"nDCG@10", "MRR@10", "R@100", "R@1000"}
    assert lines["nDCG@10"] > 0.3
    run = read_trec_run(out_file)
    assert len(run) == 12
    assert all(0 < len(docs) <= 50 for docs in run.values())
    assert "bm25-k10.9-b0.4" in out_file.read_text().split("\n", 1)[0]
