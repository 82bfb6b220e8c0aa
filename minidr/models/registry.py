"""Saved models: trained bi-encoders on disk, by chapter, name and profile.

A chapter that trains a model keeps it with :func:`save_model`; the command
line searches with it by name (``python -m minidr search --model 04_dpr/DPR``)
and ``python -m minidr models`` lists what is there. The layout::

    <cache_root()>/models/
        manifest.json                         one entry per saved model
        <chapter>/<slug(name)>__<profile>/    BiEncoder.save: safetensors,
                                              tokenizer, minidr_biencoder.json

A manifest entry holds ``chapter``, ``name``, ``profile``, ``path`` (the
folder, relative to ``<cache_root()>/models`` so that the cache can move),
``fingerprint`` (:meth:`~minidr.models.bi_encoder.BiEncoder.fingerprint` of
the saved model), ``created`` (UTC, ISO 8601), ``metrics`` and ``extra``. The
folder and the manifest are both written atomically; saving the same chapter,
name and profile again replaces the model.

Example::

    path = save_model(encoder, "04_dpr", "DPR (in-batch)", "cpu", metrics=metrics)
    list_models()                                # chapter, name, profile, path, ...
    resolve_model("04_dpr/DPR (in-batch)@cpu")   # -> the folder
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Iterator

import pandas as pd

from ..core.atomic import atomic_write_text
from ..core.config import PROFILES
from ..core.paths import cache_root

__all__ = ["MANIFEST", "models_root", "manifest_path", "slug", "save_model",
           "list_models", "resolve_model"]

MANIFEST = "manifest.json"
COLUMNS = ("chapter", "name", "profile", "path", "fingerprint", "created", "metrics",
           "extra")
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SETTINGS_FILE = "minidr_biencoder.json"  # BiEncoder's BI_CONFIG (no torch import here)


def models_root() -> Path:
    """``<cache_root()>/models``: where saved models and the manifest live."""
    return cache_root() / "models"


def manifest_path() -> Path:
    """``<cache_root()>/models/manifest.json``."""
    return models_root() / MANIFEST


def _slugify(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")


def slug(name: str) -> str:
    """A folder-safe form of a model name: runs of other characters become ``-``.

    Args:
        name: e.g. ``"DPR (in-batch)"``.

    Returns:
        e.g. ``"DPR-in-batch"``.

    Example::

        >>> slug("DPR (in-batch), tau=0.05")
        'DPR-in-batch-tau-0.05'
    """
    out = _slugify(name)
    if not out:
        raise ValueError(f"model name {name!r} has no letter or digit; "
                         "give it a real name")
    return out


def _profile_name(profile) -> str:
    name = getattr(profile, "name", profile)
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; "
                         f"choose one of {', '.join(PROFILES)}")
    return name


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise manifest updates between processes (two notebooks saving at once)."""
    root = models_root()
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the write itself is still atomic
        yield
        return
    with open(root / ".manifest.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_manifest() -> list[dict]:
    path = manifest_path()
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["models"]
        if not isinstance(entries, list):
            raise TypeError("'models' is not a list")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a model manifest ({type(e).__name__}: {e}). "
                         "Fix it by hand, or delete it and save the models again."
                         ) from None
    return entries


def _jsonable(value):
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the model manifest: "
                    "metrics and extra must be JSON (numbers, strings, lists, dicts)")


