"""The teacher's scores of the training queries:
made, written, validated, turned into labels."""
from types import SimpleNamespace

import numpy as np
import pytest

from minidr.data.formats import DataFormatError
from minidr.data.teacher_scores import (SCORES_FILE, TeacherScores, read_teacher_scores,
                                        write_teacher_scores)
from minidr.models.teacher import load_teacher
from minidr.substrate.teacher_labels import label_queries
from minidr.substrate.teacher_scores import build_teacher_scores, training_queries


@pytest.fixture(scope="module")
def teacher():
    return load_teacher(device="cpu")


@pytest.fixture(scope="module")
def tiny(ci):
    """200 passages holding 20 labeled positives,
    20 labeled and 30 unlabeled queries."""
    train = ci.splits["train"]
    qids = sorted(train.qrels)[:20]
    pos = {p for q in qids for p, g in train.qrels[q].items()
           if g > 0 and p in ci.corpus}
    pids = sorted(pos | set(list(ci.corpus)[:200 - len(pos)]))
    split = SimpleNamespace(queries={q: train.queries[q] for q in qids},
                            qrels={q: train.qrels[q] for q in qids})
    unlabeled = dict(list(ci.unlabeled_queries.items())[:30])
    return SimpleNamespace(corpus={p: ci.corpus[p] for p in pids},
                           splits={"train": split},
                           unlabeled_queries=unlabeled, slice_name="test")


@pytest.fixture(scope="module")
def built(tiny, teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    return build_teacher_scores(tiny, out, k=10, teacher=teacher), teacher


def test_built_file_holds_every_training_query_sorted(built, tiny):
    path, _ = built
    s = read_teacher_scores(path)
    assert path.name == SCORES_FILE and (path.parent / "SCORES.md").is_file()
    assert len(s) == 50 and s.k == 10 and s.meta["queries"] == 50
    assert [str(q) for q in s.qids] == list(training_queries(tiny))
    assert (np.diff(s.scores.astype(np.float32), axis=1) <= 1e-3).all()
    assert {str(p) for p in s.pids.ravel()} <= set(tiny.corpus)
    assert s.meta["passages_encoded"] == len(tiny.corpus) and s.meta["seconds"] > 0


def test_labels_are_a_view_of_the_scores(built, tiny):
    path, teacher = built
    s = read_teacher_scores(path)
    emb = teacher.encode_passages(list(tiny.corpus.values()), progress=False)
    exact = label_queries(teacher, list(tiny.corpus), emb, tiny.unlabeled_queries,
                          min_margin=0.02, progress=False)
    view = s.labels(0.02, queries=tiny.unlabeled_queries)
    # float16 scores: margins agree to ~1e-3, so compare away from the threshold
    clear = set(exact.qid[exact.margin > 0.025]) | set(view.qid[view.margin > 0.025])
    assert dict(zip(exact.qid, exact.pid)).items() >= {
        (q, p) for q, p in zip(view.qid, view.pid) if q in clear}
    assert np.allclose(view.set_index("qid").loc[list(clear & set(view.qid)), "score"],
                       exact.set_index("qid").loc[list(clear & set(view.qid)), "score"],
                       atol=2e-3)


def test_run_filters_to_a_corpus_and_queries(built):
    s = read_teacher_scores(built[0])
    some = {str(p) for p in s.pids[:, :3].ravel()}
    run = s.run(corpus=some, queries=[str(s.qids[0])], k=2)
    assert list(run) == [str(s.qids[0])] and len(run[str(s.qids[0])]) == 2
    assert set(run[str(s.qids[0])]) <= some


def _toy(n=4, k=3) -> TeacherScores:
    scores = (np.sort(np.random.default_rng(0).random((n, k)), axis=1)[:, ::-1]
              .astype(np.float16))
    return TeacherScores(np.arange(n, dtype=np.int64),
                         np.arange(n * k, dtype=np.int32).reshape(n, k),
                         scores, {"teacher": "toy", "queries": n})


def test_round_trip_and_clear_errors(tmp_path):
    path = write_teacher_scores(tmp_path / "s.npz", _toy())
    back = read_teacher_scores(path)
    assert np.array_equal(back.pids, _toy().pids) and back.meta["teacher"] == "toy"
    with pytest.raises(FileNotFoundError, match="teacher-scores"):
        read_teacher_scores(tmp_path / "missing.npz")
    path.write_bytes(path.read_bytes()[:100])                       # truncated
    with pytest.raises(DataFormatError, match="s.npz"):
        read_teacher_scores(path)
    bad = _toy()
    with pytest.raises(DataFormatError, match="sorted"):
        write_teacher_scores(tmp_path / "u.npz",
                             TeacherScores(bad.qids, bad.pids, bad.scores[:, ::-1],
                                           bad.meta))
    with pytest.raises(DataFormatError, match="truncated"):
        write_teacher_scores(tmp_path / "t.npz",
                             TeacherScores(bad.qids[:3], bad.pids[:3], bad.scores[:3],
                                           bad.meta))
    assert not (tmp_path / "u.npz").exists() and not (tmp_path / "t.npz").exists()


def test_committed_scores_cover_every_training_query(full):
    """The committed file: every training query, every passage in the corpus."""
    from minidr.data.teacher_labels import load_teacher_labels
    from minidr.data.teacher_scores import load_teacher_scores

    s = load_teacher_scores()
    assert s.k == 50 and s.meta["corpus_fingerprint"]
    assert [str(q) for q in s.qids] == list(training_queries(full))
    assert {str(p) for p in s.pids.ravel()} <= set(full.corpus)
    labels = load_teacher_labels()
    view = s.labels(labels.attrs["min_margin"])
    view = dict(zip(view.qid, view.pid))
    same = sum(view.get(q) == p for q, p in zip(labels.qid, labels.pid))
    assert same >= 0.99 * len(labels)                 # float16 decides at the threshold


def test_the_corpus_encode_is_kept_for_the_chapters(built, tiny):
    from minidr.core.cost import CostMeter
    from minidr.retrieval.dense import encode_corpus

    meter = CostMeter()
    encode_corpus(built[1], tiny.corpus, cost=meter)       # from the cache
    assert "passages_encoded" not in meter.counts
