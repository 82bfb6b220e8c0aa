"""Train, evaluate and commit the shared warm-up student, with its card.

``python -m minidr student`` runs :func:`build_student`: it distils the teacher
into :data:`~minidr.substrate.student.RECIPE`'s backbone (resumable: the
checkpoint folder is keyed by everything that decides the result), measures a
quality curve on the way, saves the weights (fp16 safetensors) under
``data/models/<name>``, evaluates the *saved* model on DL19 and dev against
BM25 with paired bootstrap intervals, and writes ``README.md`` (the card) and
``student.json`` (every figure of the card) beside the weights.
"""
from __future__ import annotations

import copy
import json
import platform
import time
from pathlib import Path

import torch

from ..core.atomic import atomic_write_text
from ..core.cost import CostMeter
from ..core.paths import cache_root
from ..data.formats import corpus_fingerprint
from ..data.teacher_scores import load_teacher_scores
from ..evaluation.curve import QualityCurve
from ..evaluation.metrics import SPLIT_MEASURES, compare_splits, evaluate
from ..models.bi_encoder import BiEncoder
from ..models.loading import resolve_model_path
from ..models.teacher import TEACHER, load_teacher
from ..retrieval.bm25 import BM25
from ..retrieval.dense import dense_runs
from .student import (RECIPE, DistillBatches, StudentRecipe, student_examples,
                      student_key, student_start, teacher_embeddings, train_student)

__all__ = ["STUDENT", "student_folder", "build_student", "load_student",
           "student_record", "student_cost"]


# Where each recipe's backbone comes from, said on the student's card.
START_NOTES = {
    "data/models/splade-tiny": (
        "The backbone `data/models/splade-tiny` is SPLADE-tiny\n(2 layers, hidden 128, "
        "the shape of `google/bert_uncased_L-2_H-128_A-2`), a learned\nsparse "
        "retriever that was already trained on MS MARCO training data; see its card."),
    TEACHER: (
        "The student is the teacher's own bottom layers\n(`{backbone}`, cut to "
        "{layers} of its 6 layers, as DistilBERT starts from its\nteacher's layers): "
        "it starts as a weaker copy of the teacher and is trained to close the gap."),
}


def student_folder(recipe: StudentRecipe = RECIPE) -> str:
    """``data/models/student-<size>``: where :func:`build_student` writes ``recipe``'s
    student."""
    return f"data/models/student-{recipe.size}"


STUDENT = student_folder(RECIPE)    # "data/models/student-L2-H128", the shared one


def _save_fp16(student: BiEncoder, out: Path) -> None:
    """``student.save(out)`` with the weights stored in float16 (half the size;
    :func:`~minidr.models.loading.load_backbone` reads them back in float32)."""
    copy.deepcopy(student).half().save(out)


def _compare_rows(runs: dict, data) -> dict:
    """Student vs BM25 on each split's measure: delta, interval, detectable."""
    out = {}
    for split, table in compare_splits(runs, data, baseline="BM25").items():
        measure, row = SPLIT_MEASURES[split], table.loc["student"]
        out[split] = {"measure": measure, "queries": len(data.splits[split].queries),
                      "bm25": float(table.loc["BM25", measure]),
                      "student": float(row[measure]), "delta": float(row["delta"]),
                      "ci": [float(row["ci_low"]), float(row["ci_high"])],
                      "detectable": float(row["detectable"]),
                      "differs": str(row["differs"])}
    return out


