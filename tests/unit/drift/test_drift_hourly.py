"""The CUSUM over standardised hourly residuals (``routerwatch.drift.hourly``) and its place in ``detect_rate_drift``.

On a series whose rate wobbles from clock hour to clock hour (``expit(logit p + b_h)``,
``b_h ~ N(0, tau^2)``) each complete hour is one observation
``z_h = (X_h - N_h p0) / sqrt(N_h p0 q0 + (N_h p0 q0 tau)^2)``, and a Gaussian CUSUM on ``z_h`` finds
a slow +3-point drift in hours where the minute tolerance CUSUM needs days. With
``DriftConfig(overdispersion=True, hourly=True)`` and a positive hour sd the two CUSUMs share each
side's budget (2 x arl0 each) and either pages.

Pieces tested by hand (Siegmund's ARL against a Monte Carlo, the design, the hour roll-up, the
fold with latch and tenant hold, the union of firing spans) and end to end on simulated wobbly
traffic: seeded numpy draws, baselines learned from a simulated week, measured figures in comments.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from statistics import median
from types import SimpleNamespace

import numpy as np
import pytest

from driftkit import frozen_baseline
from routerwatch.drift import Baseline, MinuteCount, learn_baseline
from routerwatch.drift.cusum_design import arl0_for_budget
from routerwatch.drift.rate_drift import DriftConfig, alarm_spans, detect_rate_drift, firing_onsets
from routerwatch.drift.hourly import (
    HourlyDesign,
    hour_sd,
    hourly_counts,
    plan_hourly,
    run_hourly,
    siegmund_arl,
    siegmund_threshold,
)

T0 = datetime(2026, 5, 4, tzinfo=UTC)  # a Monday, 00:00: the baselines below end here
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MONTH = 43_200  # minutes in a 30-day month


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def expit(x):
    return 1 / (1 + np.exp(-x))


def rows(start: datetime, x: np.ndarray, n: np.ndarray) -> list[MinuteCount]:
    return [MinuteCount(start + i * MIN, int(a), int(b)) for i, (a, b) in enumerate(zip(x.tolist(), n.tolist()))]


def wobbly(rng: np.random.Generator, start: datetime, hours: int, *, p: float, tau: float, volume: float,
           shift_from: int | None = None, shift: float = 0.0) -> list[MinuteCount]:
    """``hours`` clock hours from ``start``: Poisson(volume) trials a minute, the rate of hour ``i``
    ``expit(logit(p') + b_i)`` with ``b_i ~ N(0, tau^2)`` and ``p' = p + shift`` from hour ``shift_from`` on."""
    b = tau * rng.standard_normal(hours)
    centre = np.full(hours, logit(p))
    if shift_from is not None:
        centre[shift_from:] = logit(p + shift)
    rate = expit(centre + b)
    n = rng.poisson(volume, hours * 60)
    x = rng.binomial(n, np.repeat(rate, 60))
    return rows(start, x, n)


def learned_week(rng: np.random.Generator, *, p: float, tau: float, volume: float) -> Baseline:
    """A baseline learned (``learn_baseline``) from a simulated in-control week ending at ``T0``."""
    start = T0 - 7 * DAY
    b = learn_baseline(wobbly(rng, start, 7 * 24, p=p, tau=tau, volume=volume), start=start, end=T0)
    assert b is not None
    return b


def make_baseline(p0: float, volume: float, hour_sd: float | None, days: int = 7) -> Baseline:
    """A frozen baseline ending at ``T0``: ``days`` of ``volume`` trials a minute at rate ``p0``."""
    return frozen_baseline(p0, volume, hour_sd, end=T0, days=days,
                           labels={"router": "r", "tier": "t", "category": "c"}, tag="test-hourly")


# --- Siegmund's approximation ----------------------------------------------------------------------


def monte_carlo_arl(k: float, h: float, runs: int, seed: int) -> float:
    """Mean run length of ``S = max(0, S + z - k)``, ``z ~ N(0, 1)``, from 0 to the first ``S >= h``."""
    rng = np.random.default_rng(seed)
    s = np.zeros(runs)
    length = np.zeros(runs)
    alive = np.ones(runs, dtype=bool)
    t = 0
    while alive.any():
        block = rng.standard_normal((256, runs))
        for z in block:
            t += 1
            s = np.maximum(0.0, s + z - k)
            hit = alive & (s >= h)
            length[hit] = t
            alive &= ~hit
            if not alive.any():
                break
    return float(length.mean())


# Measured (3,000 runs): k=0.5, h=4 -> 339.9 (seed 7; seeds 1-3 gave 330, 340, 329) against
# Siegmund's 338.1 (the textbook value is ~336); k=0.25, h=5 -> 143.5 (seed 8; seeds 1-3 gave 145,
# 143, 142) against 141.9. The standard error of a
# 3,000-run mean is ~1.8 % of it, so 15 % is far outside the noise and catches a wrong formula or a
# dropped overshoot correction (without the 1.166, k=0.5, h=4 gives ARL 99).
@pytest.mark.parametrize(("k", "h", "seed"), [(0.5, 4.0, 7), (0.25, 5.0, 8)])
def test_siegmund_arl_matches_a_monte_carlo_of_the_gaussian_cusum(k, h, seed):
    approx = siegmund_arl(k, h)
    simulated = monte_carlo_arl(k, h, runs=3000, seed=seed)
    assert simulated == pytest.approx(approx, rel=0.15)


def test_siegmund_arl_closed_form_and_the_k_zero_limit():
    b = 4.0 + 1.166
    assert siegmund_arl(0.5, 4.0) == pytest.approx((math.exp(b) - b - 1) / 0.5, rel=1e-12)
    assert siegmund_arl(0.0, 4.0) == pytest.approx(b * b)
    # Continuous at k -> 0 (the k = 0 branch is the limit of the general formula).
    assert siegmund_arl(1e-4, 4.0) == pytest.approx(b * b, rel=1e-3)


@pytest.mark.parametrize("k", [0.05, 0.3, 0.6, 1.2])
def test_siegmund_threshold_inverts_siegmund_arl_and_grows_with_the_arl(k):
    previous = 0.0
    for arl in (50.0, 1e3, 1e5, 2e5):
        h = siegmund_threshold(k, arl)
        assert siegmund_arl(k, h) == pytest.approx(arl, rel=1e-6)
        assert siegmund_arl(k, h * 0.999) < arl <= siegmund_arl(k, h)
        assert h > previous
        previous = h
    assert siegmund_threshold(k, 10.0) < siegmund_threshold(k, 20.0)


# --- the design -------------------------------------------------------------------------------------


def test_hour_sd_is_binomial_noise_plus_the_hours_wobble():
    # 9,000 trials at 30 %: binomial variance 9000 * 0.21 = 1,890; wobble (1,890 * 0.1)^2 = 35,721.
    assert hour_sd(9000, 0.3, 0.1) == pytest.approx(math.sqrt(1890 + 35721), rel=1e-12)
    assert hour_sd(9000, 0.3, 0.0) == pytest.approx(math.sqrt(1890), rel=1e-12)
    assert hour_sd(1600, 0.2, 0.046875) == pytest.approx(20.0, rel=1e-12)  # 256 + 144
    # The wobble term grows with the square of the volume: at 10x the trials the sd is ~10x, not ~3x.
    assert hour_sd(90_000, 0.3, 0.1) == pytest.approx(math.sqrt(18_900 + 1890**2), rel=1e-12)
    assert hour_sd(90_000, 0.3, 0.1) / hour_sd(9000, 0.3, 0.1) == pytest.approx(9.77, abs=0.01)


def test_plan_hourly_k_is_half_the_standardised_shift_and_h_is_sized_one_standard_error_off():
    arl0 = 2 * arl0_for_budget(1.0, series=66, sides=2)
    d = plan_hourly(0.3, 150.0, 0.1, direction="up", arl0_minutes=arl0, delta=0.03, baseline_hours=168)
    assert isinstance(d, HourlyDesign)
    n = 60 * 150.0
    sd = math.sqrt(n * 0.21 + (n * 0.21 * 0.1) ** 2)  # 193.9
    assert d.k == pytest.approx(n * 0.03 / sd / 2, rel=1e-12)  # 0.696
    assert d.k == pytest.approx(0.696, abs=1e-3)
    k_design = d.k - 1 / math.sqrt(168)
    assert d.h == pytest.approx(siegmund_threshold(k_design, arl0 / 60), rel=1e-9)
    assert siegmund_arl(k_design, d.h) == pytest.approx(arl0 / 60, rel=1e-6)
    # Designed one standard error off, the threshold is higher than Page's design at k itself.
    assert d.h > siegmund_threshold(d.k, arl0 / 60)
    assert (d.direction, d.p0, d.tau, d.arl0_hours, d.design_hour_trials) == ("up", 0.3, 0.1, arl0 / 60, n)
    # A longer baseline knows p0 better: a lower threshold; one hour of it: the floor k - 1 >= 0.05.
    longer = plan_hourly(0.3, 150.0, 0.1, direction="up", arl0_minutes=arl0, delta=0.03, baseline_hours=10_000)
    assert longer is not None and longer.h < d.h
    one = plan_hourly(0.3, 150.0, 0.1, direction="down", arl0_minutes=arl0, delta=0.03, baseline_hours=1)
    assert one is not None and one.h == pytest.approx(siegmund_threshold(0.05, arl0 / 60), rel=1e-9)
    assert one.direction == "down"
    zero_hours = plan_hourly(0.3, 150.0, 0.1, direction="up", arl0_minutes=arl0, delta=0.03, baseline_hours=0)
    assert zero_hours is not None and zero_hours.h == pytest.approx(one.h)
    # A bigger budget: a higher threshold, same k.
    bigger = plan_hourly(0.3, 150.0, 0.1, direction="up", arl0_minutes=10 * arl0, delta=0.03, baseline_hours=168)
    assert bigger is not None and bigger.k == d.k and bigger.h > d.h


@pytest.mark.parametrize(("p0", "volume", "arl0"), [
    (0.0, 150.0, 1e5), (1.0, 150.0, 1e5), (-0.1, 150.0, 1e5), (0.3, 0.0, 1e5), (0.3, -5.0, 1e5),
    (0.3, 150.0, 60.0), (0.3, 150.0, 10.0),
])
def test_plan_hourly_is_none_for_degenerate_inputs(p0, volume, arl0):
    assert plan_hourly(p0, volume, 0.1, direction="up", arl0_minutes=arl0, delta=0.03, baseline_hours=168) is None


# --- complete clock hours ---------------------------------------------------------------------------


def test_hourly_counts_sums_complete_clock_hours_before_now_only():
    t10 = T0 + 10 * HOUR
    data = [MinuteCount(t10 + i * MIN, i % 3, 5) for i in range(150)]  # 10:00-12:29
    data += [MinuteCount(t10 - 30 * MIN + i * MIN, 1, 2) for i in range(10)]  # 09:30-09:39: hour 9
    data.reverse()  # order does not matter
    now = t10 + 150 * MIN  # 12:30: hour 12 is partial
    out = hourly_counts(data, now)
    assert [h for h, _, _ in out] == [T0 + 9 * HOUR, t10, t10 + HOUR]
    assert out[0][1:] == (10, 20)
    assert out[1][1:] == (sum(i % 3 for i in range(60)), 300)  # 60
    assert out[2][1:] == (sum(i % 3 for i in range(60, 120)), 300)
    # At 12:00 sharp hour 11 is complete; rows at or after now never count.
    at_noon = hourly_counts(data, t10 + 2 * HOUR)
    assert [h for h, _, _ in at_noon] == [T0 + 9 * HOUR, t10, t10 + HOUR]
    at_1159 = hourly_counts(data, t10 + 2 * HOUR - MIN)
    assert [h for h, _, _ in at_1159] == [T0 + 9 * HOUR, t10]
    # A row at now is excluded even when its hour would be complete by then.
    late = hourly_counts([MinuteCount(t10, 3, 4), MinuteCount(t10 + HOUR, 7, 9)], t10 + HOUR)
    assert late == [(t10, 3, 4)]
    assert hourly_counts([], now) == []


# --- the fold: statistic, latch, hold -----------------------------------------------------------------

# p0 = 0.2, tau = 0.046875 and 1,600 trials an hour: hour sd sqrt(256 + 144) = 20, so x = 320 + 20 z.
HAND = HourlyDesign(direction="up", p0=0.2, tau=0.046875, k=0.5, h=3.9, arl0_hours=100.0, design_hour_trials=1600)
# k = 0.5, h = 3.9: cap 1.25 h = 4.875, clear 0.5 h = 1.95.
HAND_Z = [1.5, 2.5, -3.5, 2.0, 3.0, 4.5, 0.5, -1.5, -0.5, 3.0, 2.0]
HAND_S = [1.0, 3.0, 0.0, 1.5, 4.0, 4.875, 4.875, 2.875, 0.0, 2.5, 4.0]
#          run     reset run  ALARM cap    cap    latched CLEAR run  ALARM


def hand_hours(zs, sign: float = 1.0, start: datetime = T0):
    return [(start + i * HOUR, round(320 + sign * 20 * z), 1600) for i, z in enumerate(zs)]


def test_run_hourly_statistic_latch_cap_and_clear_by_hand():
    hours = hand_hours(HAND_Z)
    path = [run_hourly(HAND, hours[: i + 1]).s for i in range(len(hours))]
    assert path == pytest.approx(HAND_S, abs=1e-9)
    tr = run_hourly(HAND, hours)
    # First alarm: the hour 04:00-05:00 crossed (S = 4.0 >= 3.9); the excursion began at 03:00.
    # While latched S is capped at 4.875 (it would be 8.0 after z = 4.5); z = 0.5 keeps it there,
    # z = -1.5 and -0.5 bring it to 1.875 <= 1.95: cleared at the end of hour 8, restarted from 0.
    assert [(a, c) for a, c, _ in tr.alarms] == [(T0 + 5 * HOUR, T0 + 3 * HOUR), (T0 + 11 * HOUR, T0 + 9 * HOUR)]
    assert [s for _, _, s in tr.alarms] == pytest.approx([4.0, 4.0])
    assert tr.cleared == (T0 + 9 * HOUR,)
    assert tr.alarm_at == T0 + 11 * HOUR and tr.change_start == T0 + 9 * HOUR
    assert tr.run_start == T0 + 9 * HOUR
    assert tr.last_hour == T0 + 10 * HOUR
    assert tr.held == ()
    # Without the cap (cap_factor huge) the same hours keep it latched: 8.0 - 1.5 ... never <= 1.95.
    uncapped = run_hourly(HAND, hours, cap_factor=100.0)
    assert uncapped.cleared == () and len(uncapped.alarms) == 1
    # The statistic equals the hand CUSUM on z computed from the counts.
    s = 0.0
    for _, x, n in hours[:4]:
        s = max(0.0, s + (x - n * 0.2) / math.sqrt(n * 0.16 + (n * 0.16 * 0.046875) ** 2) - 0.5)
    assert run_hourly(HAND, hours[:4]).s == pytest.approx(s, abs=1e-12)
    assert s == pytest.approx(1.5)


def test_run_hourly_skips_empty_hours_and_standardises_by_each_hours_volume():
    # An empty hour neither moves S nor resets the run; a 100-trial hour at z = 2 counts as z = 2.
    n = 100
    sd = math.sqrt(n * 0.16 + (n * 0.16 * 0.046875) ** 2)
    hours = [(T0, 350, 1600), (T0 + HOUR, 0, 0), (T0 + 2 * HOUR, 0, 0)]  # z = 1.5 then two empty hours
    tr = run_hourly(HAND, hours)
    assert tr.s == pytest.approx(1.0) and tr.run_start == T0 and tr.last_hour == T0 + 2 * HOUR
    x = 20 + 2 * sd  # not an integer count, but the fold takes any number
    assert run_hourly(HAND, [(T0, x, n)]).s == pytest.approx(1.5)


def test_down_direction_folds_minus_z():
    down = HourlyDesign(direction="down", p0=0.2, tau=0.046875, k=0.5, h=3.9, arl0_hours=100.0,
                        design_hour_trials=1600)
    mirrored = hand_hours(HAND_Z, sign=-1.0)
    tr = run_hourly(down, mirrored)
    up = run_hourly(HAND, hand_hours(HAND_Z))
    assert [run_hourly(down, mirrored[: i + 1]).s for i in range(len(mirrored))] == pytest.approx(HAND_S, abs=1e-9)
    assert (tr.alarms, tr.cleared, tr.alarm_at) == (up.alarms, up.cleared, up.alarm_at)
    # The upward side sees those falling hours as nothing.
    assert run_hourly(HAND, mirrored).alarms == ()
    assert run_hourly(down, hand_hours(HAND_Z)).alarms == ()


def test_a_hold_keeps_the_crossing_from_paging_and_restarts_the_statistic():
    hours = hand_hours([2.0, 3.0, 4.5, 0.6])  # S: 1.5, 4.0 (crossing), then 4.0 again from zero
    calls = []
    held = SimpleNamespace(provisional=False, tag="batch")

    def hold(since, at, second_look, run_per_trial=None):
        calls.append((since, at, second_look))
        return held if len(calls) == 1 else None

    tr = run_hourly(HAND, hours, hold=hold)
    # First crossing (end of hour 1) held: asked with the excursion's start and the hour's last minute.
    assert calls[0] == (T0, T0 + 2 * HOUR - MIN, False)
    assert tr.held == (held,)
    # S restarted from 0: hour 2 (z = 4.5) alone gives 4.0 >= 3.9, asked again (a fresh excursion).
    assert calls[1] == (T0 + 2 * HOUR, T0 + 3 * HOUR - MIN, False)
    assert [(a, c) for a, c, _ in tr.alarms] == [(T0 + 3 * HOUR, T0 + 2 * HOUR)]
    assert tr.alarm_at == T0 + 3 * HOUR
    # A hold for every crossing: never an alarm, S back at 0 after each hold.
    always = run_hourly(HAND, hours, hold=lambda since, at, second, per_trial=None: held)
    assert always.alarms == () and always.alarm_at is None and len(always.held) == 2
    assert always.s == pytest.approx(0.1)  # hour 3 (z = 0.6) after the second reset
    # Without the hold the first crossing pages.
    plain = run_hourly(HAND, hours)
    assert plain.alarms[0][0] == T0 + 2 * HOUR and plain.held == ()


def test_a_provisional_hold_gives_a_second_look_within_the_same_excursion():
    hours = hand_hours([4.5, 4.5, 4.5])  # 4.0 at each hour from zero
    calls = []

    def hold(since, at, second_look, run_per_trial=None):
        calls.append(second_look)
        return SimpleNamespace(provisional=True) if not second_look else None

    tr = run_hourly(HAND, hours, hold=hold)
    assert calls == [False, True]
    assert len(tr.held) == 1 and tr.alarm_at == T0 + 2 * HOUR


# --- the union of firing spans --------------------------------------------------------------------


def t(h: float) -> datetime:
    return T0 + h * HOUR


@pytest.mark.parametrize(("groups", "onsets"), [
    ([[], []], []),
    ([[(t(1), t(2))], [(t(3), t(4))]], [t(1), t(3)]),  # disjoint: two pages
    ([[(t(1), t(3))], [(t(2), t(5))]], [t(1)]),  # overlapping: one page
    ([[(t(1), t(3))], [(t(2), t(5)), (t(4), t(6))]], [t(1)]),  # a chain of overlaps
    ([[(t(1), t(10))], [(t(2), t(3)), (t(4), t(5))]], [t(1)]),  # nested in a long span
    ([[(t(1), t(10)), (t(11), None)], [(t(2), t(3))]], [t(1), t(11)]),  # nested, then an open one
    ([[(t(1), None)], [(t(2), t(3)), (t(5), None)]], [t(1)]),  # open-ended swallows all later ones
    ([[(t(1), t(2))], [(t(3), None)], [(t(4), t(5)), (t(9), None)]], [t(1), t(3)]),
    ([[(t(5), t(6)), (t(1), t(2))], [(t(3), t(4))]], [t(1), t(3), t(5)]),  # unsorted input
    ([[(t(1), t(3))], [(t(1), t(2))], [(t(2.5), t(4))]], [t(1)]),  # same onset, the longer span counts
    ([[(t(1), t(2))], [(t(2), t(3))]], [t(1)]),  # back to back: one CUSUM clears as the other fires, one page
])
def test_firing_onsets(groups, onsets):
    assert firing_onsets(*groups) == onsets


def test_firing_onsets_same_onset_one_open_one_cleared():
    assert firing_onsets([(t(1), None)], [(t(1), t(2))]) == [t(1)]
    assert firing_onsets([(t(1), t(2))], [(t(1), None)], [(t(5), t(6))]) == [t(1)]  # the open one swallows


def test_spans_pair_each_alarm_with_the_next_clear():
    assert alarm_spans([t(1), t(5)], [t(3)]) == [(t(1), t(3)), (t(5), None)]
    assert alarm_spans([t(5), t(1)], [t(7), t(3)]) == [(t(1), t(3)), (t(5), t(7))]
    assert alarm_spans([t(5)], [t(3)]) == [(t(5), None)]  # a clear of an earlier page is not this one's
    assert alarm_spans([], [t(3)]) == []


# --- detect_rate_drift: when the hourly CUSUM runs ---------------------------------------------------


def quiet_hours(hours: int, *, p: float = 0.3, volume: int = 150, seed: int = 0) -> list[MinuteCount]:
    rng = np.random.default_rng(seed)
    n = np.full(hours * 60, volume)
    return rows(T0, rng.binomial(n, p), n)


@pytest.mark.parametrize(("hour_sd_value", "prior", "overdispersion", "hourly"), [
    (0.0, 0.1, True, True),  # the baseline measured no wobble: iid design
    (None, 0.0, True, True),  # no estimate and a prior of 0
    (0.004, 0.1, True, True),  # quantised to 0
    (0.1, 0.1, False, True),  # overdispersion off: iid design whatever the baseline says
    (0.1, 0.1, True, False),  # the hourly CUSUM switched off
])
def test_no_hourly_cusum_without_a_positive_hour_sd_or_when_switched_off(hour_sd_value, prior, overdispersion, hourly):
    arl0 = 1e5
    baseline = make_baseline(0.3, 150.0, hour_sd_value)
    config = DriftConfig(arl0_minutes=arl0, overdispersion=overdispersion, hourly=hourly, hour_sd_prior=prior)
    for v in detect_rate_drift(baseline, quiet_hours(3), now=T0 + 3 * HOUR, config=config):
        assert "hourly" not in v.extra
        assert v.extra["arl0_target"] == pytest.approx(arl0)  # the minute CUSUM keeps the whole budget
        assert "over hours" not in v.summary and "Hourly CUSUM" not in v.description


@pytest.mark.parametrize(("hour_sd_value", "prior"), [(0.1, 0.0), (None, 0.1)])
def test_a_wobbly_series_gets_both_cusums_at_twice_the_arl_each(hour_sd_value, prior):
    arl0 = 1e5
    baseline = make_baseline(0.3, 150.0, hour_sd_value)
    config = DriftConfig(arl0_minutes=arl0, overdispersion=True, hour_sd_prior=prior)
    verdicts = detect_rate_drift(baseline, quiet_hours(3), now=T0 + 3 * HOUR, config=config)
    assert [v.labels["direction"] for v in verdicts] == ["up", "down"]
    expected = plan_hourly(0.3, 150.0, 0.1, direction="up", arl0_minutes=2 * arl0, delta=0.03, baseline_hours=168)
    for v in verdicts:
        hourly = v.extra["hourly"]
        assert v.extra["arl0_target"] == pytest.approx(2 * arl0)
        assert hourly["arl0_hours"] == pytest.approx(2 * arl0 / 60)
        assert hourly["k"] == pytest.approx(expected.k) and hourly["h"] == pytest.approx(expected.h)
        assert hourly["last_hour"] == (T0 + 2 * HOUR).isoformat()
        assert hourly["alarm_at"] is None and not v.firing
        assert "Hourly CUSUM over standardised hourly residuals" in v.description


def test_a_ten_point_jump_pages_once_though_both_cusums_cross():
    # +10 points at 14:00 on a calm series: the minute CUSUM pages first (measured 15:12); the hourly
    # CUSUM (z ~ 4.6 an hour against k ~ 0.7, h ~ 8.4) crosses at the end of the third hour (17:00),
    # while the minute page is up: one onset in the call.
    baseline = make_baseline(0.3, 150.0, 0.1)
    rng = np.random.default_rng(5)
    n = np.full(18 * 60, 150)
    rate = np.where(np.arange(18 * 60) < 14 * 60, 0.3, 0.4)
    counts = rows(T0, rng.binomial(n, rate), n)
    now = T0 + 18 * HOUR
    v = detect_rate_drift(baseline, counts, now=now,
                          config=DriftConfig(arl0_minutes=arl0_for_budget(1.0, 66, 2), overdispersion=True,
                                             directions=("up",)))[0]
    assert v.firing and v.extra["hourly"]["alarm_at"] is not None
    minute_alarm = datetime.fromisoformat(v.extra["alarm_at"])
    hourly_alarm = datetime.fromisoformat(v.extra["hourly"]["alarm_at"])
    assert T0 + 14 * HOUR <= minute_alarm < T0 + 16 * HOUR
    assert minute_alarm < hourly_alarm <= now
    assert v.extra["alarms_in_call"] == [minute_alarm.isoformat()]
    assert "over hours" not in v.summary  # the minute CUSUM's page speaks


# --- end to end: a slow drift on wobbly traffic ----------------------------------------------------

P, TAU, VOLUME = 0.3, 0.12, 150.0
FLEET_ARL0 = arl0_for_budget(1.0, series=66, sides=2)  # 5.7 million minutes per one-sided CUSUM
CHANGE_HOUR = 6
CHANGE = T0 + CHANGE_HOUR * HOUR
WATCH = 48  # hours watched after the change
DETECT_SEEDS = range(8)
FIGURES: dict[str, object] = {}


def _delay_hours(v) -> float:
    """Hours from the change to the first page onset after it (inf if none)."""
    onsets = [datetime.fromisoformat(a) for a in v.extra["alarms_in_call"]]
    after = [a for a in onsets if a >= CHANGE]
    return (after[0] - CHANGE) / HOUR if after else math.inf


@pytest.fixture(scope="module")
def drift_runs():
    runs = []
    for seed in DETECT_SEEDS:
        rng = np.random.default_rng(seed)
        baseline = learned_week(rng, p=P, tau=TAU, volume=VOLUME)
        counts = wobbly(rng, T0, CHANGE_HOUR + WATCH, p=P, tau=TAU, volume=VOLUME, shift_from=CHANGE_HOUR,
                        shift=0.03)
        now = CHANGE + WATCH * HOUR
        both, minute_only = (
            detect_rate_drift(baseline, counts, now=now, config=DriftConfig(
                arl0_minutes=FLEET_ARL0, overdispersion=True, hourly=hourly, directions=("up",)))[0]
            for hourly in (True, False)
        )
        runs.append((seed, baseline, both, minute_only))
    return runs


# Measured (this test: seeds 0-7, p 0.3, 150 trials/min, logit sd 0.12, baselines learned from a
# simulated week, fleet budget 5.7e6 minutes per one-sided CUSUM, +3 points from hour 6, 48 hours
# watched):
#   with the hourly CUSUM: paged in 8 of 8, after 21, 5, 21, 19, 19, 10, 21, 5 h (median 19 h);
#   the minute tolerance CUSUM alone (hourly=False): 1 of 8 within the 48 h (3.9 h, seed 7).
# Exploratory runs with 5 days watched (same settings, 16 seeds): the hourly CUSUM paged all 16
# within 25 h (median 18 h); the minute CUSUM alone 6 within 48 h, 4 more by day 5, 6 not at all.
# At logit sd 0.1 (10 seeds): 8-20 h against 6 of 10 within 48 h; at 0.15: 10 of 10 within 36 h
# against 1 of 10. The bounds below leave room for a seed or two either way.
def test_a_slow_three_point_drift_is_paged_within_two_days_with_the_hourly_cusum(drift_runs):
    with_hourly = [_delay_hours(both) for _, _, both, _ in drift_runs]
    alone = [_delay_hours(minute) for _, _, _, minute in drift_runs]
    FIGURES["delay_with_hourly_h"] = with_hourly
    FIGURES["delay_minute_only_h"] = alone
    paged = [both.firing and both.extra["hourly"]["alarm_at"] is not None and d <= WATCH
             for (_, _, both, _), d in zip(drift_runs, with_hourly)]
    assert sum(paged) >= 7, FIGURES
    assert sum(d <= WATCH for d in alone) <= 4, FIGURES
    assert median(with_hourly) <= 30, FIGURES
    assert median(with_hourly) < median(alone), FIGURES
    for _, _, both, _ in drift_runs:
        # Nothing paged in the 6 quiet hours before the change, and the hourly page's change start is
        # no later than its alarm.
        assert all(datetime.fromisoformat(a) >= CHANGE for a in both.extra["alarms_in_call"])
        hourly = both.extra["hourly"]
        if hourly["alarm_at"] is not None:
            assert hourly["change_start"] is not None and hourly["change_start"] < hourly["alarm_at"]
            assert datetime.fromisoformat(hourly["alarm_at"]).minute == 0  # an hour's end
            assert hourly["s"] <= 1.25 * hourly["h"] + 1e-9  # latched: capped


def test_a_page_by_the_hourly_cusum_alone_says_so(drift_runs):
    # The combined verdict fires while its own minute CUSUM (state) is not latched.
    hourly_only = [(b, both) for _, b, both, _ in drift_runs
                   if both.firing and both.state["alarm_at"] is None]
    assert hourly_only, "expected at least one run paged by the hourly CUSUM only"
    for baseline, v in hourly_only:
        hourly = v.extra["hourly"]
        assert v.summary.startswith("escalation rate rose to ") and " over hours " in v.summary
        assert f"from {v.baseline_value:.1%} over hours" in v.summary
        assert v.extra["alarm_at"] == hourly["alarm_at"]
        assert "hourly CUSUM" in v.description and "in-control 95% interval" in v.description
        assert f"h={hourly['h']:.2f}" in v.description
        assert v.statistic == pytest.approx(hourly["s"]) and v.threshold == pytest.approx(hourly["h"])
        assert v.change_start == datetime.fromisoformat(hourly["change_start"])
        assert v.observed_value is not None and v.observed_value > baseline.p0 + 0.01
        assert v.magnitude == pytest.approx(v.observed_value - v.baseline_value)
        assert v.extra["alarms_in_call"][0] == hourly["alarm_at"]


# --- end to end: the false-alarm budget ------------------------------------------------------------

FA_ARL0 = 2e4  # minutes per false alarm per one-sided CUSUM, so that pages are countable
FA_SERIES, FA_DAYS = 16, 15  # 8 series-months
FA_BUDGET = MONTH / FA_ARL0  # 2.16 pages per month per side


# Measured (p 0.3, 150 trials/min, logit sd 0.12, each series' baseline learned from its own
# simulated week; pages = onsets in extra["alarms_in_call"], both CUSUMs' spans merged), pages per
# month per side against the designed 2.16:
#   this test (seeds 1000-1015, 15 days each, 8 series-months): up 1.50 (12), down 1.00 (8);
#   eight other 8-month blocks (seeds 0-15, 100-115, ..., 700-715): up 1.0-2.62 (mean 1.78), down
#   0.38-1.75 (mean 1.09);
#   80 series-months of 30 days (seeds 0-39 and 100-139): up 1.83, down 1.30 (blocks of 10 months:
#   up 1.3-3.2, down 1.0-1.6); the hourly CUSUM alone up 1.18, down 0.53 against its share 1.08.
# The upward side runs higher: the logit-normal wobble is right-skewed at p < 0.5 (with p0 and tau
# known exactly the hourly CUSUM alone gives up 0.69, down 0.42 a month), and a series whose learned
# p0 sits a standard error low pages several times, so the rate is heavy-tailed across series.
def test_quiet_wobbly_traffic_stays_within_the_page_budget():
    pages = {"up": 0, "down": 0}
    for seed in range(FA_SERIES):
        rng = np.random.default_rng(1000 + seed)
        baseline = learned_week(rng, p=P, tau=TAU, volume=VOLUME)
        counts = wobbly(rng, T0, FA_DAYS * 24, p=P, tau=TAU, volume=VOLUME)
        for v in detect_rate_drift(baseline, counts, now=T0 + FA_DAYS * DAY,
                                   config=DriftConfig(arl0_minutes=FA_ARL0, overdispersion=True)):
            assert v.extra["hourly"]["arl0_hours"] == pytest.approx(2 * FA_ARL0 / 60)
            pages[v.labels["direction"]] += len(v.extra["alarms_in_call"])
    months = FA_SERIES * FA_DAYS / 30
    per_month = {side: count / months for side, count in pages.items()}
    FIGURES["false_pages_per_month"] = per_month
    for side, rate in per_month.items():
        assert rate <= 1.5 * FA_BUDGET, (side, per_month)
    assert sum(pages.values()) > 0, per_month  # countable: the test would see a budget overrun


def teardown_module(module):
    for key, value in FIGURES.items():
        print(f"\nhourly {key}: {value}")
