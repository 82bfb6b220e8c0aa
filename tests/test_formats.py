"""minidr.formats: strict readers, the TREC run round trip, and rank()."""
from __future__ import annotations

import pytest

from minidr.data.formats import (DataFormatError, rank, read_id_text_tsv, read_qrels,
                                 read_trec_run, write_trec_run)

RUN = {
    "q1": {"d1": 3.5, "d2": 12.25, "d3": -1.0, "d4": 0.125},
    "q2": {"d9": 0.5, "d10": 0.75},
    "7": {"100": 1.0},
}


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- TREC runs ------------------------------------------------------------------------

def test_trec_run_round_trip(tmp_path):
    path = write_trec_run(RUN, tmp_path / "sub" / "run.trec", tag="mytag")
    assert path == tmp_path / "sub" / "run.trec"
    back = read_trec_run(path)
    assert set(back) == set(RUN)
    for qid, docs in RUN.items():
        assert back[qid] == pytest.approx(docs, abs=1e-6), qid
    assert rank(back) == rank(RUN)


def test_trec_run_file_lists_ranks_by_descending_score(tmp_path):
    path = write_trec_run(RUN, tmp_path / "run.trec", tag="mytag")
    rows = [line.split() for line in path.read_text().splitlines()]
    assert all(len(r) == 6 and r[1] == "Q0" and r[5] == "mytag" for r in rows)
    by_query = {}
    for qid, _, pid, r, score, _ in rows:
        by_query.setdefault(qid, []).append((int(r), float(score), pid))
    assert set(by_query) == set(RUN)
    for qid, entries in by_query.items():
        assert [r for r, _, _ in entries] == list(range(1, len(RUN[qid]) + 1)), qid
        scores = [s for _, s, _ in entries]
        assert scores == sorted(scores, reverse=True), qid
    assert [p for _, _, p in by_query["q1"]] == ["d2", "d1", "d4", "d3"]


def test_write_trec_run_top_k(tmp_path):
    back = read_trec_run(write_trec_run(RUN, tmp_path / "run.trec", k=2))
    assert set(back["q1"]) == {"d2", "d1"}
    assert set(back["q2"]) == {"d9", "d10"}
    assert set(back["7"]) == {"100"}


def test_write_trec_run_leaves_no_temp_file(tmp_path):
    write_trec_run(RUN, tmp_path / "run.trec")
    assert [p.name for p in tmp_path.iterdir()] == ["run.trec"]


def test_read_trec_run_skips_blank_lines_and_accepts_tabs(tmp_path):
    path = _write(tmp_path, "run.trec", "1 Q0 a 1 2.5 t\n\n1\tQ0\tb\t2\t1.5\tt\r\n")
    assert read_trec_run(path) == {"1": {"a": 2.5, "b": 1.5}}


@pytest.mark.parametrize("bad", [
    "1 Q0 c 3 0.5",              # 5 fields
    "1 Q0 c 3 0.5 tag extra",    # 7 fields
    "1 Q0 c 3 high tag",         # score not a number
])
def test_malformed_run_line_names_file_and_line(tmp_path, bad):
    path = _write(tmp_path, "bad.trec",
                  "1 Q0 a 1 2.5 t\n\n1 Q0 b 2 1.5 t\n" + bad + "\n")
    with pytest.raises(DataFormatError) as e:
        read_trec_run(path)
    assert f"{path}:4:" in str(e.value)  # line 4: the blank line counts


# --- qrels ----------------------------------------------------------------------------

def test_read_qrels_tabs_spaces_and_keep(tmp_path):
    path = _write(tmp_path, "qrels.txt", "1 0 a 1\n1\t0\tb\t0\n2 Q0 c 3\n\n3 0 d -1\n")
    assert read_qrels(path) == {"1": {"a": 1, "b": 0}, "2": {"c": 3}, "3": {"d": -1}}
    assert read_qrels(path, keep={"2"}) == {"2": {"c": 3}}


@pytest.mark.parametrize("bad", ["2 0 c", "2 0 c 1 extra", "2 0 c 1.5", "2 0 c rel"])
def test_malformed_qrels_line_names_file_and_line(tmp_path, bad):
    path = _write(tmp_path, "qrels.txt", "1 0 a 1\n1 0 b 0\n" + bad + "\n")
    with pytest.raises(DataFormatError) as e:
        read_qrels(path, keep={"1"})  # keep does not skip the check
    assert f"{path}:3:" in str(e.value)


def test_qrels_double_minus_grade_is_a_format_error(tmp_path):
    path = _write(tmp_path, "qrels.txt", "1 0 a 1\n1 0 b --1\n")
    with pytest.raises(DataFormatError, match=r"qrels\.txt:2:"):
        read_qrels(path)


# --- id<TAB>text ----------------------------------------------------------------------

def test_read_id_text_tsv(tmp_path):
    path = _write(tmp_path, "q.tsv", "1\tfirst\r\n\n22\tsecond\twith a tab\n3\t\n")
    assert read_id_text_tsv(path) == {"1": "first", "22": "second\twith a tab", "3": ""}
    assert read_id_text_tsv(path, keep={"22"}) == {"22": "second\twith a tab"}


@pytest.mark.parametrize("bad", ["4 no tab here", "x4\ttext", "\ttext"])
def test_malformed_tsv_line_names_file_and_line(tmp_path, bad):
    path = _write(tmp_path, "q.tsv", "1\tfirst\n2\tsecond\n" + bad + "\n")
    with pytest.raises(DataFormatError) as e:
        read_id_text_tsv(path, keep={"1"})
    assert f"{path}:3:" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_missing_file_raises_file_not_found(tmp_path):
    for reader in (read_id_text_tsv, read_qrels, read_trec_run):
        with pytest.raises(FileNotFoundError):
            reader(tmp_path / "absent.tsv")


# --- rank -----------------------------------------------------------------------------

def test_rank_orders_by_score_then_pid():
    run = {"q": {"b": 1.0, "c": 2.0, "a": 1.0, "10": 1.0, "9": 1.0}}
    # ties broken by pid, as strings: "10" < "9" < "a" < "b"
    assert rank(run) == {"q": ["c", "10", "9", "a", "b"]}


def test_rank_ignores_insertion_order():
    items = [("b", 1.0), ("c", 2.0), ("a", 1.0), ("d", 0.5)]
    forward = rank({"q": dict(items)})
    backward = rank({"q": dict(reversed(items))})
    assert forward == backward == {"q": ["c", "a", "b", "d"]}


def test_rank_top_k_and_empty_query():
    run = {"q": {"a": 0.1, "b": 0.3, "c": 0.2}, "empty": {}}
    assert rank(run, 2) == {"q": ["b", "c"], "empty": []}
    assert rank(run, None)["q"] == ["b", "c", "a"]
