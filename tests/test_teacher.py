"""minidr.teacher: all-MiniLM-L6-v2 offline, confident labelling, the labels file.

The teacher (22M parameters) is loaded once per module; it encodes only toy
texts and ~50 MiniMARCO passages here, never the whole corpus.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from minidr.data.formats import DataFormatError
from minidr.data.teacher_labels import read_labels, write_labels
from minidr.models.teacher import TEACHER, load_teacher, teacher_path
from minidr.substrate.teacher_labels import label_queries

TOY = {"p1": "Spiders have eight legs and most of them have eight eyes.",
       # a duplicate: a tie
       "p2": "Spiders have eight legs and most of them have eight eyes.",
       "p3": "Paris is the capital and most populous city of France.",
       "p4": "The Great Wall of China is thousands of kilometres long.",
       "p5": "Photosynthesis lets plants turn sunlight, water and carbon dioxide "
             "into sugar."}
TOY_Q = {"q_spider": "how many legs does a spider have",
         "q_paris": "what is the capital of france",
         "q_plants": "how do plants make food from sunlight"}


@pytest.fixture(scope="module")
def teacher():
    return load_teacher(device="cpu")


@pytest.fixture(scope="module")
def toy_emb(teacher):
    return teacher.encode_passages(list(TOY.values()), progress=False)    # (5, 384)


def test_teacher_loads_offline_and_ranks_the_relevant_passage_first(teacher, toy_emb):
    assert teacher.name_or_path == TEACHER
    assert teacher_path() != TEACHER  # the bundled copy, not the hub
    assert teacher.settings == {"pooling": "mean", "similarity": "cos", "shared": True,
                                "max_query_len": 256, "max_passage_len": 256}
    # (2, 384)
    q = teacher.encode_queries([TOY_Q["q_paris"], TOY_Q["q_plants"]], progress=False)
    scores = q @ toy_emb.T                        # cosine: unit vectors
    assert list(np.array(list(TOY))[scores.argmax(1)]) == ["p3", "p5"]
    assert scores[0, 2] > scores[0].mean() + 0.3  # by a wide margin


def test_teacher_equals_sentence_transformers(teacher, toy_emb):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(teacher_path(), device="cpu")
    assert np.abs(st.encode(list(TOY.values())) - toy_emb).max() < 1e-5


def test_label_queries_keeps_confident_queries_only(teacher, toy_emb):
    pids = list(TOY)
    labels = label_queries(teacher, pids, toy_emb, TOY_Q, min_margin=0.05,
                           progress=False)
    assert list(labels.columns) == ["qid", "pid", "score", "margin"]
    # the spider query's top two are the duplicates p1/p2: a tie, margin 0, dropped
    assert dict(zip(labels.qid, labels.pid)) == {"q_paris": "p3", "q_plants": "p5"}
    assert (labels.margin >= 0.05).all() and (labels.score <= 1 + 1e-6).all()
    assert labels.attrs == {"teacher": TEACHER, "min_margin": 0.05, "queries": 3}

    everything = label_queries(teacher, pids, toy_emb, TOY_Q, min_margin=0.0,
                               progress=False)
    assert len(everything) == 3 and set(everything.pid) <= set(pids)
    tie = everything.set_index("qid").loc["q_spider"]
    assert tie.pid in {"p1", "p2"} and tie.margin == 0.0
    assert label_queries(teacher, pids, toy_emb, TOY_Q, min_margin=2.0,
                         progress=False).empty
    again = label_queries(teacher, pids, toy_emb, TOY_Q, min_margin=0.0, progress=False)
    pd.testing.assert_frame_equal(everything, again)                  # deterministic


def test_label_queries_checks_its_inputs(teacher, toy_emb):
    with pytest.raises(ValueError, match="corpus ids"):
        label_queries(teacher, list(TOY)[:4], toy_emb, TOY_Q, min_margin=0.1,
                      progress=False)
    with pytest.raises(ValueError, match="dimensions"):
        label_queries(teacher, list(TOY), toy_emb[:, :100], TOY_Q, min_margin=0.1,
                      progress=False)
    with pytest.raises(ValueError, match="k >= 2"):
        label_queries(teacher, list(TOY), toy_emb, TOY_Q, min_margin=0.1, k=1,
                      progress=False)


def test_label_queries_on_minimarco(teacher, ci):
    """20 training queries over a 50-passage corpus:
    their positives and 30 other passages."""
    train = ci.splits["train"]
    qids = list(train.queries)[:20]
    positives = {q: next(iter(train.qrels[q])) for q in qids}
    others = [p for p in ci.corpus
              if p not in positives.values()][:50 - len(set(positives.values()))]
    pids = list(dict.fromkeys([*positives.values(), *others]))
    # (50, 384)
    emb = teacher.encode_passages([ci.corpus[p] for p in pids], progress=False)
    queries = {q: train.queries[q] for q in qids}
    labels = label_queries(teacher, pids, emb, queries, min_margin=0.05, progress=False)
    assert set(labels.pid) <= set(pids) and set(labels.qid) <= set(qids)
    assert list(labels.qid) == [q for q in qids if q in set(labels.qid)]  # input order
    assert len(labels) >= 5
    agree = np.mean([positives[q] == p for q, p in zip(labels.qid, labels.pid)])
    assert agree >= 0.8, (
        f"the confident teacher agrees with the qrels on only {agree:.0%}")
    strict = label_queries(teacher, pids, emb, queries,
                           min_margin=float(labels.margin.median()), progress=False)
    assert 0 < len(strict) < len(labels) and set(strict.qid) < set(labels.qid)


def test_labels_round_trip(tmp_path):
    df = pd.DataFrame({"qid": ["1", "22"], "pid": ["7", "8"], "score": [0.75, 0.5],
                       "margin": [0.125, 0.0625]})
    df.attrs.update(teacher=TEACHER, min_margin=0.05, queries=10)
    path = write_labels(df, tmp_path / "labels.tsv")
    lines = path.read_text().splitlines()
    assert lines[0] == f"# teacher={TEACHER}, min_margin=0.05, queries=10, kept=2"
    assert (lines[1] == "qid\tpid\tscore\tmargin"
            and lines[2] == "1\t7\t0.750000\t0.125000")
    back = read_labels(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back.attrs == df.attrs
    bare = df.copy()
    bare.attrs = {"teacher": TEACHER}  # min_margin, queries unknown
    with pytest.raises(ValueError, match="min_margin"):
        write_labels(bare, tmp_path / "x.tsv")
    # given explicitly: fine
    write_labels(bare, tmp_path / "x.tsv", min_margin=0.1, queries=2)
    assert read_labels(tmp_path / "x.tsv").attrs["min_margin"] == 0.1


@pytest.mark.parametrize("lineno,bad,match", [
    (3, "1\t7\tnot-a-number\t0.1", ":3: expected 'qid"),
    (4, "22\t8\t0.5", ":4: expected 'qid"),
    (4, "1\t8\t0.5\t0.1", ":4: expected one label per query"),
    (3, "1\t7\t0.75\t-0.5", ":3: expected non-empty ids"),
    (1, "# teacher=x, kept=2", ":1: expected '# teacher="),
    (2, "qid pid score margin", ":2: expected"),
])
def test_read_labels_names_file_and_line(tmp_path, lineno, bad, match):
    path = tmp_path / "labels.tsv"
    lines = [f"# teacher={TEACHER}, min_margin=0.05, queries=10, kept=2",
             "qid\tpid\tscore\tmargin",
             "1\t7\t0.750000\t0.125000", "22\t8\t0.500000\t0.062500"]
    lines[lineno - 1] = bad
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=f"{path}{match}"):
        read_labels(path)


def test_read_labels_detects_truncation(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text(f"# teacher={TEACHER}, min_margin=0.05, queries=10, kept=3\n"
                    "qid\tpid\tscore\tmargin\n1\t7\t0.75\t0.125\n")
    with pytest.raises(DataFormatError, match="kept=3 but there are 1 rows"):
        read_labels(path)
