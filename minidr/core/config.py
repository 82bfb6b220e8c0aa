"""Profiles: one code path, several sizes.

A profile says how much data and compute a chapter may use. Every chapter
reads one, from its ``parameters`` cell or from the ``MINIDR_PROFILE``
environment variable, and records its name next to every result it reports.

=========  ============================  ==========================  ==============
profile    where                         data                        budget
=========  ============================  ==========================  ==============
``ci``     CI, nbval, 2 CPU cores        the ``ci`` slice (~3k pass.) < 3 min/chapter
``cpu``    a laptop, offline (default)   full MiniMARCO (43k pass.)  < ~30 min
``gpu``    a CUDA GPU, offline data      full MiniMARCO              minutes
``colab``  Colab with internet           MiniMARCO ids from the hub  a T4 session
=========  ============================  ==========================  ==============

Example::

    >>> from minidr import get_profile
    >>> get_profile("ci").corpus
    'ci'
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

__all__ = ["Profile", "PROFILES", "get_profile", "ProfileError"]


class ProfileError(ValueError):
    """An unknown profile name, or a profile this machine cannot run."""


@dataclass(frozen=True)
class Profile:
    """The knobs that change between profiles; everything else is shared code.

    Attributes:
        name: the profile's name, recorded with every result.
        corpus: ``"ci"`` (the committed slice) or ``"full"`` (all of MiniMARCO).
        device: ``"cpu"`` or ``"cuda"``.
        needs_gpu: refuse to start without CUDA.
        backbone: encoder for the dense chapters: a folder under ``data/models``
            or a hub name. ``cpu`` and ``gpu`` use SPLADE-tiny (the start chapter
            02's ladder chose by measurement); ``ci`` our own small MLM backbone
            (``python -m minidr pretrain``); ``colab`` a hub BERT.
        threads: worker threads for BM25 search and indexing.
        bm25_grid_k1, bm25_grid_b: the BM25 parameter sweep of chapter 01.
        budget_minutes: what one chapter may take under this profile.
    """

    name: str
    corpus: str
    device: str
    needs_gpu: bool
    backbone: str
    threads: int
    bm25_grid_k1: tuple[float, ...]
    bm25_grid_b: tuple[float, ...]
    budget_minutes: int


_FULL_GRID_K1 = (0.4, 0.6, 0.82, 0.9, 1.2, 1.5, 2.0)
_FULL_GRID_B = (0.2, 0.4, 0.55, 0.68, 0.8, 1.0)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("ci", corpus="ci", device="cpu", needs_gpu=False,
                backbone="data/models/bert-L2-H128", threads=2,
                bm25_grid_k1=(0.6, 0.9, 1.2), bm25_grid_b=(0.4, 0.75),
                budget_minutes=3),
        Profile("cpu", corpus="full", device="cpu", needs_gpu=False,
                backbone="data/models/splade-tiny", threads=2,
                bm25_grid_k1=_FULL_GRID_K1, bm25_grid_b=_FULL_GRID_B,
                budget_minutes=30),
        Profile("gpu", corpus="full", device="cuda", needs_gpu=True,
                backbone="data/models/splade-tiny", threads=8,
                bm25_grid_k1=_FULL_GRID_K1, bm25_grid_b=_FULL_GRID_B,
                budget_minutes=10),
        Profile("colab", corpus="full", device="cuda", needs_gpu=True,
                backbone="google/bert_uncased_L-4_H-256_A-4", threads=2,
                bm25_grid_k1=_FULL_GRID_K1, bm25_grid_b=_FULL_GRID_B,
                budget_minutes=20),
    )
}

DEFAULT_PROFILE = "cpu"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # the sparse chapters do not need torch
        return False
    return bool(torch.cuda.is_available())


def get_profile(name: str | None = None, **overrides) -> Profile:
    """Return the profile to run under.

    Args:
        name: a profile name; ``None`` reads ``MINIDR_PROFILE`` and falls back
            to ``"cpu"``. A notebook passes its ``parameters`` cell value here.
        **overrides: fields to change, e.g. ``get_profile("cpu", threads=4)``.

    Raises:
        ProfileError: the name is unknown, an override is not a field, or the
            profile needs a GPU that this machine does not have.
    """
    chosen = name or os.environ.get("MINIDR_PROFILE") or DEFAULT_PROFILE
    chosen = chosen.strip().lower()
    if chosen not in PROFILES:
        raise ProfileError(
            f"unknown profile {chosen!r}; choose one of {', '.join(PROFILES)} "
            "(set MINIDR_PROFILE or the notebook's `profile` parameter)"
        )
    profile = PROFILES[chosen]
    if overrides:
        fields = {f.name for f in dataclasses.fields(Profile)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ProfileError(f"unknown profile field(s) {unknown}; "
                               f"fields are {sorted(fields)}")
        profile = dataclasses.replace(profile, **overrides)
    if profile.needs_gpu and not _cuda_available():
        raise ProfileError(
            f"profile {profile.name!r} needs a CUDA GPU, "
            "but torch.cuda.is_available() is False. "
            "In Colab choose Runtime > Change runtime type > GPU; on a laptop use "
            "MINIDR_PROFILE=cpu (or ci for a quick smoke run)."
        )
    return profile
