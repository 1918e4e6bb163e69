"""Bernoulli CUSUM: thresholds from a false-alarm budget, detection delay, change point, live = replay."""

from __future__ import annotations

import math
import random
import statistics
from bisect import bisect_left
from datetime import UTC, datetime, timedelta

import pytest

from routerwatch.drift import (
    CusumState,
    DriftConfig,
    MinuteCount,
    Status,
    arl0_for_budget,
    average_run_length,
    design_cusum,
    detect_escalation_drift,
    learn_baseline,
    run_cusum,
    simulate_run_lengths,
    threshold_for_arl,
)
from routerwatch.drift.cusum_design import alternative_rate, cached_threshold

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


def binomial(n: int, p: float, rng: random.Random):
    """A seeded Bin(n, p) sampler by CDF inversion (fast enough for months of minutes)."""
    cdf, acc = [], 0.0
    for k in range(n + 1):
        acc += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        cdf.append(acc)
    cdf[-1] = 1.0
    return lambda: bisect_left(cdf, rng.random())


def series(start: datetime, minutes: int, n: int, p: float, rng: random.Random) -> list[MinuteCount]:
    draw = binomial(n, p, rng)
    return [MinuteCount(start + i * MIN, draw(), n) for i in range(minutes)]


@pytest.mark.parametrize("direction", ["up", "down"])
def test_derived_threshold_meets_the_target_arl_by_simulation(direction):
    target = 2000.0
    design = design_cusum(0.3, 100, direction=direction, arl0=target, delta=0.03)
    assert design.arl0 == pytest.approx(target, rel=0.01)  # the chain hit the target
    runs = simulate_run_lengths(design, p_true=0.3, trials=100, runs=500, seed=11)
    measured = statistics.mean(runs)
    # 500 roughly exponential run lengths: standard error ~4.5 %; the tolerance is ~3 of them.
    assert measured == pytest.approx(target, rel=0.15), measured


@pytest.mark.parametrize(("p0", "trials", "delta"), [(0.3, 100, 0.2), (0.02, 50, 0.03)])
def test_coarse_lattice_designs_use_the_exact_step_and_stay_at_or_above_target(p0, trials, delta):
    # A few successes separate 0 from h: the ARL moves in steps, computed exactly (not smoothed).
    design = design_cusum(p0, trials, direction="up", arl0=2000, delta=delta)
    assert design.arl0 >= 2000 * 0.999
    runs = simulate_run_lengths(design, p_true=p0, trials=trials, runs=300, seed=12)
    assert statistics.mean(runs) == pytest.approx(design.arl0, rel=0.18)


def test_extreme_designs_do_not_break():
    # +20 points at 10,000 trials a minute: no in-control minute ever carries positive evidence.
    design = design_cusum(0.3, 10_000, direction="up", arl0=1e7, delta=0.2)
    assert design.arl0 == math.inf and 0 < design.h < 1e-3
    assert design_cusum(0.999, 100, direction="up", arl0=1e5, delta=0.03).p1 < 1
    assert design_cusum(0.001, 1, direction="down", arl0=1e5, delta=0.03).h > 0


def test_threshold_grows_with_the_number_of_series_and_detection_slows_accordingly():
    one = arl0_for_budget(false_pages_per_month=1, series=1, sides=2)
    fleet = arl0_for_budget(false_pages_per_month=1, series=200, sides=2)
    assert one == pytest.approx(43_830 * 2) and fleet == pytest.approx(43_830 * 400)
    p1 = alternative_rate(0.3, "up", 0.03)
    h_one = threshold_for_arl(0.3, 100, p1, one)
    h_fleet = threshold_for_arl(0.3, 100, p1, fleet)
    assert h_fleet > h_one + 4  # ~log(200) more evidence before paging
    # Lorden: a likelihood-ratio CUSUM has ARL0 >= exp(h), so h never exceeds log(ARL0).
    assert h_one < math.log(one) and h_fleet < math.log(fleet)
    assert average_run_length(0.3, 100, p1, h_fleet) == pytest.approx(fleet, rel=0.02)


@pytest.mark.parametrize(("series_count", "bound"), [(1, 50), (200, 80)])
def test_three_point_drift_is_detected_quickly_through_the_real_fold(series_count, bound):
    arl0 = arl0_for_budget(1, series_count, 2)
    design = design_cusum(0.3, 100, direction="up", arl0=arl0, delta=0.03)
    rng = random.Random(series_count)
    delays, start_errors = [], []
    for _ in range(150):
        onset = T0 + 120 * MIN
        counts = series(T0, 120, 100, 0.30, rng) + series(onset, 400, 100, 0.33, rng)
        trace = run_cusum(design, counts)
        first = next(a for a in trace.alarms if a.at >= onset)
        delays.append((first.at - onset) / MIN + 1)
        start_errors.append(abs((first.change_start - onset) / MIN))
    mean_delay = statistics.mean(delays)
    predicted = average_run_length(0.3, 100, design.p1, design.h, p_true=0.33)
    print(f"series={series_count} h={design.h:.2f} mean delay={mean_delay:.1f} min (chain {predicted:.1f})")
    assert mean_delay < bound
    assert mean_delay == pytest.approx(predicted, rel=0.15)
    # The last zero of the statistic before the alarm estimates the onset well.
    assert statistics.median(start_errors) <= 20