def save_model(encoder, chapter: str, name: str, profile, metrics: dict | None = None,
               extra: dict | None = None) -> Path:
    """Save a trained bi-encoder and record it in the manifest.

    The folder is ``<cache_root()>/models/<chapter>/<slug(name)>__<profile>/``,
    written by ``encoder.save`` (safetensors, atomically); an older model of the
    same chapter, name and profile is replaced, folder and manifest entry.

    Args:
        encoder: a :class:`~minidr.models.bi_encoder.BiEncoder` (anything with
            ``save(path)`` and ``fingerprint()``).
        chapter: e.g. ``"04_dpr"`` (letters, digits, ``.``, ``_``, ``-``).
        name: the model's name in the chapter, e.g. ``"DPR (in-batch)"``.
        profile: a :class:`~minidr.core.config.Profile` or its name.
        metrics: what it scored, e.g. ``{"dl19": {"nDCG@10": 0.29}}`` (JSON).
        extra: anything else worth keeping (JSON), e.g. the recipe's settings.

    Returns:
        The saved folder.
    """
    if not isinstance(chapter, str) or not _SAFE.fullmatch(chapter):
        raise ValueError("chapter must be a folder name like '04_dpr' (letters, "
                         f"digits, '.', '_', '-'), got {chapter!r}")
    profile = _profile_name(profile)
    rel = f"{chapter}/{slug(name)}__{profile}"
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    entry = {"chapter": chapter, "name": name, "profile": profile, "path": rel,
             "fingerprint": encoder.fingerprint(), "created": now,
             "metrics": metrics or {}, "extra": extra or {}}
    entry = json.loads(json.dumps(entry, default=_jsonable))  # fails before any write
    folder = models_root() / rel
    with _locked():
        entries = [e for e in _read_manifest() if e.get("path") != rel]
        encoder.save(folder)
        entries.append(entry)
        entries.sort(key=lambda e: (e["chapter"], e["name"], e["profile"]))
        text = json.dumps({"models": entries}, indent=2) + "\n"
        atomic_write_text(manifest_path(), text)
    return folder


def list_models() -> pd.DataFrame:
    """The manifest as a table, one row per saved model.

    Returns:
        DataFrame with columns ``chapter, name, profile, path, fingerprint,
        created, metrics, extra`` (``path`` absolute), sorted by chapter, name
        and profile; no rows when nothing is saved.
    """
    root = models_root()
    rows = [{**{c: e.get(c) for c in COLUMNS}, "path": str(root / e["path"])}
            for e in _read_manifest()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _spec(entry: dict) -> str:
    return f"{entry['chapter']}/{entry['name']}@{entry['profile']}"


def _not_found(entries: list[dict], why: str):
    from .loading import ModelNotFoundError  # imports torch: only when needed

    if not entries:
        return ModelNotFoundError(
            f"{why}. No model is saved yet (none in {manifest_path()}): a chapter "
            "saves its model with minidr.models.registry.save_model(...); or pass the "
            "path of a folder written by BiEncoder.save.")
    saved = ", ".join(repr(_spec(e)) for e in entries)
    return ModelNotFoundError(
        f"{why}. Saved models: {saved} (manifest {manifest_path()}). Pass one as "
        "'chapter/name' or 'chapter/name@profile', or the path of a folder written by "
        "BiEncoder.save; `python -m minidr models` lists them.")


def resolve_model(spec: str | os.PathLike) -> Path:
    """The folder of a saved bi-encoder, from a path or a manifest name.

    Args:
        spec: a folder written by :meth:`~minidr.models.bi_encoder.BiEncoder.save`,
            or ``"chapter/name"`` / ``"chapter/name@profile"`` from the manifest
            (``name`` as saved, or its :func:`slug`). Without a profile, the
            most recent of the full-data profiles wins, else the ``ci`` one.

    Returns:
        The model's folder (absolute).

    Raises:
        ModelNotFoundError: no such folder or manifest entry; the message lists
            the saved models and what to pass instead.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / _SETTINGS_FILE).is_file():
            raise _not_found(_read_manifest(), f"{path} is a folder but not a saved "
                             f"bi-encoder (it has no {_SETTINGS_FILE})")
        return path.resolve()
    entries = _read_manifest()
    chapter, sep, rest = text.partition("/")
    name, at, profile = rest.rpartition("@") if "@" in rest else (rest, "", "")
    key = _slugify(name)
    matches = [e for e in entries if sep and e["chapter"] == chapter
               and (e["name"] == name or (key and _slugify(e["name"]) == key))
               and (not at or e["profile"] == profile)]
    if not matches:
        raise _not_found(entries, f"{text!r} is neither a model folder nor a saved "
                         "model's name")

    def preference(e: dict) -> tuple[bool, str]:
        full_data = getattr(PROFILES.get(e["profile"]), "corpus", "") != "ci"
        return full_data, e["created"]

    best = max(matches, key=preference)
    folder = models_root() / best["path"]
    if not (folder / _SETTINGS_FILE).is_file():
        raise _not_found(entries, f"the manifest lists {_spec(best)!r} at {folder}, "
                         "but that folder is gone or incomplete: save the model again")
    return folder.resolve()