def build_student(data, profile, out_dir: str | Path | None = None,
                  recipe: StudentRecipe = RECIPE, device: str | None = None) -> Path:
    """Distil the teacher into the student (or resume), then evaluate, save, card.

    Args:
        data: the full :class:`~minidr.data.minimarco.MiniMarco` (the committed
            student is trained on all 49,439 training queries).
        profile: its budget (:meth:`StudentRecipe.budget`).
        out_dir: destination folder (default :func:`student_folder`).
        recipe: the student's settings.
        device: ``"cpu"`` or ``"cuda"`` (default: CUDA if available).

    Returns:
        The written folder.
    """
    out_dir = Path(out_dir or student_folder(recipe))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    budget = recipe.budget(profile)
    scores = load_teacher_scores()
    examples = student_examples(data, scores)
    prep = CostMeter()
    with prep:   # the teacher's query embeddings (cached after the first run)
        teacher = load_teacher(device)
        q_emb = teacher_embeddings(teacher, {e.qid: e.query for e in examples},
                                   passages=False, cost=prep)
        p_emb = teacher_embeddings(teacher, data.corpus, passages=True, cost=prep)
        del teacher
    student = student_start(recipe)

    def measure() -> dict:
        student.eval()
        runs = dense_runs(student, data, cache=False)
        student.train()
        return {f"{s} {m}": evaluate(runs[s], data.splits[s])[m]
                for s, m in SPLIT_MEASURES.items()}

    start = measure()                       # what the start already scores
    curve = QualityCurve(measure, every=budget.eval_every).start()
    batches = DistillBatches(student, examples, data.corpus, scores, q_emb, p_emb,
                             budget.batch_size, recipe.hard_ranks)
    checkpoints = cache_root() / "student" / student_key(recipe, profile, data,
                                                         examples)
    trainer = train_student(student, batches, budget.steps, recipe,
                            checkpoint_dir=str(checkpoints), callbacks=[curve],
                            device=device)
    train_seconds = trainer.cost.seconds - curve.measuring_seconds
    _save_fp16(student.cpu(), out_dir)

    saved = BiEncoder.from_pretrained(out_dir).eval()     # the committed weights
    started = time.time()
    runs = {"student": dense_runs(saved, data, cache=False)}
    search_seconds = time.time() - started
    bm25 = BM25(data.corpus, threads=profile.threads)
    runs["BM25"] = {s: bm25.search(data.splits[s].queries) for s in SPLIT_MEASURES}
    metrics = {s: evaluate(runs["student"][s], data.splits[s]) for s in SPLIT_MEASURES}
    hardware = (f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                + (f"CUDA {torch.cuda.get_device_name()}" if device == "cuda"
                   else "CPU"))
    card = {"name": out_dir.name, "recipe": recipe.settings(),
            "budget": budget.__dict__, "profile": getattr(profile, "name", profile),
            "examples": len(examples),
            "teacher_labeled": sum(e.teacher for e in examples),
            "corpus_fingerprint": corpus_fingerprint(data.corpus),
            "train_seconds": round(train_seconds, 1),
            "train_counts": dict(trainer.cost.counts),
            "teacher_embedding_seconds": round(prep.seconds, 1),
            "teacher_scores_seconds": scores.meta.get("seconds"),
            "teacher_scores_hardware": scores.meta.get("hardware"),
            "corpus_encode_and_search_seconds": round(search_seconds, 1),
            "start": start, "curve": curve.points, "metrics": metrics,
            "vs_bm25": _compare_rows(runs, data), "hardware": hardware,
            "torch": torch.__version__, "teacher": TEACHER,
            "final_loss_last50": round(sum(h["loss"] for h in trainer.history[-50:])
                                       / max(1, len(trainer.history[-50:])), 4)}
    atomic_write_text(out_dir / "student.json", json.dumps(card, indent=2) + "\n")
    atomic_write_text(out_dir / "README.md", student_card(card))
    return out_dir


def student_record(folder: str | Path = STUDENT) -> dict:
    """The ``student.json`` that :func:`build_student` wrote beside the weights:
    recipe, budget, cost, quality curve and the comparison with BM25."""
    path = Path(resolve_model_path(str(folder))) / "student.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"{path} is missing or unreadable ({err}); it is committed with the "
            "student: restore it with git, or re-create it with "
            "`python -m minidr student`") from err


def student_cost(folder: str | Path = STUDENT) -> dict:
    """What the committed student cost to make, from its ``student.json``.

    Returns:
        ``{"wall_seconds", "steps", "queries_encoded", "passages_encoded",
        "teacher_scores_seconds"}``: its distillation (the quality curve's own time
        excluded) and, separately, the teacher's scores it learned from.
    """
    card = student_record(folder)
    return {"wall_seconds": card["train_seconds"], **card["train_counts"],
            "teacher_scores_seconds": card["teacher_scores_seconds"] or 0.0}


