"""minidr.curve: quality-vs-time curves exclude their own measuring time."""
import time

import pytest

from minidr.evaluation.curve import QualityCurve, time_to_reach


def test_measuring_time_is_left_out_of_the_clock():
    def slow():
        time.sleep(0.2)
        return {"q": 1.0}
    curve = QualityCurve(slow, offset=3.0).start()
    curve.measure(0)
    curve.measure(1)
    first, second = (p["seconds"] for p in curve.points)
    assert 3.0 <= first < 3.1 and second - first < 0.1  # the 0.2 s sleeps do not count


def test_callback_measures_on_schedule():
    curve = QualityCurve(lambda: {"q": 0.5}, every=3).start()
    for step in range(1, 10):
        curve.on_step_end(None, step, {})
    assert [p["step"] for p in curve.points] == [3, 6, 9]


def test_clock_must_be_started():
    with pytest.raises(RuntimeError, match="start"):
        QualityCurve(lambda: {}).measure(0)


def test_time_to_reach():
    points = [{"seconds": 9, "q": 0.5}, {"seconds": 0, "q": 0.1},
              {"seconds": 4, "q": 0.3}]
    assert time_to_reach(points, 0.3, key="q") == 4
    assert time_to_reach(points, 0.05, key="q") == 0
    assert time_to_reach(points, 0.6, key="q") is None


def test_a_resumed_curve_keeps_its_points_and_measuring_time():
    curve = QualityCurve(lambda: {"q": 1.0}, every=1).start()
    curve.measure(1)
    state = curve.state_dict()
    resumed = QualityCurve(lambda: {"q": 2.0}, every=1)
    resumed.load_state_dict(state)
    resumed.start().measure(2)
    assert [p["q"] for p in resumed.points] == [1.0, 2.0]
    assert resumed.measuring_seconds >= state["excluded"]
