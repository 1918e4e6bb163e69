"""Failure-mode shift, shadow quality, experiment confound, baselines and the verdict type."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from routerwatch.drift import (
    ALERT_NAMES,
    MinuteCount,
    Severity,
    Signal,
    Status,
    Verdict,
    detect_experiment_confound,
    detect_failure_shift,
    detect_shadow_quality,
    learn_baseline,
)
from routerwatch.drift.baseline import Baseline

T0 = datetime(2026, 7, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


def series(start, minutes, n, p, rng):
    return [MinuteCount(start + i * MIN, sum(rng.random() < p for _ in range(n)), n) for i in range(minutes)]


def test_failure_mode_rate_rising_is_found_and_a_quiet_one_is_not():
    rng = random.Random(41)
    history = series(T0, 1440, 200, 0.01, rng)
    baseline = learn_baseline(history, labels={"tier": "small", "failure_mode": "timeout"})
    onset = baseline.window_end + 60 * MIN
    quiet = series(baseline.window_end, 60, 200, 0.01, rng)
    rising = series(onset, 120, 200, 0.03, rng)
    v = detect_failure_shift(baseline, quiet + rising, now=onset + 120 * MIN)
    assert v.firing and v.signal is Signal.FAILURE_SHIFT and v.severity is Severity.WARNING
    assert v.labels == {"tier": "small", "failure_mode": "timeout", "direction": "up"}
    assert v.extra["p1"] == pytest.approx(2 * baseline.p0)  # relative alternative for a rare mode
    assert v.alertname == "RouterwatchFailureModeShift"
    calm = detect_failure_shift(baseline, quiet, now=onset)
    assert not calm.firing
    # Resuming from the state in the verdict equals folding everything at once.
    first = detect_failure_shift(baseline, quiet, now=onset)
    resumed = detect_failure_shift(baseline, rising, now=onset + 120 * MIN, state=first.state)
    assert resumed.state == v.state


def test_shadow_pass_rate_falling_pages_with_pooled_quiet_minutes():
    rng = random.Random(42)
    history = series(T0, 3 * 1440, 4, 0.8, rng)  # four graded shadow answers a minute
    baseline = learn_baseline(history, labels={"tier": "small"})
    onset = baseline.window_end + 240 * MIN
    before = series(baseline.window_end, 240, 4, 0.8, rng)
    after = series(onset, 600, 4, 0.65, rng)
    v = detect_shadow_quality(baseline, before + after, now=onset + 600 * MIN)
    assert v.firing and v.labels["direction"] == "down" and v.magnitude < -0.08
    assert v.change_start >= onset - 120 * MIN
    assert not detect_shadow_quality(baseline, before, now=onset).firing
    assert detect_shadow_quality(None, before, now=onset).status is Status.NO_BASELINE


def test_experiment_confound():
    shifted = {"control": {"small": 700, "large": 300}, "treatment": {"small": 550, "large": 450}}
    v = detect_experiment_confound(shifted, now=T0, experiment_id="gate-test")
    assert v.firing and v.labels == {"experiment_id": "gate-test"} and v.statistic > v.threshold
    assert v.extra["mix"]["treatment"]["large"] == pytest.approx(0.45)
    same = {"control": {"small": 700, "large": 300}, "treatment": {"small": 702, "large": 298}}
    assert not detect_experiment_confound(same, now=T0, experiment_id="gate-test").firing
    few = {"control": {"small": 7, "large": 3}, "treatment": {"small": 5, "large": 5}}
    assert detect_experiment_confound(few, now=T0, experiment_id="x").status is Status.INSUFFICIENT_VOLUME


def test_baseline_is_frozen_versioned_and_json():
    rng = random.Random(43)
    history = series(T0, 120, 50, 0.2, rng)
    a = learn_baseline(history, labels={"tier": "small"}, min_trials=100)
    b = learn_baseline(list(reversed(history)), labels={"tier": "small"}, min_trials=100)
    assert a.version == b.version and a.version.startswith("b1-")  # content hash, order-free
    c = learn_baseline(history[:-1], labels={"tier": "small"}, min_trials=100)
    assert c.version != a.version
    assert Baseline.model_validate_json(a.model_dump_json()) == a
    with pytest.raises(Exception):
        a.p0 = 0.5  # frozen
    # Empty minutes count toward the window, so the volume is per minute of the window.
    gappy = learn_baseline(history[::2], start=T0, end=T0 + 120 * MIN, min_trials=100)
    assert gappy.volume == pytest.approx(25.0) and gappy.active_minutes == 60 and gappy.minutes == 120
    assert learn_baseline(history, min_trials=10**6) is None
    assert learn_baseline([], start=T0, end=T0 + 60 * MIN) is None


def test_verdict_round_trips_and_every_signal_has_an_alert_name():
    assert set(ALERT_NAMES) == set(Signal)
    assert all(name.startswith("Routerwatch") and name.isidentifier() for name in ALERT_NAMES.values())
    v = Verdict(signal=Signal.ESCALATION_DRIFT, labels={"tier": "small"}, firing=True, evaluated_at=T0,
                change_start=T0 - 5 * MIN, extra={"kitagawa": {"mix": 0.1}})
    assert Verdict.model_validate(json.loads(json.dumps(v.model_dump(mode="json")))) == v
    assert v.identity == ("escalation_drift", "critical", (("tier", "small"),))
