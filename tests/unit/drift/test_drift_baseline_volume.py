"""A baseline's volume is per minute of the series' own history, not of the whole read window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from routerwatch.drift import Baseline, MinuteCount, learn_baseline

END = datetime(2026, 3, 8, tzinfo=UTC)
MIN = timedelta(minutes=1)
WEEK = (END - timedelta(hours=168), END)


def traffic(minutes: int, per_minute: int = 100) -> list[MinuteCount]:
    """The last ``minutes`` minutes before END at ``per_minute`` trials, 30 % escalated."""
    return [MinuteCount(END - (minutes - i) * MIN, per_minute * 3 // 10, per_minute) for i in range(minutes)]


def test_three_hours_of_traffic_in_a_week_window_is_100_a_minute():
    # Before: 18,000 trials / 10,080 window minutes = 1.8 a minute (0.1 after the first 1,000 trials).
    b = learn_baseline(traffic(180), start=WEEK[0], end=WEEK[1])
    assert b.volume == pytest.approx(100.0) and b.observed_minutes == 180 and b.minutes == 10080
    assert b.window_start == WEEK[0] and b.window_end == END


def test_quiet_minutes_after_the_first_trial_still_count():
    rows = traffic(180)
    rows = rows[:60] + [MinuteCount(r.minute, 0, 0) for r in rows[60:]]  # stopped after an hour
    b = learn_baseline(rows, start=WEEK[0], end=WEEK[1], min_trials=1000)
    assert b.volume == pytest.approx(6000 / 180) and b.active_minutes == 60


def test_a_first_baseline_needs_an_hour_of_the_series_own_history():
    # 1,000 trials in 10 minutes is not enough history to freeze a baseline on.
    assert learn_baseline(traffic(10), start=WEEK[0], end=WEEK[1]) is None
    assert learn_baseline(traffic(59), start=WEEK[0], end=WEEK[1]) is None
    assert learn_baseline(traffic(60), start=WEEK[0], end=WEEK[1]).volume == pytest.approx(100.0)


def test_a_baseline_stored_before_observed_minutes_existed_still_loads():
    b = learn_baseline(traffic(180), start=WEEK[0], end=WEEK[1])
    old = b.model_dump(mode="json")
    del old["observed_minutes"]
    assert Baseline.model_validate(old).observed_minutes is None
