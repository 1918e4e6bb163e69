"""Surge detector under diurnal volume: its threshold must not depend on the baseline's mean volume.

Before: the threshold was designed for the baseline's mean volume only. On a tier learned at
~1,000 trials a minute no in-control minute at that volume carries positive evidence against
+20 points, so the search returned the floor h = 1e-6 ("any positive evidence pages"); at night,
at ~110 trials a minute, about one iid minute in seventy has positive evidence, and the detector
paged every night on volume alone.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from routerwatch.drift import MinuteCount, SurgeConfig, arl0_for_budget, detect_surge, learn_baseline
from routerwatch.drift.verdict import Status

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
P0 = 0.30
DAY, NIGHT = 1000, 110  # trials per minute at peak and at night (about 9x)
# A fleet's budget: one false surge page a month over 200 one-sided CUSUMs.
FLEET = SurgeConfig(arl0_minutes=arl0_for_budget(1, 200, 1))


def minutes(rng, start, count, volume, rate):
    """``count`` minutes from ``start``: Poisson(``volume``) trials, iid Binomial(n, ``rate``) escalations."""
    n = rng.poisson(volume, count)
    x = rng.binomial(n, rate)
    return [MinuteCount(start + i * MIN, int(x[i]), int(n[i])) for i in range(count)]


def day_baseline(rng):
    baseline = learn_baseline(minutes(rng, T0, 1440, DAY, P0), labels={"router": "r", "tier": "small"})
    assert baseline.volume == pytest.approx(DAY, rel=0.01)
    return baseline


def test_threshold_does_not_collapse_at_high_baseline_volume():
    baseline = day_baseline(np.random.default_rng(151))
    v = detect_surge(baseline, [], now=baseline.window_end, config=FLEET)
    assert v.status is Status.OK
    # Volume-free threshold: log(ARL0) (Ville's inequality), not the 1e-6 floor.
    assert v.threshold == pytest.approx(math.log(FLEET.arl0_minutes), rel=1e-9) and v.threshold > 15
    # The same threshold whatever the baseline's volume.
    night = learn_baseline(minutes(np.random.default_rng(152), T0, 1440, NIGHT, P0))
    assert detect_surge(night, [], now=night.window_end, config=FLEET).threshold == v.threshold


def test_a_month_of_night_and_diurnal_volume_does_not_page():
    rng = np.random.default_rng(153)
    baseline = day_baseline(rng)
    start = baseline.window_end
    month = 30 * 1440
    # 30 nights' worth of minutes at the night volume, then 30 diurnal days (110 .. 1,000 a minute).
    night = minutes(rng, start, month, NIGHT, P0)
    v = detect_surge(baseline, night, now=start + month * MIN, config=FLEET)
    assert v.extra["alarms_in_call"] == [], len(v.extra["alarms_in_call"])
    hour = (np.arange(month) // 60) % 24
    volume = NIGHT + (DAY - NIGHT) * 0.5 * (1 - np.cos(2 * np.pi * hour / 24))
    n = rng.poisson(volume)
    x = rng.binomial(n, P0)
    second = start + month * MIN
    diurnal = [MinuteCount(second + i * MIN, int(x[i]), int(n[i])) for i in range(month)]
    v = detect_surge(baseline, diurnal, now=second + month * MIN, config=FLEET)
    assert v.extra["alarms_in_call"] == [], len(v.extra["alarms_in_call"])


def test_broken_verifier_still_pages_within_five_minutes_at_day_and_night_volume():
    rng = np.random.default_rng(154)
    baseline = day_baseline(rng)
    for volume in (DAY, NIGHT, 10):
        start = baseline.window_end
        quiet = minutes(rng, start, 240, volume, P0)
        onset = start + 240 * MIN
        broken = minutes(rng, onset, 10, volume, 0.90)  # the verifier rejects almost everything
        for after in range(1, 6):
            v = detect_surge(baseline, quiet + broken, now=onset + after * MIN, config=FLEET)
            if v.firing:
                break
        assert v.firing, volume
        delay = after
        assert delay <= (1 if volume >= NIGHT else 5), (volume, delay)
        assert v.change_start is not None and abs((v.change_start - onset) / MIN) <= 1
