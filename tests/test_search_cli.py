"""Saved models (minidr.models.registry) and the search / evaluate / models commands."""
from __future__ import annotations

import json
import math

import pytest

from minidr.__main__ import main
from minidr.core.atomic import atomic_dir
from minidr.data.formats import read_trec_run
from minidr.models.loading import ModelNotFoundError
from minidr.models.registry import list_models, resolve_model, save_model, slug

# Made-up queries: not from MiniMARCO's splits (qids beyond MS MARCO's).
QUERIES = ("9000001\thow do dense retrievers encode passages\n"
           "9000002\twhat is the capital of france\n"
           "9000003\tsymptoms of vitamin d deficiency\n")


@pytest.fixture
def queries_file(tmp_path):
    path = tmp_path / "my_queries.tsv"
    path.write_text(QUERIES)
    return path


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A fresh, empty MINIDR_CACHE for this test (the manifest starts empty)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("MINIDR_CACHE", str(root))
    return root


class FakeEncoder:
    """What save_model needs of a BiEncoder, without torch: save() and fingerprint()."""

    def __init__(self, fingerprint: str = "f00d"):
        self._fingerprint = fingerprint

    def fingerprint(self) -> str:
        return self._fingerprint

    def save(self, path):
        with atomic_dir(path) as tmp:
            (tmp / "minidr_biencoder.json").write_text(json.dumps({"pooling": "mean"}))
            (tmp / "model.safetensors").write_text(self._fingerprint)
        return path


# -- the registry ----------------------------------------------------------------------

def test_save_list_resolve(own_cache):
    folder = save_model(FakeEncoder("aa"), "04_dpr", "DPR (in-batch)", "cpu",
                        metrics={"dl19": {"nDCG@10": 0.29}}, extra={"steps": 250})
    assert folder == own_cache / "models" / "04_dpr" / "DPR-in-batch__cpu"
    assert (folder / "model.safetensors").read_text() == "aa"
    table = list_models()
    assert len(table) == 1
    row = table.iloc[0].to_dict()
    assert row["chapter"] == "04_dpr" and row["name"] == "DPR (in-batch)"
    assert row["profile"] == "cpu" and row["fingerprint"] == "aa"
    assert row["path"] == str(folder)
    assert row["metrics"] == {"dl19": {"nDCG@10": 0.29}}
    assert row["extra"] == {"steps": 250}
    manifest = json.loads((own_cache / "models" / "manifest.json").read_text())
    assert manifest["models"][0]["path"] == "04_dpr/DPR-in-batch__cpu"  # relative
    for spec in ("04_dpr/DPR (in-batch)", "04_dpr/DPR (in-batch)@cpu",
                 "04_dpr/DPR-in-batch", str(folder)):
        assert resolve_model(spec) == folder.resolve()


def test_resave_replaces_and_profiles_are_kept_apart(own_cache):
    save_model(FakeEncoder("aa"), "04_dpr", "DPR", "cpu")
    save_model(FakeEncoder("bb"), "04_dpr", "DPR", "cpu")          # retrained: replaces
    ci_folder = save_model(FakeEncoder("cc"), "04_dpr", "DPR", "ci")
    table = list_models()
    assert sorted(zip(table["profile"], table["fingerprint"])) == [("ci", "cc"),
                                                                  ("cpu", "bb")]
    assert resolve_model("04_dpr/DPR@ci") == ci_folder.resolve()
    assert resolve_model("04_dpr/DPR").name == "DPR__cpu"  # full data wins over ci


def test_save_model_rejects_bad_arguments(own_cache):
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        save_model(FakeEncoder(), "04_dpr", "DPR", "laptop")
    with pytest.raises(ValueError, match="chapter must be a folder name"):
        save_model(FakeEncoder(), "../up", "DPR", "ci")
    with pytest.raises(ValueError, match="no letter or digit"):
        save_model(FakeEncoder(), "04_dpr", "()", "ci")
    with pytest.raises(TypeError, match="must be JSON"):
        save_model(FakeEncoder(), "04_dpr", "DPR", "ci", extra={"f": object()})
    assert not list_models().shape[0]  # nothing half-saved
    assert slug("DPR (in-batch), tau=0.05") == "DPR-in-batch-tau-0.05"


def test_resolve_unknown_lists_saved_models(own_cache, tmp_path):
    with pytest.raises(ModelNotFoundError, match="No model is saved yet"):
        resolve_model("04_dpr/DPR")
    save_model(FakeEncoder(), "04_dpr", "DPR", "ci")
    for spec in ("04_dpr/ANCE", "05_ance/DPR", "04_dpr/DPR@cpu", "DPR"):
        with pytest.raises(ModelNotFoundError) as e:
            resolve_model(spec)
        assert repr(spec) in str(e.value) and "'04_dpr/DPR@ci'" in str(e.value)
    with pytest.raises(ModelNotFoundError, match="not a saved bi-encoder"):
        resolve_model(tmp_path)


