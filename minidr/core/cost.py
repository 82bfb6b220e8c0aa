"""A cost meter: what a chapter's technique spent, reported beside its quality.

The leaderboard puts every technique's cost beside its score, measured the same
way everywhere: wall-clock seconds, and named counters (passages encoded,
queries encoded, index refreshes, training steps ...), plus peak memory.

Example::

    >>> meter = CostMeter()
    >>> with meter:
    ...     meter.add(passages_encoded=1000)
    >>> meter.summary()["passages_encoded"]
    1000
"""
from __future__ import annotations

import resource
import sys
import time
from collections import Counter

__all__ = ["CostMeter"]


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # bytes vs KiB
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class CostMeter:
    """Wall time (summed over ``with`` blocks), counters and peak memory.

    Use it as a context manager around the work to charge; it can be entered
    several times (e.g. index build, then search) and accumulates.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.counts: Counter[str] = Counter()
        self._start: float | None = None

    def __enter__(self) -> "CostMeter":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds += time.perf_counter() - self._start
        self._start = None

    @property
    def elapsed(self) -> float:
        """Seconds so far, including the ``with`` block still open (what a
        checkpoint written mid-training must keep)."""
        running = 0.0 if self._start is None else time.perf_counter() - self._start
        return self.seconds + running

    def add(self, **counts: int) -> None:
        """Add to named counters, e.g. ``add(passages_encoded=64, steps=1)``."""
        self.counts.update(counts)

    def summary(self) -> dict[str, float]:
        """``{"wall_seconds", "peak_rss_mb", "peak_gpu_mb"?, **counters}``."""
        out: dict[str, float] = {"wall_seconds": round(self.seconds, 2),
                                 "peak_rss_mb": round(_peak_rss_mb(), 1)}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out.update(self.counts)
        return out
