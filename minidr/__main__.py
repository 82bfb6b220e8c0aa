"""Command line: ``python -m minidr <command>``.

Commands:
    info         the profile and the data this machine would use
    bm25         run BM25 on a split, print its metrics, optionally write the run
    leaderboard  print the results registry as a table
    subset       rebuild data/minimarco id lists from a MiniMARCO directory (maintainers)
    pretrain     MLM-pretrain a small BERT backbone on MiniMARCO into data/models/<arch>
    teacher-labels  label unlabeled train queries with the teacher (all-MiniLM-L6-v2)
    teacher-scores  the teacher's top-k passages and scores for every training query
    check-scores    compare the chapters' result records with data/expected/<profile>.yaml
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


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
    run = BM25(data.corpus, k1=args.k1, b=args.b, threads=profile.threads).search(split.queries, k=args.k)
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
    print("wrote", out) if out else print("stopped early; run the same command again to resume")


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
    print("wrote", build_teacher_scores(data, Path(args.out or teacher_dir()), k=args.k))


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
        print("A chapter's result moved (or a record is missing). If the change is meant, run "
              f"`python -m minidr check-scores --profile {args.profile} --update` and say why.",
              file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", help="ci, cpu, gpu or colab (default: $MINIDR_PROFILE or cpu)")
    common.add_argument("--data", help="MiniMARCO directory (default: $MINIDR_DATA, else ir_datasets)")
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
    p.add_argument("--data", required=True, help="the MiniMARCO directory to derive ids from")
    p.set_defaults(func=_subset)
    p = sub.add_parser("pretrain", help="MLM pretraining of a small BERT (resumable)")
    p.add_argument("--data", help="MiniMARCO directory (default: $MINIDR_DATA, else ir_datasets)")
    p.add_argument("--arch", default="bert-L2-H128", help="bert-L2-H128, bert-L4-H256 or bert-L4-H512")
    p.add_argument("--slice", default="full", choices=["full", "ci"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="stop after this many steps in this call (resume later)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", help="output folder (default: data/models/<arch>)")
    p.set_defaults(func=_pretrain)
    p = sub.add_parser("teacher-labels", help="label train queries with the teacher (slow: encodes the corpus)")
    p.add_argument("--data", help="MiniMARCO directory (default: $MINIDR_DATA, else ir_datasets)")
    p.add_argument("--slice", default="full", choices=["full", "ci"])
    p.add_argument("--min-margin", type=float, default=None,
                   help="keep a label when top1 - top2 >= this (default: calibrated, see the card)")
    p.add_argument("--out", help="output folder (default: data/teacher)")
    p.set_defaults(func=_teacher_labels)
    p = sub.add_parser("teacher-scores", help="the teacher's top-k for every training query")
    p.add_argument("--data", help="MiniMARCO directory (default: $MINIDR_DATA, else ir_datasets)")
    p.add_argument("--slice", default="full", choices=["full", "ci"])
    p.add_argument("--k", type=int, default=50, help="passages kept per query (default 50)")
    p.add_argument("--out", help="output folder (default: data/teacher)")
    p.set_defaults(func=_teacher_scores)
    p = sub.add_parser("check-scores", help="check result records against the expected scores")
    p.add_argument("--profile", default="ci")
    p.add_argument("--results", help="results folder (default: $MINIDR_RESULTS or results/)")
    p.add_argument("--update", action="store_true", help="write the current records as expected")
    p.set_defaults(func=_check_scores)
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as e:  # clear messages, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