def test_corrupt_manifest_is_a_clear_error(own_cache):
    (own_cache / "models").mkdir(parents=True)
    (own_cache / "models" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not a model manifest.*delete it"):
        list_models()


# -- search ----------------------------------------------------------------------------

def test_saved_model_round_trip_gives_the_same_run(encoder, ci, data_dir, queries_file,
                                                   tmp_path, own_cache, capsys):
    from minidr.data.formats import write_trec_run
    from minidr.models.bi_encoder import BiEncoder
    from minidr.retrieval.dense import search_queries

    queries = {"9000001": "how do dense retrievers encode passages",
               "9000002": "what is the capital of france",
               "9000003": "symptoms of vitamin d deficiency"}
    assert not set(queries) & {q for s in ci.splits.values() for q in s.queries}
    expected = search_queries(encoder, ci.corpus, queries, k=20, cache=False)
    write_trec_run(expected, tmp_path / "expected.trec")   # same 6-decimal rounding
    expected = read_trec_run(tmp_path / "expected.trec")

    folder = save_model(encoder, "99_test", "Tiny DPR", "ci", metrics={"dl19": {}})
    assert (folder / "model.safetensors").is_file()
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".pth")]
    assert BiEncoder.from_pretrained(folder).fingerprint() == encoder.fingerprint()

    base = ["--queries", str(queries_file), "--k", "20", "--slice", "ci",
            "--data", str(data_dir)]
    for i, spec in enumerate((str(folder), "99_test/Tiny DPR@ci")):  # path, then name
        out = tmp_path / f"run{i}.trec"
        assert main(["search", "--model", spec, "--out", str(out), *base]) == 0
        printed = capsys.readouterr().out
        assert str(out) in printed and "3 queries" in printed
        run = read_trec_run(out)
        assert list(run) == list(expected)
        for qid in expected:
            assert list(run[qid]) == list(expected[qid])             # same ranking
            assert run[qid] == pytest.approx(expected[qid], abs=2e-6)
        assert out.read_text().split()[5] == "Tiny-DPR__ci"            # the run's tag

    assert main(["models"]) == 0
    assert "99_test/Tiny DPR@ci" in capsys.readouterr().out


