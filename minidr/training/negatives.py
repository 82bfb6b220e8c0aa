"""Negative samplers: which passages a query is trained to rank *below* its positive.

Every sampler returns passage ids only (``qid -> [pid, ...]``); turning ids into
text and batches is the chapter's job. Three promises hold for every sampler:

* a query's positives (qrels grade > 0) are never among its negatives; passages
  judged non-relevant (grade 0) are fair negatives;
* no pid appears twice in a query's list;
* the result is a pure function of the arguments and ``seed``. Each query draws
  from its own random generator, seeded by ``(seed, qid)``, so a query's
  negatives do not depend on which other queries are sampled with it.

The kinds of negatives, and where they live:

* **in-batch** negatives are not sampled at all: they are the other queries'
  passages in the same batch, used through the loss
  (:func:`minidr.training.losses.info_nce` with
  :func:`minidr.training.losses.in_batch_targets`);
* **random** negatives: :func:`random_negatives`;
* **BM25** negatives (DPR): :func:`bm25_negatives`;
* **hard** negatives from any run, e.g. a dense model's own top passages
  (ANCE, STAR, ADORE, RocketQA): :func:`top_k_negatives`.

Example::

    >>> run = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}}
    >>> qrels = {"q1": {"a": 1}}
    >>> bm25_negatives(run, qrels, n=2, depth=3, sample=False)
    {'q1': ['b', 'c']}
"""
from __future__ import annotations

import random

import numpy as np

from ..data.formats import Qrels, Run, rank

__all__ = ["random_negatives", "top_k_negatives", "bm25_negatives",
           "dense_negative_rows", "positives_of", "likely_false_negatives"]


def positives_of(qrels: Qrels, qid: str) -> set[str]:
    """The passages judged relevant (grade > 0) to ``qid``; empty if it has no qrels."""
    return {pid for pid, grade in qrels.get(qid, {}).items() if grade > 0}


def _rng(seed: int, qid: str) -> random.Random:
    # A string seed is hashed with SHA-512 by ``random``: the same on every
    # machine and Python run (unlike ``hash()``, which is salted per process).
    return random.Random(f"{seed}:{qid}")


def random_negatives(qids: list[str], pids: list[str], qrels: Qrels, n: int,
                     seed: int = 0) -> dict[str, list[str]]:
    """``n`` passages drawn uniformly from the corpus for each query.

    Args:
        qids: the queries to sample for.
        pids: the candidate passages (e.g. ``list(corpus)``); duplicates are ignored.
        qrels: qid -> pid -> grade; positives (grade > 0) are excluded.
        n: negatives per query (fewer only if fewer candidates remain).
        seed: with ``qid``, seeds each query's generator.

    Returns:
        qid -> ``n`` distinct pids, in the order drawn.

    Cost:
        ``O(n + #positives)`` per query, not ``O(len(pids))``: we draw
        ``n + #positives`` distinct passages and drop the positives among them,
        which leaves at least ``n``.

    Example::

        >>> negs = random_negatives(["q1", "q2"], ["a", "b", "c", "d"],
        ...                         {"q1": {"a": 1}}, n=2)
        >>> [len(v) for v in negs.values()], "a" in negs["q1"]
        ([2, 2], False)
    """
    pool = list(dict.fromkeys(pids))                   # unique, in the given order
    out: dict[str, list[str]] = {}
    for qid in qids:
        positives = positives_of(qrels, qid)
        draw = min(len(pool), n + len(positives))
        picked = [pool[i] for i in _rng(seed, qid).sample(range(len(pool)), draw)]
        out[qid] = [pid for pid in picked if pid not in positives][:n]
    return out


def top_k_negatives(run: Run, qrels: Qrels, n: int, depth: int = 100, skip: int = 0,
                    seed: int = 0, sample: bool = True) -> dict[str, list[str]]:
    """Hard negatives: ``n`` non-positive passages from the top of a ranking.

    The candidates of a query are its run's ranks ``skip + 1 .. depth``
    (scores descending, ties by pid), minus its positives. Skipping the very top
    guards against *false negatives*: unjudged passages that are in fact
    relevant, most common at the top of a good ranking (RocketQA, STAR).

    Args:
        run: qid -> pid -> score, from any retriever: BM25 (DPR), the model
            being trained (ANCE, ADORE), a fixed dense model (STAR).
        qrels: qid -> pid -> grade; positives (grade > 0) are excluded.
        n: negatives per query (fewer if fewer candidates remain).
        depth: lowest rank considered, counted from the top of the run.
        skip: number of top ranks left out.
        seed: with ``qid``, seeds each query's generator.
        sample: ``True``: ``n`` drawn uniformly from the candidates;
            ``False``: the ``n`` highest-ranked candidates (DPR's "top BM25
            passage without the answer").

    Returns:
        qid -> up to ``n`` distinct pids, in rank order, for every query of ``run``.

    References:
        Xiong et al. (2021), ANCE, ICLR. Zhan et al. (2021), STAR/ADORE, SIGIR.

    Example::

        >>> run = {"q1": {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}}
        >>> top_k_negatives(run, {"q1": {"c": 2}}, n=5, depth=4, skip=1)
        {'q1': ['b', 'd']}
    """
    if not 0 <= skip < depth:
        raise ValueError(f"need 0 <= skip < depth, got skip={skip}, depth={depth}")
    out: dict[str, list[str]] = {}
    for qid, ranked in rank(run, depth).items():
        positives = positives_of(qrels, qid)
        candidates = [pid for pid in ranked[skip:] if pid not in positives]
        if sample and len(candidates) > n:
            keep = set(_rng(seed, qid).sample(candidates, n))
            # back in rank order
            candidates = [pid for pid in candidates if pid in keep]
        out[qid] = candidates[:n]
    return out


