"""doc2query and doc2query--: passages expanded with generated queries, searched
with BM25 (chapter 13).

A query and its relevant passage often use different words ("how tall" vs
"330 metres"). doc2query (Nogueira et al. 2019) moves the query side's words
into the index: a sequence-to-sequence model trained on (passage, query)
pairs writes ``n`` queries for every passage, sampled with top-k sampling,

    q_1, ..., q_n ~ p(q | d),    d' = d ⊕ q_1 ⊕ ... ⊕ q_n,

and the expanded passages ``d'`` are indexed and searched with plain BM25
(:func:`expanded_corpus`). The queries add words the passage lacks and repeat
the words it has that people ask about: both change BM25's scores, and query
time stays BM25's.

doc2query-- (Gospodinov et al. 2023) filters first: generated queries that a
relevance model scores low against their own passage are hallucinations that
only inflate the index; one global threshold at a chosen quantile of all
scores drops the lowest share ``drop`` of them (:func:`filter_queries`). Here
the relevance model is the teacher's cosine between the generated query and
its passage (:func:`query_scores`).

References:
    Nogueira, Yang, Lin & Cho (2019), Document Expansion by Query Prediction,
    arXiv 1904.08375. Nogueira & Lin (2019), From doc2query to docTTTTTquery.
    Gospodinov, MacAvaney & Macdonald (2023), Doc2Query--: When Less is More,
    ECIR.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..data.formats import Corpus
from ..training.recipe import Recipe

__all__ = ["Doc2QueryRecipe", "RECIPE", "expand", "expanded_corpus", "query_scores",
           "filter_queries"]


@dataclass(frozen=True)
class Doc2QueryRecipe(Recipe):
    """Chapter 13's settings.

    Attributes:
        queries_per_passage: profile -> the numbers of generated queries
            compared (the largest is generated; smaller ones are its prefixes).
        top_k: top-k sampling (docTTTTTquery's 10).
        drops: doc2query--'s shares of generated queries removed, lowest
            teacher score first; the one used is chosen on dev.
        k1s, bs: the BM25 parameters searched for every index, chosen on dev.
    """

    queries_per_passage: dict[str, tuple[int, ...]] = field(default_factory=lambda: {
        "ci": (1, 2), "cpu": (1, 2, 3), "gpu": (1, 5, 10, 20)})
    top_k: int = 10
    drops: tuple[float, ...] = (0.3, 0.5, 0.7)
    k1s: tuple[float, ...] = (0.6, 0.9, 1.2, 2.0)
    bs: tuple[float, ...] = (0.4, 0.7, 0.9)

    def ns(self, profile) -> tuple[int, ...]:
        """The numbers of queries per passage compared under ``profile``."""
        return self.per_profile(self.queries_per_passage, profile)


RECIPE = Doc2QueryRecipe()


def expand(passage: str, queries: Sequence[str]) -> str:
    """The passage followed by its generated queries (docTTTTTquery appends).

    Example::

        >>> expand("The tower is 330 m tall.", ["eiffel tower height"])
        'The tower is 330 m tall. eiffel tower height'
    """
    return " ".join([passage, *queries])


def expanded_corpus(corpus: Corpus, generated: Mapping[str, Sequence[str]],
                    n: int | None = None) -> Corpus:
    """Every passage expanded with the first ``n`` of its generated queries.

    Args:
        corpus: pid -> text.
        generated: pid -> generated queries (a passage without any keeps its
            text unchanged).
        n: queries per passage (``None``: all).

    Returns:
        pid -> expanded text, same ids in the same order as ``corpus``.
    """
    return {pid: expand(text, list(generated.get(pid, []))[:n])
            for pid, text in corpus.items()}


def query_scores(teacher, corpus: Corpus, generated: Mapping[str, Sequence[str]],
                 passage_emb: np.ndarray, batch_size: int = 256) -> dict[str,
                                                                          np.ndarray]:
    """The teacher's cosine between each generated query and its own passage.

    Args:
        teacher: a bi-encoder with ``encode_queries`` (unit-length outputs).
        corpus: pid -> text, in the order of ``passage_emb``'s rows.
        generated: pid -> generated queries.
        passage_emb: (N, d) the teacher's unit-length passage embeddings.

    Returns:
        pid -> (n_pid,) scores, aligned with ``generated[pid]``.

    Shapes:
        queries are encoded as one (Q, d) matrix, Q = all generated queries.
    """
    row = {pid: i for i, pid in enumerate(corpus)}
    owners = [pid for pid, qs in generated.items() for _ in qs]
    texts = [q for qs in generated.values() for q in qs]
    q_emb = teacher.encode_queries(texts, batch_size=batch_size)        # (Q, d)
    p_emb = passage_emb[[row[pid] for pid in owners]]                    # (Q, d)
    cos = (np.asarray(q_emb) * p_emb).sum(axis=1)                        # (Q,)
    out, start = {}, 0
    for pid, qs in generated.items():
        out[pid], start = cos[start:start + len(qs)], start + len(qs)
    return out


def filter_queries(generated: Mapping[str, Sequence[str]],
                   scores: Mapping[str, np.ndarray],
                   drop: float) -> tuple[dict[str, list[str]], float]:
    """doc2query--: remove the lowest-scored share ``drop`` of all generated
    queries, with one threshold for the whole corpus.

    Args:
        generated: pid -> queries.
        scores: pid -> their scores (:func:`query_scores`).
        drop: share removed, in [0, 1).

    Returns:
        ``(kept, threshold)``: pid -> the queries scoring at least the
        ``drop`` quantile of all scores (order kept), and that threshold.

    Example::

        >>> kept, t = filter_queries({"a": ["x", "y"], "b": ["z"]},
        ...                          {"a": np.array([0.9, 0.1]), "b": np.array([0.5])},
        ...                          drop=0.3)
        >>> kept
        {'a': ['x'], 'b': ['z']}
    """
    if not 0 <= drop < 1:
        raise ValueError(f"drop is a share of the generated queries in [0, 1), "
                         f"got {drop}")
    every = np.concatenate([np.asarray(scores[pid], dtype=float) for pid in generated])
    threshold = float(np.quantile(every, drop)) if drop > 0 else -np.inf
    kept = {pid: [q for q, s in zip(qs, scores[pid]) if s >= threshold]
            for pid, qs in generated.items()}
    return kept, threshold
