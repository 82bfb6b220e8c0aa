"""Finding and loading backbones: a local folder under ``data/models`` or a hub id.

Every model kind (bi-encoder, cross-encoder, teacher) loads its Hugging Face
weights through :func:`load_backbone` or :func:`load_pretrained`, so a missing
local folder always gets the same clear error, naming the command that builds it.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterator

import torch

from ..core.paths import REPO_ROOT
from .backbones import HUB_TWINS, SMALL_BERTS

__all__ = ["ModelNotFoundError", "resolve_model_path", "load_backbone",
           "load_pretrained", "quiet_transformers", "read_settings",
           "pretrained_length", "fit_lengths"]


class ModelNotFoundError(FileNotFoundError):
    """A local model folder is missing;
    the message says which one and how to build it."""


# -- finding and loading backbones -----------------------------------------------------

def _how_to_build(name: str) -> str:
    arch = Path(name).name
    if arch in SMALL_BERTS:
        return (f"Build it with `python -m minidr pretrain --arch {arch}`, or, with "
                f"internet (Colab), use the hub model {HUB_TWINS[arch]!r} instead.")
    return ("A backbone folder is built by `python -m minidr pretrain --arch <name>` "
            f"(<name> one of {', '.join(SMALL_BERTS)}); "
            "a trained model by its chapter's save().")


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """A local folder (as given, or relative to the repository root) or a hub id,
    unchanged.

    Raises:
        ModelNotFoundError: ``name_or_path`` looks like a local path
            (``data/models/...``, ``./x``, an absolute path, a small-BERT name) and no
            such folder exists.
    """
    name = str(name_or_path)
    p = Path(name).expanduser()
    candidates = [p] if p.is_absolute() else [REPO_ROOT / p, Path.cwd() / p]
    for c in candidates:
        if c.is_dir():
            return str(c.resolve())
    # a path, not a hub id
    if (p.is_absolute() or name.startswith((".", "~")) or "\\" in name
            or len(p.parts) > 2 or p.parts[0] == "data" or p.name in SMALL_BERTS):
        where = " or ".join(str(c) for c in dict.fromkeys(candidates))
        raise ModelNotFoundError(f"model folder {name!r} not found (expected {where}). "
                                 + _how_to_build(name))
    return name


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' weight report while loading;
    callers judge ``missing_keys`` themselves."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_pretrained(auto_cls, path: str, **kwargs):
    """``auto_cls.from_pretrained(path, **kwargs)``
    without transformers' weight report."""
    with quiet_transformers():
        return auto_cls.from_pretrained(path, **kwargs)


def load_backbone(name_or_path: str | os.PathLike):
    """Load an encoder and its tokenizer from a local folder or a hub id.

    BERT's pooler (a dense layer on [CLS] trained for next-sentence prediction)
    is not built: bi-encoders pool the hidden states themselves.

    Args:
        name_or_path: ``data/models/bert-L4-H256`` (relative paths are looked up
            under the repository root, then the working directory) or a hub id
            such as ``google/bert_uncased_L-4_H-256_A-4`` (Colab).

    Returns:
        ``(model, tokenizer)``: an ``AutoModel`` in float32 and an ``AutoTokenizer``.

    Raises:
        ModelNotFoundError: a local-looking folder is missing (the message gives the
            command that builds it). An unreachable hub raises transformers'
            ``OSError``.
    """
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(name_or_path)
    tokenizer = load_pretrained(AutoTokenizer, path)
    kwargs = dict(dtype=torch.float32, output_loading_info=True)
    try:
        model, info = load_pretrained(AutoModel, path, add_pooling_layer=False,
                                      **kwargs)
    except TypeError:  # an architecture without a pooler option
        model, info = load_pretrained(AutoModel, path, **kwargs)
    if info["missing_keys"]:
        warnings.warn(f"{name_or_path}: {len(info['missing_keys'])} weights are not "
                      "in the checkpoint and were initialised randomly "
                      f"(e.g. {sorted(info['missing_keys'])[:3]})")
    return model, tokenizer


def read_settings(path: Path) -> dict:
    """The JSON settings file at ``path``,
    or ``{}`` if there is none (a plain backbone)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def pretrained_length(path: str | os.PathLike) -> int | None:
    """The input length a backbone of ours was pretrained at (``recipe.json``'s
    ``max_len``), or ``None`` when unknown (hub models, other folders).

    Position embeddings beyond that length never received a gradient: they are
    still random. A backbone pretrained at 64 tokens must not read 128.
    """
    recipe = read_settings(Path(path) / "recipe.json")
    return int(recipe["max_len"]) if "max_len" in recipe else None


def fit_lengths(path: str | os.PathLike, lengths: dict[str, int],
                given: dict[str, int | None]) -> dict[str, int]:
    """Cap truncation lengths at the backbone's :func:`pretrained_length`.

    Args:
        path: the backbone folder.
        lengths: name -> the length that would be used (a default or saved value).
        given: name -> the length the caller asked for (``None``: not asked).

    Returns:
        ``lengths`` with every default above the pretrained length lowered to it.

    Raises:
        ValueError: the caller explicitly asked for more than the pretrained
            length (the extra positions would be random).
    """
    limit = pretrained_length(path)
    if limit is None:
        return dict(lengths)
    out = {}
    for name, value in lengths.items():
        if given.get(name) is not None and given[name] > limit:
            raise ValueError(
                f"{name}={given[name]} exceeds the {limit} tokens {path} was "
                f"pretrained at: positions {limit}-{given[name] - 1} are untrained. "
                f"Use {name}<={limit}, or pretrain at the longer length "
                "(`python -m minidr pretrain --max-len ...`).")
        out[name] = min(value, limit)
    return out
