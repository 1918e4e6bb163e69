"""Degenerate series: every detector judges them by a stated rule or skips them with a named reason.

A tier that escalates every request (baseline rate 0.9999, as in the disk-full
run), a failure mode never seen (rate 1e-9), a baseline object that bypassed
validation (rate 0 or 1, no trials), minutes with no trials, ten million trials
a minute: none of these may raise or hang, because the scheduler judges every
series in one run.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerwatch.drift import (
    Baseline,
    CusumDesign,
    DriftConfig,
    MinuteCount,
    Status,
    average_run_length,
    design_cusum,
    detect_escalation_drift,
    detect_surge,
    detect_tier_drift,
    evaluate_burn_rate,
    learn_baseline,
)
from routerwatch.drift.cusum_design import RATE_EPS, DesignSkip, alternative_rate, plan_cusum, threshold_for_mix

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
ARL0 = 43_830.0 * 200  # a fleet's per-side budget: the scheduler's order of magnitude

EXTREME_RATES = [0.9999, 0.99995, 1 - 1e-9, 1 - 1e-12, 1 - 1e-16, 1e-4, 1e-9, 1e-12, 1e-300, 5e-324, 0.5]


def flat(start: datetime, minutes: int, successes: int, trials: int) -> list[MinuteCount]:
    return [MinuteCount(start + i * MIN, successes, trials) for i in range(minutes)]


def baseline_of(p0: float, volume: float = 100.0, **changes) -> Baseline:
    """A baseline as a caller may hand it over, validation bypassed (a corrupted store row, a test double)."""
    fields = dict(labels={"router": "r", "tier": "small", "category": "c"}, p0=p0, observed_rate=min(max(p0, 0.0), 1.0),
                  successes=0, trials=1000, volume=volume, minutes=120, active_minutes=120, dispersion=None,
                  window_start=T0 - 120 * MIN, window_end=T0, version="b1-test")
    fields.update(changes)
    return Baseline.model_construct(**fields)


def assert_sound(result: CusumDesign | DesignSkip) -> None:
    if isinstance(result, DesignSkip):
        assert result.reason and result.status in (Status.DEGENERATE, Status.INSUFFICIENT_VOLUME)
        return
    assert math.isfinite(result.h) and result.h > 0
    assert 0 < result.p0 < 1 and 0 < result.p1 < 1 and result.p0 != result.p1
    assert math.isfinite(result.log_odds) and math.isfinite(result.per_trial)
    assert result.arl0 >= 1


# ---- the design ------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["up", "down"])
def test_a_tier_escalating_every_request_is_designed_not_crashed(direction):
    # 0.9999: the shifted rate 0.99995 rounded to 1.0 in the design's cache key and divided by zero.
    design = design_cusum(0.9999, 100, direction=direction, arl0=ARL0, delta=0.03)
    assert design is not None
    assert_sound(design)


@pytest.mark.parametrize("p0", EXTREME_RATES)
@pytest.mark.parametrize("trials", [0.01, 1, 100, 10_000, 10_000_000])
@pytest.mark.parametrize("direction", ["up", "down"])
def test_extreme_rates_and_volumes_give_a_finite_design(p0, trials, direction):
    for delta, ratio in ((0.03, None), (0.2, None), (0.02, 3.0)):
        result = plan_cusum(p0, trials, direction=direction, arl0=ARL0, delta=delta, ratio=ratio)
        assert isinstance(result, CusumDesign), result  # every rate inside (0, 1) is judged
        assert_sound(result)


def test_rates_within_epsilon_of_zero_or_one_are_clamped_and_say_so():
    near_one = plan_cusum(1 - 1e-13, 100, direction="down", arl0=ARL0)
    assert near_one.p0 == pytest.approx(1 - RATE_EPS) and near_one.baseline_p0 == 1 - 1e-13
    near_zero = plan_cusum(1e-15, 100, direction="up", arl0=ARL0)
    assert near_zero.p0 == pytest.approx(RATE_EPS) and near_zero.baseline_p0 == 1e-15
    inside = plan_cusum(0.3, 100, direction="up", arl0=ARL0)
    assert inside.p0 == 0.3 and inside.baseline_p0 is None


def test_a_rare_event_whose_only_positive_step_is_rare_still_gets_a_threshold():
    # The chain's variance correction pulled the one positive step (two events in a minute at
    # p0 = 1e-9) below zero: no state could leave 0, and the factorisation divided by zero.
    design = design_cusum(1e-9, 100, direction="up", arl0=ARL0, delta=0.2)
    assert_sound(design)


@pytest.mark.parametrize("p0", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf])
def test_rates_outside_the_open_interval_are_skipped_with_a_reason(p0):
    skip = plan_cusum(p0, 100, direction="up", arl0=ARL0)
    assert isinstance(skip, DesignSkip) and skip.status is Status.DEGENERATE
    assert "baseline rate" in skip.reason and "degenerate" in skip.reason
    assert design_cusum(p0, 100, direction="up", arl0=ARL0) is None


@pytest.mark.parametrize("trials", [0.0, -5.0, math.nan, math.inf])
def test_volumes_that_size_no_design_are_skipped_with_a_reason(trials):
    skip = plan_cusum(0.3, trials, direction="up", arl0=ARL0)
    assert isinstance(skip, DesignSkip) and "trials" in skip.reason


def test_a_zero_shift_is_a_named_skip():
    skip = plan_cusum(0.3, 100, direction="up", arl0=ARL0, delta=0.0)
    assert isinstance(skip, DesignSkip) and "no room" in skip.reason


def test_run_length_of_a_rate_that_never_carries_positive_evidence_is_infinite():
    design = design_cusum(0.3, 100, direction="up", arl0=ARL0, delta=0.03)
    # At a true rate of 1e-9 the up-CUSUM sees only negative steps: it never alarms.
    assert average_run_length(0.3, 100, design.p1, design.h, p_true=1e-9) == math.inf
    assert math.isfinite(average_run_length(0.9999, 100, 0.9699, 5.0))


def test_risk_adjusted_threshold_at_ten_million_trials_per_category_is_bounded_in_time():
    volumes = {c: (1e7, p) for c, p in {"a": 0.3, "b": 0.5, "c": 0.7, "d": 0.99995}.items()}
    r = alternative_rate(0.5, "up", 0.0005)
    started = time.monotonic()
    h, achieved = threshold_for_mix(volumes, (r / (1 - r)) / 1.0, ARL0)
    assert time.monotonic() - started < 20
    assert math.isfinite(h) and h > 0 and achieved >= 1


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    p0=st.one_of(st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True), st.sampled_from(EXTREME_RATES)),
    trials=st.one_of(st.integers(min_value=1, max_value=10_000_000), st.sampled_from([1, 2, 10_000_000])),
    direction=st.sampled_from(["up", "down"]),
    shift=st.sampled_from([(0.03, None), (0.2, None), (0.02, 3.0), (0.005, None), (0.001, 10.0)]),
    arl0=st.sampled_from([100.0, 1e4, ARL0, 1e9]),
)
def test_design_never_raises_and_returns_a_finite_threshold_in_bounded_time(p0, trials, direction, shift, arl0):
    delta, ratio = shift
    started = time.monotonic()
    result = plan_cusum(p0, float(trials), direction=direction, arl0=arl0, delta=delta, ratio=ratio)
    assert time.monotonic() - started < 20, (p0, trials, direction, shift, arl0)
    assert_sound(result)
    # Every rate strictly inside (0, 1) is judged; "threshold computation failed" would be a bug.
    assert isinstance(result, CusumDesign), result


# ---- the detectors ---------------------------------------------------------------------------


def test_disk_full_series_escalating_every_request_is_judged_both_ways():
    history = flat(T0 - 120 * MIN, 120, 100, 100)  # every request escalated
    baseline = learn_baseline(history, labels={"router": "r", "tier": "small", "category": "c"})
    assert baseline.p0 > 0.9999
    steady = detect_escalation_drift(baseline, flat(T0, 60, 100, 100), now=T0 + 60 * MIN)
    assert [v.status for v in steady] == [Status.OK, Status.OK] and not any(v.firing for v in steady)
    recovered = detect_escalation_drift(baseline, flat(T0, 60, 50, 100), now=T0 + 60 * MIN)
    by_dir = {v.labels["direction"]: v for v in recovered}
    assert by_dir["down"].firing and not by_dir["up"].firing


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"p0": 1.0}, "baseline rate 1"),
        ({"p0": 0.0}, "baseline rate 0"),
        ({"p0": math.nan}, "baseline rate nan"),
        ({"p0": 0.3, "trials": 0}, "0 trials"),
        ({"p0": 0.3, "volume": math.inf}, "volume"),
    ],
)
def test_a_corrupt_baseline_is_skipped_with_the_reason_in_the_verdict(changes, words):
    baseline = baseline_of(**changes)
    verdicts = detect_escalation_drift(baseline, flat(T0, 30, 10, 100), now=T0 + 30 * MIN)
    assert len(verdicts) == 2
    for v in verdicts:
        assert v.status is Status.DEGENERATE and not v.firing and not v.evaluated
        assert v.description.startswith("skipped: ") and words in v.description, v.description


def test_a_baseline_of_one_trial_is_not_judged_and_says_why():
    baseline = baseline_of(0.75, volume=1 / 120, trials=1)
    verdicts = detect_escalation_drift(baseline, flat(T0, 30, 1, 1), now=T0 + 30 * MIN,
                                       config=DriftConfig(min_volume=0.0))
    assert all(v.status in (Status.OK, Status.DEGENERATE) for v in verdicts)
    assert all(v.status is Status.OK or v.description for v in verdicts)


def test_minutes_without_trials_and_huge_minutes_are_judged():
    baseline = baseline_of(0.3)
    empty = detect_escalation_drift(baseline, flat(T0, 60, 0, 0), now=T0 + 60 * MIN)
    assert all(v.status is Status.OK and not v.firing and v.observed_value is None for v in empty)
    huge = detect_escalation_drift(baseline, flat(T0, 60, 3_300_000, 10_000_000), now=T0 + 60 * MIN)
    by_dir = {v.labels["direction"]: v for v in huge}
    assert by_dir["up"].firing and math.isfinite(by_dir["up"].statistic)


def test_surge_on_a_saturated_tier_is_judged():
    baseline = learn_baseline(flat(T0 - 120 * MIN, 120, 100, 100), labels={"router": "r", "tier": "small"})
    verdict = detect_surge(baseline, flat(T0, 10, 100, 100), now=T0 + 10 * MIN,
                           reason_counts={"verifier_rejected": flat(T0, 10, 100, 100)})
    assert verdict.status is Status.OK and not verdict.firing


def test_tier_drift_with_a_saturated_category_and_a_corrupt_one_is_judged():
    labels = {"router": "r", "tier": "small"}
    saturated = learn_baseline(flat(T0 - 120 * MIN, 120, 100, 100), labels={**labels, "category": "disk"})
    normal = learn_baseline(flat(T0 - 120 * MIN, 120, 30, 100), labels={**labels, "category": "billing"})
    corrupt = baseline_of(1.0)
    counts = {"disk": flat(T0, 30, 100, 100), "billing": flat(T0, 30, 30, 100), "bad": flat(T0, 30, 5, 10)}
    verdicts = detect_tier_drift({"disk": saturated, "billing": normal, "bad": corrupt}, counts,
                                 now=T0 + 30 * MIN, labels=labels)
    assert [v.status for v in verdicts] == [Status.OK, Status.OK]
    assert not any(v.firing for v in verdicts)
    assert "bad" in verdicts[0].extra["degenerate_baselines"]


def test_tier_drift_whose_pooled_rate_is_saturated_is_judged():
    labels = {"router": "r", "tier": "small"}
    only = learn_baseline(flat(T0 - 120 * MIN, 120, 10_000, 10_000), labels={**labels, "category": "disk"})
    verdicts = detect_tier_drift({"disk": only}, {"disk": flat(T0, 30, 10_000, 10_000)}, now=T0 + 30 * MIN,
                                 labels=labels)
    assert all(v.status is Status.OK and not v.firing for v in verdicts)


def test_burn_rate_at_extreme_volumes_and_objectives():
    now = T0 + 60 * MIN
    huge = evaluate_burn_rate(flat(T0, 60, 10_000_000, 10_000_000), now=now, objective=0.999999)
    assert all(v.status is Status.OK and not v.firing for v in huge)
    empty = evaluate_burn_rate(flat(T0, 60, 0, 0), now=now)
    assert all(v.status is Status.INSUFFICIENT_VOLUME for v in empty)
    all_bad = evaluate_burn_rate(flat(T0, 60, 0, 10_000_000), now=now, objective=1 - 1e-12)
    assert all(math.isfinite(v.statistic) for v in all_bad) and any(v.firing for v in all_bad)
