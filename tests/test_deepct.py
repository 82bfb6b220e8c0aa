"""DeepCT: targets on a hand-worked passage, the term-frequency conversion
round-trips (in Python and through Lucene), the term weighter's words and
weights, batches, and the loss."""
import numpy as np
import pytest
import torch

from minidr.methods.deepct import (RECIPE, TermBatches, deepct_targets, mse_loss,
                                   term_frequencies, term_recall, train_deepct,
                                   weighted_corpus, weighted_text)
from minidr.models.term_weighter import TermWeighter
from minidr.retrieval.bm25 import BM25
from minidr.training.batches import Example


def test_term_recall_by_hand():
    # passage: "the eiffel tower is 330 metres tall"; three relevant queries
    passage = ["the", "eiffel", "tower", "is", "330", "metres", "tall"]
    queries = [["how", "tall", "is", "the", "eiffel", "tower"],
               ["eiffel", "tower", "height"],
               ["eiffel", "tower", "height", "in", "metres"]]
    got = term_recall(passage, queries)
    assert got == {"the": 1 / 3, "eiffel": 1.0, "tower": 1.0, "is": 1 / 3,
                   "330": 0.0, "metres": 1 / 3, "tall": 1 / 3}
    with pytest.raises(ValueError, match="relevant query"):
        term_recall(passage, [])


def test_targets_group_the_queries_of_each_passage():
    corpus = {"p1": "Eiffel tower height", "p2": "Louvre opening hours"}
    examples = [Example("q1", "eiffel tower", "p1"),
                Example("q2", "tower height", "p1", teacher=True),
                Example("q3", "louvre hours", "p2")]
    targets = deepct_targets(examples, corpus, str.split)
    assert targets["p1"] == {"Eiffel": 0.0, "tower": 1.0, "height": 0.5}
    assert targets["p2"] == {"Louvre": 0.0, "opening": 0.0, "hours": 1.0}
    assert list(targets) == ["p1", "p2"]


def test_weighted_text_round_trips():
    weights = {"eiffel": 0.874, "tower": 0.31, "the": 0.004, "paris": -0.2,
               "metres": 0.005}
    text = weighted_text(weights, scale=100)
    expected = {"eiffel": 87, "tower": 31, "metres": 1}    # 0.4 rounds to 0, 0.5 up
    assert dict(term_frequencies(text)) == expected
    assert weighted_text({"a": 0.001}) == ""


def test_lucene_counts_the_weighted_frequencies(tmp_path):
    corpus = {"d1": weighted_text({"river": 0.07, "fish": 0.02}),
              "d2": weighted_text({"fish": 0.05, "market": 0.01})}
    bm25 = BM25(corpus, cache_dir=tmp_path)
    assert bm25.term_stats("river") == (1, 7)
    assert bm25.term_stats("fish") == (2, 7)              # 2 + 5 occurrences
    run = bm25.search({"q": "fish"}, k=2)
    assert list(run["q"]) == ["d2", "d1"]                 # higher tf ranks first


def test_words_and_first_token_positions(tiny_bert):
    weighter = TermWeighter.from_pretrained(tiny_bert, max_length=10)
    assert weighter.words("Hot-dogs, in Paris!") == ["hot", "dogs", "in", "paris"]
    features, words, first = weighter.tokenize(["unaffordable housing in paris",
                                                "a b c d e f g h i j"])
    ids = features["input_ids"][0]
    # each word's first token is where the word starts; pieces that continue it
    # (## ...) are skipped; [CLS] is position 0
    pieces = weighter.tokenizer.convert_ids_to_tokens(ids)
    assert [pieces[p] for p in first[0]][1:] == ["housing", "in", "paris"]
    assert all(not pieces[p].startswith("##") for p in first[0])
    assert len(words[1]) == 8                           # 10 tokens: [CLS] 8 [SEP]


def test_word_weights_are_the_head_at_first_tokens_in_input_order(tiny_bert):
    torch.manual_seed(0)
    weighter = TermWeighter.from_pretrained(tiny_bert, max_length=16).eval()
    texts = ["the river and the fish market", "short text", "unaffordable rivers"]
    got = weighter.word_weights(texts, batch_size=2, progress=False)
    features, words, first = weighter.tokenize(texts)
    for i in range(len(texts)):                          # each text alone
        ids = torch.tensor([features["input_ids"][i]])
        with torch.no_grad():
            pred = weighter(ids, torch.ones_like(ids))[0]
        by_hand = {}
        for w, pos in zip(words[i], first[i]):
            by_hand[w] = max(by_hand.get(w, -np.inf), float(pred[pos]))
        assert got[i].keys() == by_hand.keys()
        assert np.allclose(list(got[i].values()), list(by_hand.values()), atol=1e-5)


def test_save_and_load_give_the_same_weights(tiny_bert, tmp_path):
    torch.manual_seed(1)
    weighter = TermWeighter.from_pretrained(tiny_bert, max_length=16)
    weighter.save(tmp_path / "w")
    again = TermWeighter.from_pretrained(tmp_path / "w")
    assert again.max_length == 16
    assert again.fingerprint() == weighter.fingerprint()
    text = ["rivers and fish"]
    assert weighter.word_weights(text, progress=False) == again.word_weights(
        text, progress=False)


def test_batches_put_targets_at_first_tokens_and_the_loss_is_masked(tiny_bert):
    weighter = TermWeighter.from_pretrained(tiny_bert, max_length=16)
    corpus = {"p1": "the river fish", "p2": "unaffordable housing"}
    targets = {"p1": {"the": 0.0, "river": 1.0, "fish": 0.5},
               "p2": {"unaffordable": 1.0, "housing": 0.0}}
    batch = TermBatches(weighter, targets, corpus, batch_size=2)(0)
    assert batch.mask.sum() == 5                          # one per word
    assert sorted(batch.targets[batch.mask == 1].tolist()) == [0, 0, 0.5, 1, 1]
    assert batch.counts() == {"passages_encoded": 2}
    loss, _ = mse_loss(weighter, batch)
    with torch.no_grad():
        pred = weighter(batch.input_ids, batch.attention_mask)
    by_hand = ((pred - batch.targets)[batch.mask == 1] ** 2).mean()
    assert torch.isclose(loss.detach(), by_hand)


def test_training_lowers_the_loss_and_keeps_every_passage(tiny_bert):
    corpus = {"p1": "the river fish", "p2": "unaffordable housing", "p3": "x"}
    targets = {"p1": {"the": 0.0, "river": 1.0, "fish": 0.5},
               "p2": {"unaffordable": 1.0, "housing": 0.0}}
    model, history = train_deepct(str(tiny_bert), targets, corpus, "ci",
                                  RECIPE.__class__(lr=1e-3))
    assert np.mean([h["loss"] for h in history[-5:]]) < history[0]["loss"]
    rewritten = weighted_corpus(model, corpus, progress=False)
    assert list(rewritten) == list(corpus)                # every id, same order
