import pytest

from soscope.training.schedules import ExponentialSchedule


def test_schedule_boundaries_and_log_linear_midpoint():
    s = ExponentialSchedule(start_value=1.0, end_value=0.01, n_iterations=100, start_iteration=50)
    assert s(0) == 1.0
    assert s(50) == 1.0
    assert s(51) == pytest.approx(10 ** (-2 / 100))
    assert s(100) == pytest.approx(0.1)
    assert s(150) == pytest.approx(0.01)
    assert s(151) == 0.01
    assert s(10**6) == 0.01


def test_constant_schedule_and_bad_values():
    assert ExponentialSchedule(1.0, 1.0, 10, 0)(5) == 1.0
    with pytest.raises(ValueError):
        ExponentialSchedule(0.0, 1.0, 10, 0)
    with pytest.raises(ValueError):
        ExponentialSchedule(1.0, 1.0, 0, 0)
