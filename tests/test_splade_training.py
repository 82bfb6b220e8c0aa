"""Chapter 14's SPLADE training: FLOPS and its schedule by hand, the loss by
hand, the regulariser making vectors sparser, saving, pruning and exact search."""
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from minidr.methods import splade
from minidr.models.splade import Splade
from minidr.retrieval.impact import exact_search, prune
from minidr.training.batches import Example, GroupedBatches

CORPUS = {str(i): f"passage {i} about rivers and fish number {i * 7} in the delta"
          for i in range(24)}
EXAMPLES = [Example(f"q{i}", f"fish in river {i}", str(i)) for i in range(16)]
NEGATIVES = {e.qid: [str((int(e.positive) + 1) % 24), str((int(e.positive) + 2) % 24)]
             for e in EXAMPLES}


def fake_targets(qids, pids, group):
    """A teacher that likes the positive: 1 for column 0, 0 for the rest."""
    out = torch.zeros(len(qids), group)
    out[:, 0] = 1.0
    return out


def test_flops_by_hand():
    w = torch.tensor([[1.0, 0.0, 3.0], [0.0, 0.0, 1.0]])
    # means (0.5, 0, 2): 0.25 + 0 + 4
    assert splade.flops(w).item() == pytest.approx(4.25)
    # the same weight per text: a term both texts use costs more than two terms
    # one text each uses (means 1 vs 0.5, 0.5: 1 vs 0.5)
    shared = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    spread = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert splade.flops(spread).item() == 0.5 < splade.flops(shared).item() == 1.0


def test_quadratic_schedule():
    assert [splade.reg_schedule(2.0, s, 10) for s in (0, 5, 10, 20)] == \
        [0.0, 0.5, 2.0, 2.0]
    assert splade.reg_schedule(2.0, 0, 0) == 2.0


def test_loss_by_hand(tiny_bert):
    model = Splade.from_pretrained(tiny_bert, max_length=16, max_query_len=8).eval()
    batch = GroupedBatches(model, EXAMPLES, CORPUS, 4, 1, NEGATIVES)(0)
    assert batch.queries["input_ids"].shape[1] <= 8
    with torch.no_grad():
        loss, stats = splade.splade_loss(model, batch, fake_targets, 0.3)
        q = model.encode_query(**batch.queries)                         # (4, V)
        p = model.encode_passage(**batch.passages).view(4, 2, -1)       # (4, 2, V)
        s = torch.einsum("bv,bgv->bg", q, p)
        t = fake_targets(batch.qids, batch.pids, 2) / splade.RECIPE.teacher_temperature
        mse = (((s[:, 0] - s[:, 1]) - (t[:, 0] - t[:, 1])) ** 2).mean()
        reg = 0.3 * ((q.mean(0) ** 2).sum() + (p.reshape(8, -1).mean(0) ** 2).sum())
    assert loss.item() == pytest.approx((mse + reg).item(), rel=1e-5)
    assert stats["p_terms"] == pytest.approx((p > 0).sum(-1).float().mean().item())
    with torch.no_grad():                             # lambda_q apart from lambda_d
        split, _ = splade.splade_loss(model, batch, fake_targets, 0.3,
                                      query_reg_weight=3.0)
    extra = 2.7 * (q.mean(0) ** 2).sum()
    assert split.item() == pytest.approx((mse + reg + extra).item(), rel=1e-5)


def test_a_strong_regulariser_makes_vectors_sparser(tiny_bert):
    recipe = replace(splade.RECIPE, lr=3e-3, reg_warmup=0.0)
    terms = {}
    for weight in (0.0, 50.0):
        torch.manual_seed(0)
        model = Splade.from_pretrained(tiny_bert, max_length=16, max_query_len=8)
        trainer = splade.train_splade(model, EXAMPLES, CORPUS, NEGATIVES, fake_targets,
                                      weight, steps=12, batch_size=4, recipe=recipe,
                                      device="cpu")
        assert len(trainer.history) == 12
        terms[weight] = model.eval().encode(list(CORPUS.values()),
                                            progress=False).getnnz(axis=1).mean()
    assert terms[50.0] < 0.5 * terms[0.0]
    with pytest.raises(ValueError, match="reg_weight"):
        splade.train_splade(model, EXAMPLES, CORPUS, NEGATIVES, fake_targets, -1.0,
                            steps=1, batch_size=4)


def test_save_and_load_keep_weights_and_lengths(tiny_bert, tmp_path):
    model = Splade.from_pretrained(tiny_bert, max_length=16, max_query_len=8)
    model.save(tmp_path / "splade")
    again = Splade.from_pretrained(tmp_path / "splade")
    assert (again.max_length, again.max_query_len) == (16, 8)
    assert again.fingerprint() == model.fingerprint()
    assert not list(tmp_path.glob("*.tmp*"))                # nothing half-written


def test_prune_keeps_the_heaviest_terms():
    v = sp.csr_matrix(np.array([[0.5, 2.0, 1.0, 0.0, 3.0], [0.0, 0.1, 0.0, 0.0, 0.0]]))
    got = prune(v, 2).toarray()
    assert got.tolist() == [[0.0, 2.0, 0.0, 0.0, 3.0], [0.0, 0.1, 0.0, 0.0, 0.0]]
    assert v.nnz == 5                                       # the input is untouched
    with pytest.raises(ValueError, match="keep"):
        prune(v, 0)


def test_exact_search_is_the_dot_product_in_chunks():
    rng = np.random.default_rng(0)
    docs = sp.csr_matrix(rng.random((50, 30)) * (rng.random((50, 30)) < 0.2))
    queries = sp.csr_matrix(rng.random((7, 30)) * (rng.random((7, 30)) < 0.3))
    pids, qids = [f"d{i}" for i in range(50)], [f"q{i}" for i in range(7)]
    run = exact_search(queries, docs, qids, pids, k=5, chunk=3)
    full = (queries @ docs.T).toarray()
    for i, q in enumerate(qids):
        best = np.argsort(-full[i], kind="stable")[:5]
        assert list(run[q]) == [pids[j] for j in best]
        assert run[q][pids[best[0]]] == pytest.approx(full[i, best[0]])
    with pytest.raises(ValueError, match="query vectors"):
        exact_search(queries, docs, qids[:3], pids)
