"""The embedding cache: a corpus encoded by a model, on disk, written atomically.

Encoding 43k passages takes minutes on a CPU; an unchanged model should never
pay for it twice. Embeddings are stored as ``$MINIDR_CACHE/embeddings/<key>.npy``
with ``key = <model fingerprint>-<corpus fingerprint>`` (:func:`corpus_cache_key`),
so any change to the weights, the settings or the corpus is a new entry.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from ..core.atomic import atomic_file
from ..core.paths import cache_root
from ..data.formats import Corpus, corpus_fingerprint

__all__ = ["cached_embeddings", "cached_sparse", "embedding_key", "corpus_cache_key"]


def corpus_cache_key(encoder, corpus: Corpus) -> str:
    """The cache key of ``corpus`` encoded by ``encoder``
    (model and corpus fingerprints)."""
    return embedding_key(encoder.fingerprint(), corpus_fingerprint(corpus))


_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def embedding_key(model_fingerprint: str, corpus_fingerprint: str) -> str:
    """Cache key of a corpus encoded by a model: ``"<model>-<corpus>"``.

    Args:
        model_fingerprint: changes whenever the encoder does (weights, pooling,
            max length...), e.g. a hash of its checkpoint, or a hub name and
            revision with ``/`` replaced.
        corpus_fingerprint: :func:`minidr.data.formats.corpus_fingerprint` of the
            corpus.

    Both must be made of letters, digits, ``.``, ``_`` and ``-`` (they become a
    file name), so that two different pairs never map to the same key.

    Example::

        >>> embedding_key("tinybert-step500", "0a1b2c3d4e5f6a7b")
        'tinybert-step500-0a1b2c3d4e5f6a7b'
    """
    for name, value in (("model_fingerprint", model_fingerprint),
                        ("corpus_fingerprint", corpus_fingerprint)):
        if not _SAFE_KEY.fullmatch(value):
            raise ValueError(f"{name} must match [A-Za-z0-9][A-Za-z0-9._-]*, "
                             f"got {value!r}")
    if "-" in corpus_fingerprint:  # keeps the split point unambiguous
        raise ValueError("corpus_fingerprint must not contain '-', "
                         f"got {corpus_fingerprint!r}")
    return f"{model_fingerprint}-{corpus_fingerprint}"


def cached_embeddings(key: str, compute: Callable[[], np.ndarray],
                      cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Load ``<cache_dir>/<key>.npy``, or ``compute()`` it and save it first.

    The file is written to a temporary name in the same directory and renamed
    into place, so an interrupted or failed write never leaves a truncated
    ``.npy`` for the next run to load.

    Args:
        key: file name stem, e.g. from :func:`embedding_key`.
        compute: called only on a cache miss; returns the embeddings.
        cache_dir: directory of the cache files
            (default ``<cache_root()>/embeddings``, see
            :func:`minidr.core.paths.cache_root`).

    Shapes:
        returns what ``compute`` returns, typically ``(n_passages, d)`` float32.
    """
    if not _SAFE_KEY.fullmatch(key):
        raise ValueError(f"key must match [A-Za-z0-9][A-Za-z0-9._-]*, got {key!r}")
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "embeddings"
    path = folder / f"{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    embeddings = np.asarray(compute())
    with atomic_file(path) as f:
        np.save(f, embeddings, allow_pickle=False)
    return embeddings


def cached_sparse(key: str, compute: Callable[[], sp.spmatrix],
                  cache_dir: str | os.PathLike | None = None) -> sp.csr_matrix:
    """:func:`cached_embeddings` for sparse vectors (e.g. SPLADE's term
    weights): ``<cache_dir>/<key>.npz``, written atomically, read without pickle.

    Shapes:
        returns a CSR matrix, typically ``(n_passages, vocabulary)`` float32.
    """
    if not _SAFE_KEY.fullmatch(key):
        raise ValueError(f"key must match [A-Za-z0-9][A-Za-z0-9._-]*, got {key!r}")
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "sparse"
    path = folder / f"{key}.npz"
    if path.exists():
        return sp.load_npz(path).tocsr()
    vectors = sp.csr_matrix(compute())
    with atomic_file(path) as f:
        sp.save_npz(f, vectors, compressed=True)
    return vectors