def load_student(folder: str | Path = STUDENT,
                 device: str | None = None) -> tuple[BiEncoder, dict]:
    """The shared warm-up student, where chapters 05-07 start, and its cost.

    Args:
        folder: the student's folder (default :data:`STUDENT`, committed).
        device: where to put it (default: CUDA if available).

    Returns:
        ``(encoder, cost)``: a :class:`~minidr.models.bi_encoder.BiEncoder` in
        float32, in eval mode (trainers switch to train mode), and
        :func:`student_cost`.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return (BiEncoder.from_pretrained(folder).to(device).eval(),
            student_cost(folder))


def student_card(card: dict) -> str:
    """The model card (markdown) of a :func:`build_student` record."""
    r, b = card["recipe"], card["budget"]
    lines = []
    for split, c in card["vs_bm25"].items():
        lines.append(f"| {split} ({c['queries']} queries) | {c['measure']} | "
                     f"{c['student']:.3f} | {c['bm25']:.3f} | {c['delta']:+.3f} "
                     f"[{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] | "
                     f"{c['detectable']:.3f} | {c['differs']} |")
    points = ([{"step": 0, "seconds": 0.0, **card["start"]}] if "start" in card
              else []) + card["curve"]
    curve = "\n".join(f"| {p['step']} | {p['seconds']:.0f} | {p['dl19 nDCG@10']:.3f} | "
                      f"{p['dev MRR@10']:.3f} |" for p in points)
    folder = f"data/models/{card['name']}"
    shared = folder == STUDENT
    role = ("Chapters 05-07 and later start from it." if shared else
            f"A larger student than the shared `{STUDENT}`, trained to measure what a "
            "stronger start costs.")
    command = "python -m minidr student" + ("" if shared else
                                            f" --size {r.get('size')}")
    origin = START_NOTES[r["backbone"]].format(**r)
    passages = card["train_counts"].get("passages_encoded", 0)
    ts = card["teacher_scores_seconds"] or 0
    return f"""\
# {card['name']}: {"the shared warm-up student" if shared else "a larger student"}

A bi-encoder (mean pooling, cosine; {r['max_query_len']}/{r['max_passage_len']} \
tokens) distilled from the teacher
`{card['teacher']}` on the {card['examples']:,} MiniMARCO training queries
({card['examples'] - card['teacher_labeled']} labeled, {card['teacher_labeled']:,} \
with the teacher's top-1
as positive). {role} Weights: fp16 safetensors;
load with `BiEncoder.from_pretrained("{folder}")`.

**Where it starts, said openly.** {origin}
The teacher also saw MS MARCO training data. Neither saw TREC DL 2019 or our dev
queries. So this student stands on MS MARCO supervision beyond our 49k queries.

| | |
|---|---|
| command | `{command}` (resumable) |
| recipe | in-batch listwise KL to the teacher's cosine scores; per query its \
positive + one hard negative from the teacher's ranks \
{r['hard_ranks'][0]}-{r['hard_ranks'][1] - 1}; temperatures {r['temperature']} \
(student) and {r['teacher_temperature']} (teacher) |
| steps x batch | {b['steps']:,} x {b['batch_size']} queries \
({b['steps'] * b['batch_size']:,} query visits in shuffled epochs, {passages:,} \
passages encoded), AdamW lr {r['lr']}, 10% warm-up, linear decay |
| training time | {card['train_seconds']:.0f} s ({card['hardware']}, torch \
{card['torch']}; the quality curve's own time excluded) |
| teacher cost | scores of every training query {ts:.0f} s \
({card['teacher_scores_hardware']}); the teacher's query embeddings \
{card['teacher_embedding_seconds']:.0f} s in this call (the embedding cache keeps \
them after their first computation) |
| final loss | {card['final_loss_last50']} (mean KL of the last 50 steps) |

## Against BM25 (the saved weights; paired bootstrap, 95%)

| split | measure | student | BM25 | difference [interval] | detectable | differs |
|---|---|---|---|---|---|---|
{chr(10).join(lines)}

"detectable" is the smallest difference each query set would detect (80% power).

## Quality during training

| step | seconds | DL19 nDCG@10 | dev MRR@10 |
|---|---|---|---|
{curve}

`student.json` holds every figure above.
"""
