"""One table formatter for every chapter: numbers a reader can read,
captions that say what.

``show(df, caption)`` returns a pandas ``Styler``: integers as integers (with
thousands separators, also when pandas stored them as floats), metrics to 3
decimals, seconds to 0 decimals (1 below ten seconds), empty cells as a dash,
no raw index (a named index becomes the first column), and a caption naming
the split and its query count::

    show(table, caption=split_caption("dl19", 43))   # "DL19, 43 queries"

Example::

    >>> import pandas as pd
    >>> df = pd.DataFrame({"nDCG@10": [0.4717], "steps": [250.0],
    ...                    "wall_seconds": [734.2]},
    ...                   index=pd.Index(["BM25"], name="method"))
    >>> show(df, "DL19, 43 queries").data.columns.tolist()
    ['method', 'nDCG@10', 'steps', 'wall_seconds']
"""
from __future__ import annotations

import math

import pandas as pd

__all__ = ["split_caption", "column_format", "show", "cost_line"]

SPLIT_NAMES = {"dl19": "DL19", "dev": "dev", "train": "train"}
_METRIC_MARKS = ("ndcg", "mrr", "r@", "recall", "judged", "delta", "ci_low", "ci_high",
                 "detectable",
                 "map", "precision", "coverage", "accuracy", "cos")
_SECONDS_MARKS = ("seconds", "wall", " s", "_s", "ms")


def split_caption(split: str, n_queries: int, what: str = "") -> str:
    """``"DL19, 43 queries"`` (optionally ``": <what>"``)."""
    text = f"{SPLIT_NAMES.get(split, split)}, {n_queries:,} queries"
    return f"{text}: {what}" if what else text


def _integral(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return len(v) > 0 and bool((v == v.round()).all()) and bool((v.abs() < 1e15).all())


def column_format(name: str, values: pd.Series):
    """The formatter of one column (a callable), chosen from its name and values."""
    lower = str(name).lower()

    def fmt(spec):
        def f(x):
            if x is None or (isinstance(x, float) and math.isnan(x)):
                return "–"
            return spec.format(x) if isinstance(x, (int, float)) else str(x)
        return f

    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return fmt("{}")
    if any(m in lower for m in _METRIC_MARKS):  # first: "nDCG@10, start" is one
        return fmt("{:.3f}")
    if any(m in lower for m in _SECONDS_MARKS):
        small = pd.to_numeric(values, errors="coerce").abs().max() < 10
        return fmt("{:,.1f}" if small else "{:,.0f}")
    if _integral(values):
        return fmt("{:,.0f}")
    return fmt("{:,.3f}")


def show(df: pd.DataFrame, caption: str = "", digits: dict[str, int] | None = None):
    """A readable ``Styler`` of ``df``: formatted columns, no raw index, a caption.

    Args:
        df: the table; an index of labels (names of methods, splits ...) becomes
            the first column, a bare integer index (row numbers) is dropped.
        caption: what the table shows, e.g. :func:`split_caption`.
        digits: decimals for some columns, overriding the rules above.
    """
    table = df.copy()
    numbered = table.index.name is None and pd.api.types.is_integer_dtype(table.index)
    table = table.reset_index(drop=numbered, names=None if numbered
                              else (table.index.name or ""))
    formats = {c: column_format(c, table[c]) for c in table.columns}
    for column, d in (digits or {}).items():
        formats[column] = (lambda d: lambda x: "–" if pd.isna(x) else f"{x:,.{d}f}")(d)
    styler = table.style.format(formats)
    styler = styler.hide(axis="index")
    return styler.set_caption(caption) if caption else styler


def cost_line(cost: dict) -> str:
    """A cost summary (:meth:`~minidr.core.cost.CostMeter.summary`) as one line.

    Example::

        >>> cost_line({"wall_seconds": 93.71, "queries_searched": 2504,
        ...            "peak_rss_mb": 2048.2})
        'wall 94 s; queries searched 2,504; peak memory 2,048 MB'
    """
    parts = []
    for key, value in cost.items():
        if key == "wall_seconds":
            parts.append(f"wall {value:,.0f} s")
        elif key.startswith("peak_") and key.endswith("_mb"):
            what = "memory" if key == "peak_rss_mb" else key[5:-3].upper() + " memory"
            parts.append(f"peak {what} {value:,.0f} MB")
        elif isinstance(value, (int, float)):
            parts.append(f"{key.replace('_', ' ')} {value:,.0f}")
    return "; ".join(parts)
