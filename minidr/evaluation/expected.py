"""Expected scores: a committed table of what every chapter computes,
checked with a tolerance.

In the spirit of Pyserini's two-click reproductions (2CR), every chapter's
result records under the ``ci`` profile are compared with
``data/expected/<profile>.yaml``: a refactor that changes what a chapter
computes fails the test command, printing OK or FAIL per number::

    python -m minidr check-scores --profile ci  # after the notebooks ran (nbval)
    python -m minidr check-scores --profile ci --update  # accept the current records

A record with no expected entry, or an expected entry with no record, fails
too: the table must name every (chapter, method) the chapters record.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core.atomic import atomic_write_text
from ..core.paths import repo_data_dir
from ..core.results import load_results

__all__ = ["CHECKED", "TOLERANCE", "expected_path", "Check", "check_scores",
           "write_expected"]

# (split, measure) pairs that are checked for every record that has them
CHECKED = (("dl19", "nDCG@10"), ("dev", "MRR@10"), ("dev", "R@100"))
TOLERANCE = 0.005


def expected_path(profile: str) -> Path:
    """``data/expected/<profile>.yaml``."""
    return repo_data_dir() / "expected" / f"{profile}.yaml"


@dataclass(frozen=True)
class Check:
    """One checked number: its place, the expected and the recorded value."""

    chapter: str
    method: str
    metric: str
    expected: float | None
    got: float | None
    tolerance: float

    @property
    def ok(self) -> bool:
        if self.expected is None or self.got is None:
            return False
        return abs(self.got - self.expected) <= self.tolerance

    def line(self) -> str:
        exp = "missing" if self.expected is None else f"{self.expected:.4f}"
        got = "missing" if self.got is None else f"{self.got:.4f}"
        return (f"{'OK  ' if self.ok else 'FAIL'} {self.chapter:24s} {self.method:32s} "
                f"{self.metric:14s} expected {exp:>8s}  got {got:>8s}")


def _recorded(records: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    out = {}
    for r in records:
        values = {f"{split} {measure}": r["metrics"][split][measure]
                  for split, measure in CHECKED
                  if measure in r["metrics"].get(split, {})}
        out[(r["chapter"], r["method"])] = values
    return out


def check_scores(profile: str = "ci", results: str | os.PathLike | None = None,
                 expected: str | os.PathLike | None = None) -> list[Check]:
    """Compare the ``profile`` records in ``results`` with the expected table.

    Args:
        profile: the profile whose records are checked.
        results: the results folder (default: :func:`~minidr.core.results.results_dir`).
        expected: the YAML table (default: :func:`expected_path`).

    Returns:
        One :class:`Check` per expected or recorded number; all ``ok`` when
        nothing moved beyond the tolerance and nothing is missing.
    """
    path = Path(expected or expected_path(profile))
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: create it with `python -m minidr "
                                f"check-scores --profile {profile} --update`")
    table = yaml.safe_load(path.read_text()) or {}
    tolerance = float(table.get("tolerance", TOLERANCE))
    want = {(c, m): v for c, methods in (table.get("scores") or {}).items()
            for m, v in methods.items()}
    got = _recorded([r for r in load_results(results) if r["profile"] == profile])
    checks = []
    for key in sorted(set(want) | set(got)):
        exp, rec = want.get(key, {}), got.get(key, {})
        for metric in sorted(set(exp) | set(rec)) or ["(any)"]:
            checks.append(Check(*key, metric, exp.get(metric), rec.get(metric),
                                tolerance))
    return checks


def write_expected(profile: str = "ci", results: str | os.PathLike | None = None,
                   path: str | os.PathLike | None = None) -> Path:
    """Write the current ``profile`` records as the expected table (atomically)."""
    got = _recorded([r for r in load_results(results) if r["profile"] == profile])
    if not got:
        raise ValueError(f"no {profile!r} records to take as expected: "
                         "run the notebooks first")
    scores: dict[str, dict] = {}
    for (chapter, method), values in sorted(got.items()):
        scores.setdefault(chapter, {})[method] = {k: round(v, 4)
                                                  for k, v in values.items()}
    header = (f"# Expected {profile}-profile scores of every chapter, checked by\n"
              f"#   python -m minidr check-scores --profile {profile}\n"
              "# after `python3 tasks.py test` ran the notebooks. "
              "Regenerate (after a change\n"
              f"# that is meant to move a result, and say why in the commit) with\n"
              f"#   python -m minidr check-scores --profile {profile} --update\n")
    body = yaml.safe_dump({"profile": profile, "tolerance": TOLERANCE,
                           "scores": scores},
                          sort_keys=False, allow_unicode=True, width=100)
    return atomic_write_text(path or expected_path(profile), header + body)