def bm25_negatives(run: Run, qrels: Qrels, n: int, depth: int = 100, skip: int = 0,
                   seed: int = 0, sample: bool = True) -> dict[str, list[str]]:
    """DPR's BM25 negatives: :func:`top_k_negatives` of a BM25 run.

    DPR trains with "the top passages returned by BM25 which don't contain the
    answer"; with labelled qrels "don't contain the answer" becomes "not a
    positive". Pass a run of :meth:`minidr.retrieval.bm25.BM25.search`.

    Args:
        run, qrels, n, depth, skip, seed, sample: as in :func:`top_k_negatives`.

    References:
        Karpukhin et al. (2020), Dense Passage Retrieval for Open-Domain
        Question Answering, EMNLP, section 3.2.

    Example::

        >>> run = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}}
        >>> # DPR: the top one
        >>> bm25_negatives(run, {"q1": {"a": 1}}, n=1, sample=False)
        {'q1': ['b']}
    """
    return top_k_negatives(run, qrels, n, depth=depth, skip=skip, seed=seed,
                           sample=sample)


def dense_negative_rows(index, qids: list[str], q_emb: np.ndarray, qrels: Qrels,
                        n: int) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic hard negatives: each query's top-``n`` non-positive rows of a dense
    index.

    This is the per-step retrieval of LTRe and ADORE: the *current* query
    embeddings search the fixed passage index, and the best-ranked passages
    that are not positives become the negatives of this step. It returns index
    *rows* (not pids) so that the caller can gather the fixed passage
    embeddings directly.

    Args:
        index: a :class:`~minidr.retrieval.index.DenseIndex`
            (``index.ids[row]`` is a pid).
        qids: the batch's query ids, ``qids[i]`` for ``q_emb[i]``.
        q_emb: query embeddings.
        qrels: qid -> pid -> grade; positives (grade > 0) are skipped.
        n: negatives per query.

    Shapes:
        q_emb ``(B, d)``; returns rows ``(B, n)`` int64 and their 1-based ranks
        in the full ranking (positives included) ``(B, n)`` int64. Missing
        results (an index smaller than ``n`` plus the positives) are ``-1``.

    References:
        Zhan et al. (2020), Learning to Retrieve (LTRe), arXiv 2010.10469.
        Zhan et al. (2021), Optimizing Dense Retrieval Model Training with Hard
        Negatives (STAR/ADORE), SIGIR.
    """
    positives = [positives_of(qrels, qid) for qid in qids]
    k = min(n + max((len(p) for p in positives), default=0), len(index))
    _, found = index.search_rows(q_emb, k)                 # (B, k) rows, best first
    rows = np.full((len(qids), n), -1, dtype=np.int64)     # (B, n)
    ranks = np.full((len(qids), n), -1, dtype=np.int64)    # (B, n)
    for i, pos in enumerate(positives):
        # place: 1-based rank
        kept = [(place, r) for place, r in enumerate(found[i], start=1)
                if r >= 0 and index.ids[r] not in pos][:n]
        for j, (place, r) in enumerate(kept):
            rows[i, j], ranks[i, j] = r, place
    return rows, ranks


def likely_false_negatives(negatives: dict[str, list[str]], scores,
                           top: int = 3) -> float:
    """The share of sampled negatives that the teacher ranks in its own top ``top``
    for their query: passages that are probably relevant, trained as negatives.

    MS MARCO judges about one passage per query, so the unjudged passages a
    strong retriever ranks highest are often relevant too: RocketQA (Qu et al.,
    2021, introduction) found by hand that about 70% of the unlabeled
    top-retrieved passages they examined were relevant. The
    teacher stands in for the missing judgments here. The ranks that the
    warm-up student never used as negatives (its ``hard_ranks`` start at 3)
    are the default ``top``.

    Args:
        negatives: qid -> sampled negative pids (any sampler's output).
        scores: a :class:`~minidr.data.teacher_scores.TeacherScores`; queries it
            did not score are skipped.
        top: how many of the teacher's best passages count as likely relevant.

    Returns:
        flagged / all sampled negatives of the scored queries (``nan`` if none).

    Example::

        >>> import numpy as np
        >>> from minidr.data.teacher_scores import TeacherScores
        >>> s = TeacherScores(np.array([1]), np.array([[7, 8, 9]]),
        ...                   np.array([[0.9, 0.8, 0.1]], dtype=np.float16))
        >>> likely_false_negatives({"1": ["8", "9", "5", "6"]}, s, top=2)
        0.25
    """
    rows = scores.row_of()
    flagged = total = 0
    for qid, pids in negatives.items():
        if qid not in rows:
            continue
        best = {str(p) for p in scores.pids[rows[qid], :top]}
        flagged += sum(p in best for p in pids)
        total += len(pids)
    return flagged / total if total else float("nan")
