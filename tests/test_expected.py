"""The expected-score check: passes on the recorded scores,
fails when one moves or goes missing."""
import pytest

from minidr.__main__ import main
from minidr.core.results import record_result
from minidr.evaluation.expected import check_scores, write_expected


def _record(folder, ndcg, method="DPR"):
    record_result("04_dpr", method,
                  {"dl19": {"nDCG@10": ndcg}, "dev": {"MRR@10": 0.2}}, "ci",
                  directory=folder)


def test_passes_then_fails_when_a_score_moves(tmp_path, capsys):
    results, table = tmp_path / "results", tmp_path / "ci.yaml"
    _record(results, 0.300)
    write_expected("ci", results, table)
    assert all(c.ok for c in check_scores("ci", results, table))
    _record(results, 0.304)  # inside the 0.005 tolerance
    assert all(c.ok for c in check_scores("ci", results, table))
    _record(results, 0.310)  # moved
    bad = [c for c in check_scores("ci", results, table) if not c.ok]
    assert [(c.method, c.metric) for c in bad] == [("DPR", "dl19 nDCG@10")]
    assert "FAIL" in bad[0].line() and "0.3000" in bad[0].line()


def test_a_missing_or_new_record_fails(tmp_path):
    results, table = tmp_path / "results", tmp_path / "ci.yaml"
    _record(results, 0.3)
    write_expected("ci", results, table)
    _record(results, 0.3, method="DPR, new variant")  # not in the table
    assert any(not c.ok and c.expected is None
               for c in check_scores("ci", results, table))
    (results / "04_dpr__DPR__ci.json").unlink()       # an expected record vanished
    assert any(not c.ok and c.got is None and c.method == "DPR"
               for c in check_scores("ci", results, table))


def test_command_line_exit_codes(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    _record(results, 0.3)
    monkeypatch.setattr("minidr.evaluation.expected.expected_path",
                        lambda profile: tmp_path / f"{profile}.yaml")
    # no table yet: clear error
    assert main(["check-scores", "--results", str(results)]) == 2
    assert "--update" in capsys.readouterr().err
    assert main(["check-scores", "--results", str(results), "--update"]) == 0
    assert main(["check-scores", "--results", str(results)]) == 0
    _record(results, 0.2)
    assert main(["check-scores", "--results", str(results)]) == 1
    assert "1 failed" in capsys.readouterr().out


@pytest.mark.parametrize("profile", ["ci"])
def test_the_committed_table_names_every_chapter(profile):
    import yaml
    from minidr.evaluation.expected import expected_path

    table = yaml.safe_load(expected_path(profile).read_text())
    assert {"00_data", "01_bm25", "04_dpr", "07_star_adore"} <= set(table["scores"])