def test_a_quiet_month_pages_nobody_at_the_fleet_budget():
    rng = random.Random(2)
    history = series(T0, 7 * 1440, 100, 0.3, rng)
    baseline = learn_baseline(history, labels={"router": "r", "tier": "small", "category": "billing"})
    assert baseline is not None and baseline.p0 == pytest.approx(0.3, abs=0.002)
    month = series(baseline.window_end, 30 * 1440, 100, 0.3, rng)
    config = DriftConfig(arl0_minutes=arl0_for_budget(1, 200, 2))
    now = month[-1].minute + MIN
    verdicts = detect_escalation_drift(baseline, month, now=now, config=config)
    assert [v.labels["direction"] for v in verdicts] == ["up", "down"]
    for v in verdicts:
        assert v.status is Status.OK and not v.firing and v.extra["alarms_in_call"] == []
        assert v.threshold > 13 and v.baseline_version == baseline.version


def test_drift_verdict_fires_with_change_start_and_survives_json():
    rng = random.Random(4)
    history = series(T0, 3 * 1440, 100, 0.3, rng)
    baseline = learn_baseline(history, labels={"tier": "small", "category": "code"})
    onset = baseline.window_end + 600 * MIN
    recent = series(baseline.window_end, 600, 100, 0.3, rng) + series(onset, 240, 100, 0.36, rng)
    now = onset + 240 * MIN
    up, down = detect_escalation_drift(baseline, recent, now=now)
    assert up.firing and not down.firing
    assert up.severity.value == "critical" and up.statistic >= up.threshold
    assert abs((up.change_start - onset) / MIN) < 45
    assert up.observed_value == pytest.approx(0.36, abs=0.02) and up.magnitude > 0.04
    assert "rose" in up.summary and up.alertname == "RouterwatchEscalationDrift"
    again = type(up).model_validate_json(up.model_dump_json())
    assert again == up


def test_live_minute_by_minute_equals_one_replay():
    rng = random.Random(5)
    design = design_cusum(0.3, 100, direction="up", arl0=5000, delta=0.03)
    counts = series(T0, 300, 100, 0.3, rng) + series(T0 + 300 * MIN, 200, 100, 0.4, rng)
    replay = run_cusum(design, counts)
    state: CusumState | None = None
    live_alarms = []
    for i in range(len(counts)):
        # The live caller re-reads an overlapping window each minute; folded minutes are skipped.
        trace = run_cusum(design, counts[max(0, i - 5) : i + 1], state=state)
        state = CusumState.model_validate_json(trace.state.model_dump_json())  # persisted and read back
        live_alarms.extend(trace.alarms)
    assert state == replay.state
    assert live_alarms == list(replay.alarms) and len(live_alarms) >= 1


def test_alarm_latches_while_shifted_and_clears_soon_after_recovery():
    rng = random.Random(6)
    design = design_cusum(0.3, 100, direction="up", arl0=87_660, delta=0.03)
    shifted = series(T0, 600, 100, 0.4, rng)
    recovered = series(T0 + 600 * MIN, 300, 100, 0.3, rng)
    trace = run_cusum(design, shifted)
    assert len(trace.alarms) == 1 and trace.state.alarm_at is not None  # one page, not one per minute
    assert trace.state.s <= 1.25 * design.h + 1e-9  # capped: recovery time does not grow with the shift
    after = run_cusum(design, recovered, state=trace.state)
    assert after.state.alarm_at is None and len(after.cleared) == 1
    assert (after.cleared[0] - recovered[0].minute) / MIN < 90


def test_quiet_minutes_are_pooled_not_dropped():
    design = design_cusum(0.3, 100, direction="up", arl0=5000, delta=0.03)
    counts = [MinuteCount(T0 + i * MIN, 2, 3) for i in range(10)]  # 3 trials a minute, 67 % escalated
    pooled = run_cusum(design, counts, min_trials=15)
    # Two pools of five minutes (15 trials) were applied; the llr is additive, so nothing is lost.
    assert pooled.state.minutes == 2
    assert pooled.state.s == pytest.approx(design.llr(20, 30))
    assert pooled.state.run_start == T0


def test_no_baseline_and_low_volume_are_silent_and_say_why():
    rng = random.Random(7)
    short = series(T0, 30, 100, 0.3, rng)
    assert learn_baseline(short, min_minutes=60) is None
    now = T0 + 30 * MIN
    verdicts = detect_escalation_drift(None, short, now=now, labels={"tier": "small"})
    assert [v.status for v in verdicts] == [Status.NO_BASELINE, Status.NO_BASELINE]
    assert not any(v.firing for v in verdicts) and "baseline" in verdicts[0].description
    sparse = [MinuteCount(T0 + i * 10 * MIN, 1, 5) for i in range(300)]  # 0.5 trials/min
    baseline = learn_baseline(sparse, min_trials=1000, min_minutes=60)
    assert baseline is not None and baseline.volume == pytest.approx(0.5, rel=0.01)
    low = detect_escalation_drift(baseline, [], now=baseline.window_end, config=DriftConfig(min_volume=1.0))
    assert {v.status for v in low} == {Status.INSUFFICIENT_VOLUME}


def test_threshold_is_cached_for_the_scheduler():
    p1 = alternative_rate(0.3, "up", 0.03)
    threshold_for_arl(0.3, 100, p1, 1e6)
    hits = cached_threshold.cache_info().hits
    # Inputs that round alike share one design.
    threshold_for_arl(0.30001, 100.2, p1, 1.0001e6)
    assert cached_threshold.cache_info().hits == hits + 1
