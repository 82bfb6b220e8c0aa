"""minidr.cost: CostMeter sums time over with-blocks, and counters."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

import minidr.core.cost
from minidr.core.cost import CostMeter


@pytest.fixture
def clock(monkeypatch):
    """A fake perf_counter for minidr.cost only: returns the queued readings."""
    readings = []
    monkeypatch.setattr(minidr.core.cost, "time",
                        SimpleNamespace(perf_counter=lambda: readings.pop(0)))
    return readings


def test_seconds_accumulate_over_blocks_only(clock):
    clock.extend([10.0, 12.5, 100.0, 101.0])  # enter, exit, (time passes), enter, exit
    meter = CostMeter()
    with meter:
        pass
    with meter as m:
        assert m is meter
    assert meter.seconds == pytest.approx(3.5)
    assert meter.summary()["wall_seconds"] == 3.5
    assert clock == []


def test_exception_in_block_still_charged_and_propagates(clock):
    clock.extend([0.0, 2.0])
    meter = CostMeter()
    with pytest.raises(KeyError):
        with meter:
            raise KeyError("boom")
    assert meter.seconds == pytest.approx(2.0)


def test_real_time_is_measured():
    meter = CostMeter()
    with meter:
        time.sleep(0.05)
    with meter:
        time.sleep(0.05)
    assert meter.seconds >= 0.1
    assert meter.summary()["wall_seconds"] >= 0.1


def test_counters_accumulate():
    meter = CostMeter()
    with meter:
        meter.add(passages_encoded=64, steps=1)
    meter.add(passages_encoded=64, steps=1)
    meter.add(queries_encoded=3)
    s = meter.summary()
    assert (s["passages_encoded"], s["steps"], s["queries_encoded"]) == (128, 2, 3)
    assert 1 < s["peak_rss_mb"] < 256 * 1024  # MB: more than 1 MB, less than 256 GB
    assert "unused" not in s


def test_fresh_meter_summary():
    s = CostMeter().summary()
    assert s["wall_seconds"] == 0.0
    assert set(s) <= {"wall_seconds", "peak_rss_mb", "peak_gpu_mb"}


def test_elapsed_includes_the_open_block():
    import time

    meter = CostMeter()
    with meter:
        time.sleep(0.02)
        assert meter.seconds == 0 and meter.elapsed >= 0.02
    assert meter.elapsed == meter.seconds >= 0.02