def test_bm25_search_writes_a_valid_run(ci, data_dir, queries_file, tmp_path, capsys):
    out = tmp_path / "bm25.trec"
    assert main(["search", "--model", "bm25", "--queries", str(queries_file),
                 "--out", str(out), "--k", "10", "--slice", "ci",
                 "--data", str(data_dir)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: 3 queries, top 10," in printed
    run = read_trec_run(out)
    assert set(run) == {"9000001", "9000002", "9000003"}
    assert all(0 < len(docs) <= 10 and set(docs) <= set(ci.corpus)
               for docs in run.values())
    ranks = {}
    for line in out.read_text().splitlines():  # ranks 1..n per query, scores descending
        qid, q0, _, rank, score, tag = line.split()
        assert q0 == "Q0" and tag == "bm25"
        ranks.setdefault(qid, []).append((int(rank), float(score)))
    for rows in ranks.values():
        assert [r for r, _ in rows] == list(range(1, len(rows) + 1))
        assert [s for _, s in rows] == sorted((s for _, s in rows), reverse=True)


NOWHERE = ["--slice", "ci"]  # the errors below come before any data is loaded


@pytest.mark.parametrize("content, message", [
    ("9000001\tfine query\nthis line has no tab\n", ":2: expected"),
    ("q1\tnon-numeric qid\n", ":1: expected"),
    ("", "holds no queries"),
    ("\n\n", "holds no queries"),
    ("9000001\t  \n", "query 9000001 has no text"),
])
def test_bad_queries_file_exits_2(content, message, tmp_path, capsys):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    args = ["search", "--model", "bm25", "--queries", str(path), "--out",
            str(tmp_path / "x.trec"), "--data", str(tmp_path / "nowhere"), *NOWHERE]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert str(path) in err and message in err
    assert "numeric qid, a tab, the query text" in err        # what to do
    assert not (tmp_path / "x.trec").exists()


def test_missing_queries_file_exits_2(tmp_path, capsys):
    assert main(["search", "--model", "bm25", "--queries", str(tmp_path / "absent.tsv"),
                 "--out", str(tmp_path / "x.trec"), "--data", str(tmp_path / "nowhere"),
                 *NOWHERE]) == 2
    err = capsys.readouterr().err
    assert "absent.tsv does not exist" in err and "qid, a tab" in err


@pytest.mark.parametrize("model", ["04_dpr/no-such-model", "my-model",
                                   "models/04_dpr/x@cpu"])
def test_unknown_model_exits_2(model, queries_file, tmp_path, own_cache, capsys):
    save_model(FakeEncoder(), "04_dpr", "DPR", "cpu")
    assert main(["search", "--model", model, "--queries", str(queries_file),
                 "--out", str(tmp_path / "x.trec"), "--data", str(tmp_path / "nowhere"),
                 *NOWHERE]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert repr(model) in err
    assert "'04_dpr/DPR@cpu'" in err and "python -m minidr models" in err
    assert "bm25 or teacher" in err


def test_models_command_when_empty(own_cache, capsys):
    assert main(["models"]) == 0
    assert "no models saved yet" in capsys.readouterr().out


# -- evaluate --------------------------------------------------------------------------

TOY_QRELS = "1 0 11 2\n1 0 12 1\n2 0 23 2\n2 0 24 1\n"
TOY_RUN = ("1 Q0 12 1 3.0 toy\n1 Q0 11 2 2.0 toy\n1 Q0 15 3 1.0 toy\n"
           "2 Q0 24 1 3.0 toy\n2 Q0 26 2 2.0 toy\n2 Q0 23 3 1.0 toy\n")


def _toy(tmp_path, qrels=TOY_QRELS, run=TOY_RUN):
    (tmp_path / "toy.qrels").write_text(qrels)
    (tmp_path / "toy.trec").write_text(run)
    return str(tmp_path / "toy.trec"), str(tmp_path / "toy.qrels")


def _printed(out: str) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}


def test_evaluate_toy_run(tmp_path, capsys):
    run, qrels = _toy(tmp_path)
    # nDCG@10 with graded gains: q1 ranks grades (1, 2, 0), q2 ranks (1, 0, 2)
    ideal = 2 + 1 / math.log2(3)
    ndcg = ((1 + 2 / math.log2(3)) / ideal + (1 + 2 / math.log2(4)) / ideal) / 2
    assert main(["evaluate", run, "--qrels", qrels]) == 0
    got = _printed(capsys.readouterr().out)
    assert list(got) == ["nDCG@10", "MRR@10", "R@100", "R@1000"]
    assert got == pytest.approx({"nDCG@10": ndcg, "MRR@10": 1.0, "R@100": 1.0,
                                 "R@1000": 1.0}, abs=1e-4)
    # grade >= 2 relevant (DL19's convention): first relevant at ranks 2 and 3
    assert main(["evaluate", run, "--qrels", qrels, "--min-rel", "2",
                 "--measures", "MRR@10,R@1,nDCG@10"]) == 0
    got = _printed(capsys.readouterr().out)
    assert got == pytest.approx({"MRR@10": (1 / 2 + 1 / 3) / 2, "R@1": 0.0,
                                 "nDCG@10": ndcg}, abs=1e-4)


def test_evaluate_unanswered_query_scores_0_with_a_note(tmp_path, capsys):
    run, qrels = _toy(tmp_path, qrels=TOY_QRELS + "3 0 31 1\n")
    assert main(["evaluate", run, "--qrels", qrels, "--measures", "MRR@10"]) == 0
    captured = capsys.readouterr()
    assert _printed(captured.out) == pytest.approx({"MRR@10": 2 / 3}, abs=1e-4)
    assert "answers 2 of the 3 judged queries" in captured.err


@pytest.mark.parametrize("qrels, run, message", [
    ("1 0 11 x\n", TOY_RUN, "toy.qrels:1: expected 'qid iter pid grade'"),
    (TOY_QRELS, "1 Q0 12 1\n", "toy.trec:1: expected 'qid Q0 pid rank score tag'"),
    ("", TOY_RUN, "holds no judgments"),
    (TOY_QRELS, "", "holds no results"),
    ("7 0 11 1\n", TOY_RUN, "no query of"),
])
def test_evaluate_bad_inputs_exit_2(qrels, run, message, tmp_path, capsys):
    run_path, qrels_path = _toy(tmp_path, qrels=qrels, run=run)
    assert main(["evaluate", run_path, "--qrels", qrels_path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_evaluate_missing_files_and_bad_options_exit_2(tmp_path, capsys):
    run, qrels = _toy(tmp_path)
    assert main(["evaluate", str(tmp_path / "absent.trec"), "--qrels", qrels]) == 2
    assert "run " in (err := capsys.readouterr().err) and "absent.trec" in err
    assert main(["evaluate", run, "--qrels", qrels, "--min-rel", "0"]) == 2
    assert "--min-rel must be at least 1" in capsys.readouterr().err
    assert main(["evaluate", run, "--qrels", qrels, "--measures", "MAP"]) == 2
    assert "unknown measure" in capsys.readouterr().err
