"""Progress bars: live while a person watches, one final line in the book.

A notebook executed for the book (``python3 tasks.py execute``) or under nbval
would store every refresh of a tqdm bar as an output: hundreds of lines of
``train: 47%|...|`` between two paragraphs. With ``MINIDR_PROGRESS=final``
(set by ``tasks.py`` for those runs, and under ``CI``) a loop prints one line
when it ends instead: what it did, how long it took, its last postfix::

    train: 250/250 steps in 734 s (loss 0.4120)

Anywhere else (Colab, a terminal, a notebook you run yourself) it is an
ordinary tqdm bar.
"""
from __future__ import annotations

import os
import time

from tqdm import tqdm

__all__ = ["progress_bar", "final_line_mode"]


def final_line_mode() -> bool:
    """True when loops should print one final line instead of a live bar."""
    mode = os.environ.get("MINIDR_PROGRESS", "").strip().lower()
    if mode in ("live", "final"):
        return mode == "final"
    return bool(os.environ.get("CI"))


class _FinalLine:
    """The tqdm calls the library uses, printing one summary line at ``close``."""

    def __init__(self, iterable=None, total=None, desc="", unit="it", initial=0,
                 disable=False, **_):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.start, self.disable = initial, time.perf_counter(), disable
        self.postfix, self.closed = "", False
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        if self.closed or self.disable:
            return
        self.closed = True
        total = f"/{self.total}" if self.total is not None else ""
        extra = f" ({self.postfix})" if self.postfix else ""
        seconds = time.perf_counter() - self.start
        unit = self.unit + ("es" if self.unit.endswith(("s", "sh", "ch", "x")) else "s")
        print(f"{self.desc}: {self.n}{total} {unit} in {seconds:.0f} s{extra}",
              flush=True)


def progress_bar(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)``, or a one-line summary in final-line mode.

    Args:
        iterable: what to iterate over (or ``None`` and call ``update``).
        **kwargs: tqdm's ``total``, ``desc``, ``unit``, ``initial``, ``disable``.
    """
    if final_line_mode():
        return _FinalLine(iterable, **kwargs)
    return tqdm(iterable, mininterval=2, **kwargs)
