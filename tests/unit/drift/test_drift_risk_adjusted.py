"""Tier-level risk-adjusted CUSUM (blind to category mix) and the Kitagawa split."""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from datetime import UTC, datetime, timedelta

import pytest

from routerwatch.drift import (
    DriftConfig,
    MinuteCount,
    Status,
    design_cusum,
    detect_tier_drift,
    kitagawa,
    learn_baseline,
    run_cusum,
)

T0 = datetime(2026, 2, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
RATES = {"billing": 0.10, "code": 0.60}  # easy and hard requests at the small tier


def binomial(n: int, p: float, rng: random.Random):
    cdf, acc = [], 0.0
    for k in range(n + 1):
        acc += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        cdf.append(acc)
    cdf[-1] = 1.0
    return lambda: bisect_left(cdf, rng.random())


def traffic(start, minutes, mix, rates, rng):
    """Per-category per-minute counts: ``mix[cat]`` trials a minute at ``rates[cat]``."""
    out = {}
    for cat, n in mix.items():
        draw = binomial(n, rates[cat], rng)
        out[cat] = [MinuteCount(start + i * MIN, draw(), n) for i in range(minutes)]
    return out


@pytest.fixture(scope="module")
def baselines():
    rng = random.Random(21)
    history = traffic(T0, 2 * 1440, {"billing": 80, "code": 20}, RATES, rng)
    return {cat: learn_baseline(rows, labels={"tier": "small", "category": cat}) for cat, rows in history.items()}


def test_pure_mix_shift_does_not_move_the_risk_adjusted_cusum_but_pages_a_naive_one(baselines):
    rng = random.Random(22)
    start = max(b.window_end for b in baselines.values())
    # Half the traffic is now hard: pooled escalation 20 % -> 35 %, every category unchanged.
    shifted = traffic(start, 1440, {"billing": 50, "code": 50}, RATES, rng)
    now = start + 1440 * MIN
    up, down = detect_tier_drift(baselines, shifted, now=now, labels={"router": "r", "tier": "small"})
    for v in (up, down):
        assert v.status is Status.OK and not v.firing and v.extra["alarms_in_call"] == []
    assert up.labels == {"router": "r", "tier": "small", "scope": "tier", "direction": "up"}
    assert up.observed_value == pytest.approx(0.35, abs=0.01)
    assert up.baseline_value == pytest.approx(0.35, abs=0.01)  # expected for the mix actually served
    split = up.extra["kitagawa"]
    assert split["total"] == pytest.approx(0.15, abs=0.01)
    assert split["mix"] == pytest.approx(0.15, abs=0.01) and abs(split["within"]) < 0.01

    # The naive tier CUSUM: one pooled baseline, pooled counts.
    pooled_hist = [
        MinuteCount(a.minute, a.successes + b.successes, a.trials + b.trials)
        for a, b in zip(*(traffic(T0, 2 * 1440, {"billing": 80, "code": 20}, RATES, random.Random(21)).values()))
    ]
    pooled = learn_baseline(pooled_hist)
    naive = design_cusum(pooled.p0, pooled.volume, direction="up", arl0=DriftConfig().arl0_minutes)
    pooled_now = [
        MinuteCount(a.minute, a.successes + b.successes, a.trials + b.trials)
        for a, b in zip(shifted["billing"], shifted["code"])
    ]
    trace = run_cusum(naive, pooled_now)
    assert trace.alarms and (trace.alarms[0].at - start) / MIN < 15


def test_within_category_rise_fires_the_risk_adjusted_cusum(baselines):
    rng = random.Random(23)
    start = max(b.window_end for b in baselines.values())
    worse = {"billing": 0.14, "code": 0.65}
    onset = start + 120 * MIN
    quiet = traffic(start, 120, {"billing": 80, "code": 20}, RATES, rng)
    drift = traffic(onset, 300, {"billing": 80, "code": 20}, worse, rng)
    counts = {cat: quiet[cat] + drift[cat] for cat in RATES}
    up, down = detect_tier_drift(baselines, counts, now=onset + 300 * MIN, labels={"tier": "small"})
    assert up.firing and not down.firing
    assert up.change_start is not None and abs((up.change_start - onset) / MIN) < 60
    assert up.magnitude > 0.02
    assert up.extra["kitagawa"]["within"] > 0.03 and abs(up.extra["kitagawa"]["mix"]) < 0.01
    assert "category mix explains" in up.description


def test_no_category_baseline_is_no_baseline():
    now = T0 + 10 * MIN
    verdicts = detect_tier_drift({"billing": None}, {}, now=now, labels={"tier": "small"})
    assert {v.status for v in verdicts} == {Status.NO_BASELINE}


def test_kitagawa_sums_exactly_and_attributes_pure_mix_to_mix():
    rates = {"a": 0.1, "b": 0.6, "c": 0.3}
    split = kitagawa(rates, {"a": 80, "b": 15, "c": 5}, rates, {"a": 40, "b": 50, "c": 10})
    assert split.within == 0.0
    assert split.mix == pytest.approx(split.total, abs=1e-15)
    assert split.total == pytest.approx((0.4 * 0.1 + 0.5 * 0.6 + 0.1 * 0.3) - (0.8 * 0.1 + 0.15 * 0.6 + 0.05 * 0.3))
    rng = random.Random(8)
    for _ in range(200):
        cats = [f"c{i}" for i in range(rng.randint(1, 6))]
        rb = {c: rng.random() for c in cats}
        ra = {c: rng.random() for c in cats}
        wb = {c: rng.random() * 100 for c in cats}
        wa = {c: rng.random() * 100 for c in cats}
        total, mix, within = kitagawa(rb, wb, ra, wa)
        assert mix + within == pytest.approx(total, abs=1e-12)
    # Pure rate change at fixed weights is all "within".
    same_w = {"a": 1, "b": 1}
    split = kitagawa({"a": 0.1, "b": 0.2}, same_w, {"a": 0.2, "b": 0.3}, same_w)
    assert split.mix == 0.0 and split.within == pytest.approx(0.1)
    # A category that appears only afterwards counts as mix.
    split = kitagawa({"a": 0.1}, {"a": 1}, {"a": 0.1, "new": 0.5}, {"a": 1, "new": 1})
    assert split.within == 0.0 and split.mix == pytest.approx(0.2)
    with pytest.raises(ValueError):
        kitagawa({}, {}, {"a": 0.1}, {"a": 1})
