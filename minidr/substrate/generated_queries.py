"""Generated queries of a whole corpus, cached on disk: the expensive part of
doc2query (chapter 13) and QGen/GPL (chapter 11).

Generating a few queries for each of 43k passages takes tens of minutes on two
CPU cores, so the result is kept under
``<cache_root()>/generated/<generator>-<corpus>-n<n>-k<top_k>-s<seed>-b<batch>/``
(generator and corpus fingerprints, sampling settings), written one chunk of
passages at a time: each ``part-NNNNN.json`` appears whole or not at all
(atomic rename), an interrupted run resumes at the first missing part, and
``done.json`` (the cost) is written last. Each batch samples with a seed
derived from its first passage's position, so a resumed run writes the same
queries as an uninterrupted one.

Example::

    gq = generate_corpus_queries(gen, mm.corpus, n=4)   # minutes, then cached
    gq.queries["7067032"]                                # ['what is ...', ...]
    gq.cost            # {"seconds": ..., "passages": ..., "passages_per_second": ...}
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic import atomic_write_text
from ..core.paths import cache_root
from ..core.progress import progress_bar
from ..data.formats import Corpus, corpus_fingerprint
from ..models.query_generator import QueryGenerator

__all__ = ["GeneratedQueries", "generate_corpus_queries", "generated_dir"]

DONE = "done.json"


@dataclass
class GeneratedQueries:
    """A corpus's generated queries and what generating them cost.

    Attributes:
        queries: pid -> its ``n`` generated queries, in corpus order.
        cost: ``seconds`` (generation time summed over chunks, including any
            earlier interrupted run), ``passages``, ``passages_per_second``,
            ``queries_per_passage``.
        path: the cache folder.
    """

    queries: dict[str, list[str]]
    cost: dict
    path: Path


def generated_dir(generator_fingerprint: str, corpus: Corpus, n: int, top_k: int,
                  seed: int, batch_size: int) -> Path:
    """The cache folder of one (generator, corpus, sampling) combination (the
    batch size is part of it: each batch draws from its own seed)."""
    key = (f"{generator_fingerprint}-{corpus_fingerprint(corpus)}-n{n}-k{top_k}"
           f"-s{seed}-b{batch_size}")
    return cache_root() / "generated" / key


def _part(path: Path, index: int) -> Path:
    return path / f"part-{index:05d}.json"


def generate_corpus_queries(generator: QueryGenerator, corpus: Corpus, n: int,
                            top_k: int = 10, seed: int = 0, batch_size: int = 64,
                            chunk: int = 1024,
                            fingerprint: str | None = None) -> GeneratedQueries:
    """``n`` queries for every passage of ``corpus``, from the cache when there.

    Args:
        generator: the :class:`~minidr.models.query_generator.QueryGenerator`.
        corpus: pid -> text.
        n: queries per passage (a smaller ``n`` is a prefix: take ``[:m]``).
        top_k: top-k sampling (docTTTTTquery: 10).
        seed: sampling seed.
        batch_size: passages per ``generate`` call.
        chunk: passages per cache part (a multiple of ``batch_size``).
        fingerprint: the generator's fingerprint if already known.

    Returns:
        :class:`GeneratedQueries`.

    Raises:
        ValueError: ``n < 1`` or ``chunk`` not a multiple of ``batch_size``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1 query per passage, got {n}")
    if chunk % batch_size:
        raise ValueError(f"chunk ({chunk}) must be a multiple of batch_size "
                         f"({batch_size}) so that seeds do not depend on chunking")
    path = generated_dir(fingerprint or generator.fingerprint(), corpus, n, top_k, seed,
                         batch_size)
    pids = list(corpus)
    starts = range(0, len(pids), chunk)
    todo = [i for i, _ in enumerate(starts) if not _part(path, i).is_file()]
    for i in (progress_bar(todo, desc=f"generating {n} queries per passage",
                           unit="chunk") if todo else ()):
        t0, rows = time.perf_counter(), {}
        for b in range(i * chunk, min((i + 1) * chunk, len(pids)), batch_size):
            batch = pids[b:b + batch_size]
            out = generator.generate([corpus[p] for p in batch], n=n, top_k=top_k,
                                     seed=seed * 1_000_003 + b)
            rows.update(zip(batch, out))
        atomic_write_text(_part(path, i), json.dumps(
            {"seconds": time.perf_counter() - t0, "queries": rows}) + "\n")
    queries, seconds = {}, 0.0
    for i, _ in enumerate(starts):
        part = json.loads(_part(path, i).read_text())
        queries.update(part["queries"])
        seconds += part["seconds"]
    cost = {"seconds": round(seconds, 1), "passages": len(queries),
            "passages_per_second": round(len(queries) / max(seconds, 1e-9), 1),
            "queries_per_passage": n}
    if not (path / DONE).is_file():
        atomic_write_text(path / DONE, json.dumps(cost) + "\n")
    return GeneratedQueries(queries, cost, path)
