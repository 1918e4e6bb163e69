"""Surge detector: a broken verifier (30 % -> 90 %) pages within minutes and is named."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from routerwatch.drift import MinuteCount, SurgeConfig, arl0_for_budget, detect_surge, learn_baseline, run_cusum
from routerwatch.drift.cusum_design import design_cusum

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
REASONS = ("low_confidence", "verifier_rejected", "schema_invalid")


def minute(at, rng, n, rates):
    """One minute at the tier: escalations split by reason with per-trial ``rates``."""
    by_reason = dict.fromkeys(REASONS, 0)
    for _ in range(n):
        u = rng.random()
        for reason in REASONS:
            if u < rates[reason]:
                by_reason[reason] += 1
                break
            u -= rates[reason]
    return by_reason


def run(rng, start, minutes, n, rates):
    counts, reasons = [], {r: [] for r in REASONS}
    for i in range(minutes):
        at = start + i * MIN
        by = minute(at, rng, n, rates)
        counts.append(MinuteCount(at, sum(by.values()), n))
        for r in REASONS:
            reasons[r].append(MinuteCount(at, by[r], n))
    return counts, reasons


NORMAL = {"low_confidence": 0.22, "verifier_rejected": 0.05, "schema_invalid": 0.03}  # 30 %
BROKEN = {"low_confidence": 0.22, "verifier_rejected": 0.65, "schema_invalid": 0.03}  # 90 %


def test_broken_verifier_pages_within_three_minutes_and_is_named():
    rng = random.Random(31)
    history, history_reasons = run(rng, T0, 1440, 100, NORMAL)
    baseline = learn_baseline(history, labels={"router": "r", "tier": "small"})
    rates = {r: learn_baseline(rows).p0 for r, rows in history_reasons.items()}
    start = baseline.window_end
    quiet, quiet_reasons = run(rng, start, 240, 100, NORMAL)
    onset = start + 240 * MIN
    broken, broken_reasons = run(rng, onset, 10, 100, BROKEN)
    reasons = {r: quiet_reasons[r] + broken_reasons[r] for r in REASONS}
    counts = quiet + broken

    before = detect_surge(baseline, quiet, now=onset, reason_counts=quiet_reasons, reason_rates=rates)
    assert not before.firing and before.extra["alarms_in_call"] == []

    for minutes_after in range(1, 4):
        now = onset + minutes_after * MIN
        v = detect_surge(baseline, counts, now=now, reason_counts=reasons, reason_rates=rates)
        if v.firing:
            break
    assert v.firing and minutes_after <= 3, minutes_after
    assert v.extra["dominant_reason"] == "verifier_rejected"
    assert "verifier_rejected" in v.summary and v.alertname == "RouterwatchEscalationSurge"
    assert v.change_start is not None and abs((v.change_start - onset) / MIN) <= 1
    assert v.observed_value > 0.8


def test_surge_delay_over_many_replicates_and_a_quiet_week():
    rng = random.Random(32)
    # The budget of a fleet: one false surge page a month across 200 series.
    design = design_cusum(0.3, 100, direction="up", arl0=arl0_for_budget(1, 200, 1), delta=0.2)
    delays = []
    for _ in range(50):
        quiet = [MinuteCount(T0 + i * MIN, sum(rng.random() < 0.3 for _ in range(100)), 100) for i in range(30)]
        jump = [MinuteCount(T0 + (30 + i) * MIN, sum(rng.random() < 0.9 for _ in range(100)), 100) for i in range(5)]
        trace = run_cusum(design, quiet + jump)
        delays.append((trace.alarms[0].at - jump[0].minute) / MIN + 1)
    assert max(delays) <= 2  # paged in the first or second minute of the jump, every time
    week = [MinuteCount(T0 + i * MIN, sum(rng.random() < 0.3 for _ in range(100)), 100) for i in range(7 * 1440)]
    assert run_cusum(design, week).alarms == ()


def test_surge_clears_soon_after_the_gate_is_fixed():
    rng = random.Random(33)
    design = design_cusum(0.3, 100, direction="up", arl0=SurgeConfig().arl0_minutes, delta=0.2)
    broken = [MinuteCount(T0 + i * MIN, sum(rng.random() < 0.9 for _ in range(100)), 100) for i in range(120)]
    fixed = [MinuteCount(T0 + (120 + i) * MIN, sum(rng.random() < 0.3 for _ in range(100)), 100) for i in range(30)]
    trace = run_cusum(design, broken + fixed)
    assert len(trace.alarms) == 1 and len(trace.cleared) == 1
    assert (trace.cleared[0] - fixed[0].minute) / MIN < 5
