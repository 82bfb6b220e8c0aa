"""Quality during training, against training wall-clock time.

The efficiency chapters (ANCE, LTRe, STAR/ADORE) plot DL19 nDCG@10 against the
seconds of training that bought it. :class:`QualityCurve` measures such a
curve: it is a :class:`~minidr.training.trainer.Trainer` callback (every ``every``
steps) and can be called by hand (e.g. right after an ANCE index refresh). The time it
spends measuring is left out of its clock, so evaluating often does not make a method
look slower; the cost meter of the training still sees it.

Example::

    >>> import time
    >>> curve = QualityCurve(lambda: {"score": 1.0}, every=2, offset=10.0).start()
    >>> curve.measure(0)
    >>> [round(p["seconds"]) for p in curve.points], curve.points[0]["score"]
    ([10], 1.0)
"""
from __future__ import annotations

import time
from typing import Callable

__all__ = ["QualityCurve", "time_to_reach"]


class QualityCurve:
    """Points ``{"step", "seconds", **measure()}`` collected during training.

    Args:
        measure: returns a dict of qualities, e.g. ``{"dl19 nDCG@10": 0.31}``; it
            takes no arguments as a callback, or those given to :meth:`measure`.
        every: as a Trainer callback, measure every ``every`` steps (0: never).
        offset: seconds already spent before this clock starts (e.g. LTRe's
            one encoding of the corpus), added to every point.
    """

    def __init__(self, measure: Callable[[], dict], every: int = 0,
                 offset: float = 0.0):
        self.fn, self.every, self.offset = measure, every, offset
        self.points: list[dict] = []
        self._start: float | None = None
        self._excluded = 0.0
        self._measured_before = 0.0  # measuring time of the runs before a resume

    def start(self) -> "QualityCurve":
        """Start (or restart) the clock."""
        self._start, self._excluded = time.perf_counter(), 0.0
        return self

    def elapsed(self) -> float:
        """Seconds since :meth:`start` (plus ``offset``),
        without the time spent measuring."""
        if self._start is None:
            raise RuntimeError("call start() before training")
        return self.offset + time.perf_counter() - self._start - self._excluded

    def measure(self, step: int, *args) -> None:
        """Record one point now, ``measure(*args)``
        (its own time is excluded from the clock)."""
        seconds = self.elapsed()
        began = time.perf_counter()
        self.points.append({"step": step, "seconds": round(seconds, 2),
                            **self.fn(*args)})
        self._excluded += time.perf_counter() - began

    def state_dict(self) -> dict:
        """The points so far and the seconds spent measuring
        (kept in a trainer checkpoint, so a resumed run keeps its curve)."""
        return {"points": list(self.points), "excluded": self.measuring_seconds}

    def load_state_dict(self, state: dict) -> None:
        """Continue the curve of a checkpoint."""
        self.points = list(state["points"])
        self._measured_before = float(state.get("excluded", 0.0))

    @property
    def measuring_seconds(self) -> float:
        """Seconds spent measuring, over every run of this curve."""
        return self._measured_before + self._excluded

    def on_step_end(self, trainer, step: int, logs: dict) -> None:
        """Trainer callback: measure every ``every`` steps."""
        if self.every and step % self.every == 0:
            self.measure(step)


def time_to_reach(points: list[dict], level: float,
                  key: str = "dl19 nDCG@10") -> float | None:
    """Seconds of the first point whose ``key`` is at least ``level``;
    ``None`` if none is.

    Example::

        >>> time_to_reach([{"seconds": 0, "q": .2}, {"seconds": 5, "q": .4}], .3,
        ...               key="q")
        5
    """
    for p in sorted(points, key=lambda p: p["seconds"]):
        if p[key] >= level:
            return p["seconds"]
    return None
