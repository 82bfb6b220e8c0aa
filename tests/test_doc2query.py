"""doc2query (chapter 13): the query generator, its corpus cache, expansion and
doc2query--'s filter."""
import json

import numpy as np
import pytest
import torch

from minidr.methods import doc2query
from minidr.models.query_generator import QueryGenerator
from minidr.substrate import generated_queries as gq

PASSAGES = ["The Eiffel tower is 330 metres tall and stands in Paris.",
            "Aspirin reduces fever and mild pain.",
            "A cat sleeps about fifteen hours a day."]


@pytest.fixture(scope="module")
def generator(tiny_bert):
    torch.manual_seed(0)
    return QueryGenerator.from_backbone(tiny_bert, max_passage_len=32, max_query_len=6)


def test_labels_are_the_query_tokens_then_the_end_token(generator):
    batch = generator.tokenize(PASSAGES[:2], ["eiffel height", "aspirin"])
    tok, end = generator.tokenizer, generator.tokenizer.sep_token_id
    first = tok("eiffel height", add_special_tokens=False)["input_ids"]
    assert batch["labels"][0, :len(first) + 1].tolist() == first + [end]
    second = tok("aspirin", add_special_tokens=False)["input_ids"]
    assert batch["labels"][1].tolist().count(-100) == len(first) - len(second)
    assert batch["input_ids"].shape[0] == 2
    with pytest.raises(ValueError, match="2 passages but 1 queries"):
        generator.tokenize(PASSAGES[:2], ["x"])


def test_loss_is_the_teacher_forced_cross_entropy_by_hand(generator):
    batch = generator.tokenize(PASSAGES[:2], ["eiffel height", "aspirin for pain"])
    labels = batch["labels"]                                        # (B, T)
    start = generator.model.config.decoder_start_token_id
    inputs = torch.cat([torch.full((2, 1), start), labels[:, :-1]], dim=1)
    inputs = inputs.masked_fill(inputs == -100, generator.tokenizer.pad_token_id)
    generator.eval()
    with torch.no_grad():
        logits = generator.model(input_ids=batch["input_ids"],
                                 attention_mask=batch["attention_mask"],
                                 decoder_input_ids=inputs).logits   # (B, T, V)
        by_hand = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        assert float(generator(batch)) == pytest.approx(float(by_hand), rel=1e-5)


def test_generate_gives_n_seeded_queries_of_valid_tokens(generator):
    out = generator.generate(PASSAGES, n=3, seed=1)
    assert [len(qs) for qs in out] == [3, 3, 3]
    assert out == generator.generate(PASSAGES, n=3, seed=1)          # same seed
    vocab = generator.tokenizer.get_vocab()
    for q in (q for qs in out for q in qs):
        ids = generator.tokenizer(q, add_special_tokens=False)["input_ids"]
        assert len(ids) <= 3 * generator.max_query_len
        assert all(0 <= i < len(vocab) for i in ids)


def test_save_and_load_keep_the_generator(generator, tmp_path):
    generator.save(tmp_path / "gen")
    again = QueryGenerator.from_pretrained(tmp_path / "gen")
    assert again.fingerprint() == generator.fingerprint()
    assert again.max_query_len == 6 and not again.training    # loaded for inference
    assert again.generate(PASSAGES[:1], n=2, seed=3) == generator.generate(
        PASSAGES[:1], n=2, seed=3)


def test_corpus_queries_are_cached_in_whole_parts_and_resume(generator, monkeypatch,
                                                              tmp_path):
    monkeypatch.setenv("MINIDR_CACHE", str(tmp_path))
    corpus = {f"p{i}": PASSAGES[i % 3] for i in range(10)}
    first = gq.generate_corpus_queries(generator, corpus, n=2, batch_size=2, chunk=4)
    assert list(first.queries) == list(corpus)
    assert all(len(qs) == 2 for qs in first.queries.values())
    parts = sorted(p.name for p in first.path.iterdir())
    assert parts == ["done.json", "part-00000.json", "part-00001.json",
                     "part-00002.json"]                       # no temporary files
    (first.path / "part-00001.json").unlink()                 # an interrupted run
    (first.path / "done.json").unlink()
    calls = []
    real = generator.generate
    monkeypatch.setattr(generator, "generate",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    again = gq.generate_corpus_queries(generator, corpus, n=2, batch_size=2, chunk=4)
    assert again.queries == first.queries                     # same seeds per batch
    assert len(calls) == 2                                    # only the missing part
    assert json.loads((again.path / "done.json").read_text())["passages"] == 10
    with pytest.raises(ValueError, match="multiple of batch_size"):
        gq.generate_corpus_queries(generator, corpus, n=2, batch_size=3, chunk=4)
    with pytest.raises(ValueError, match="at least 1"):
        gq.generate_corpus_queries(generator, corpus, n=0)


def test_expanded_corpus_keeps_every_passage_and_id():
    corpus = {"b": "second passage", "a": "first passage", "c": "no queries"}
    generated = {"a": ["q1", "q2", "q3"], "b": ["r1"]}
    out = doc2query.expanded_corpus(corpus, generated, n=2)
    assert list(out) == ["b", "a", "c"]
    assert out == {"b": "second passage r1", "a": "first passage q1 q2",
                   "c": "no queries"}
    assert all(out[p].startswith(corpus[p]) for p in corpus)
    assert doc2query.expanded_corpus(corpus, generated)["a"].endswith("q3")


def test_filter_drops_the_lowest_share_with_one_global_threshold():
    generated = {"a": ["x", "y", "z"], "b": ["u", "v"]}
    scores = {"a": np.array([0.9, 0.1, 0.5]), "b": np.array([0.3, 0.7])}
    kept, t = doc2query.filter_queries(generated, scores, drop=0.4)
    # the 0.4 quantile of [0.1, 0.3, 0.5, 0.7, 0.9] is 0.42: 0.1 and 0.3 go
    assert t == pytest.approx(0.42)
    assert kept == {"a": ["x", "z"], "b": ["v"]}
    assert doc2query.filter_queries(generated, scores, drop=0.0)[0] == generated
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        doc2query.filter_queries(generated, scores, drop=1.0)


def test_query_scores_are_cosines_with_the_own_passage():
    class Teacher:
        def encode_queries(self, texts, batch_size=256):
            vec = {"q-a": [1.0, 0.0], "q-b": [0.0, 1.0], "q-mix": [0.6, 0.8]}
            return np.array([vec[t] for t in texts], dtype=np.float32)

    corpus = {"a": "passage a", "b": "passage b"}
    emb = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    out = doc2query.query_scores(Teacher(), corpus, {"b": ["q-b", "q-mix"],
                                                     "a": ["q-mix"]}, emb)
    assert out["b"].tolist() == pytest.approx([1.0, 0.8])
    assert out["a"].tolist() == pytest.approx([0.6])
