"""A CUSUM over standardised hourly residuals: the slow drift on a rate that wobbles from hour to hour.

On overdispersed traffic an hour of a series is one noisy observation of its
rate, however many trials it holds: with an hour-level random effect of logit
sd ``tau`` the hour's escalations ``X_h`` of ``N_h`` trials have variance about
``N_h p0 q0 + (N_h p0 q0 tau)^2`` around ``N_h p0`` (binomial noise plus the
hour's own wobble, delta method). A minute-level CUSUM that treats every trial
as independent evidence either pages on that wobble or, designed to tolerate it
(:mod:`routerwatch.drift.overdispersion`), needs days for a +3-point drift. This
detector judges what the information allows: each complete clock hour gives

    z_h = (X_h - N_h p0) / sqrt(N_h p0 q0 + (N_h p0 q0 tau)^2)

(N(0, 1) in control whatever the hour's volume, so the diurnal swing needs no
modelling), and a one-sided Gaussian CUSUM ``S = max(0, S + z_h - k)`` (the
downward side on ``-z_h``) pages at ``S >= h``. ``k`` is half the standardised
size of the shift ``delta`` at the baseline's mean volume (Page's optimum for
that shift); ``h`` gives the CUSUM its share of the false-alarm budget in hours
by Siegmund's approximation of the Gaussian CUSUM's ARL, sized as if the
baseline's ``p0`` were one standard error off against it (a week of hours
measures ``p0`` to about ``1/sqrt(H)`` of an hour's sd, and a CUSUM at 1e5 hours
is sensitive to that).

It runs beside the minute-level tolerance CUSUM, which keeps the fast shifts (a
+10-point jump in minutes, the broken verifier): each takes half of the series'
budget. It judges an hour once it is complete, so it adds up to an hour to a
delay that is several hours anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from routerwatch.drift.counts import MinuteCount
from routerwatch.drift.overdispersion import shift_logit
from routerwatch.drift.robust import clock_hours

HOUR = timedelta(hours=1)

#: Siegmund's correction of the threshold for the overshoot of a Gaussian CUSUM.
_OVERSHOOT = 1.166


def siegmund_arl(k: float, h: float) -> float:
    """In-control ARL (in steps) of a N(0, 1) CUSUM with reference ``k`` and threshold ``h`` (Siegmund 1985)."""
    b = h + _OVERSHOOT
    if abs(k) < 1e-9:
        return b * b
    if 2 * k * b > 700:
        return math.inf
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


def siegmund_threshold(k: float, arl: float) -> float:
    """The smallest ``h`` with :func:`siegmund_arl` at least ``arl``."""
    if not math.isfinite(arl):
        return math.inf
    lo, hi = 0.0, 1.0
    while siegmund_arl(k, hi) < arl:
        hi *= 2
        if hi > 1e4:
            return math.inf
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if siegmund_arl(k, mid) < arl else (lo, mid)
    return hi


def hour_sd(trials: float, p0: float, tau: float) -> float:
    """The sd of an hour's successes around ``trials * p0`` under binomial noise plus a logit wobble ``tau``."""
    pq = p0 * (1 - p0)
    return math.sqrt(trials * pq + (trials * pq * tau) ** 2)


@dataclass(frozen=True)
class HourlyDesign:
    """One side of the hourly CUSUM: reference ``k`` and threshold ``h`` (standardised units), ARL in hours."""

    direction: str
    p0: float
    tau: float
    k: float
    h: float
    arl0_hours: float
    design_hour_trials: float


def plan_hourly(
    p0: float, volume: float, tau: float, *, direction: str, arl0_minutes: float, delta: float, baseline_hours: int
) -> HourlyDesign | None:
    """The hourly CUSUM for a baseline ``p0`` at ``volume`` trials a minute and wobble ``tau``; None if degenerate."""
    if not (0 < p0 < 1) or volume <= 0 or arl0_minutes <= 60:
        return None
    n = 60.0 * volume
    shift = n * delta / hour_sd(n, p0, tau)
    k = shift / 2
    # Design as if the baseline were one standard error off against the CUSUM (module docstring).
    se = 1.0 / math.sqrt(max(1, baseline_hours))
    h = siegmund_threshold(max(0.05, k - se), arl0_minutes / 60.0)
    if not math.isfinite(h):
        return None
    return HourlyDesign(direction, p0, tau, k, h, arl0_minutes / 60.0, n)


@dataclass(frozen=True)
class HourlyTrace:
    """Where the hourly CUSUM stands after the last complete hour: statistic, latch, alarms, clears, holds."""

    s: float
    run_start: datetime | None
    alarm_at: datetime | None  # latched: the end of the hour that crossed h, until the statistic clears
    change_start: datetime | None
    alarms: tuple[tuple[datetime, datetime | None, float], ...]  # (hour end, change start, statistic)
    cleared: tuple[datetime, ...]
    held: tuple[Any, ...]
    last_hour: datetime | None


def hourly_counts(rows: Sequence[MinuteCount], now: datetime) -> list[tuple[datetime, int, int]]:
    """``(hour start, successes, trials)`` of every complete clock hour before ``now``, in order."""
    return [(h.hour, h.successes, h.trials) for h in clock_hours(r for r in rows if r.minute < now)
            if h.hour + HOUR <= now]


def run_hourly(
    design: HourlyDesign,
    hours: Sequence[tuple[datetime, int, int]],
    *,
    cap_factor: float = 1.25,
    clear_factor: float = 0.5,
    hold: Callable[..., Any] | None = None,
    profile: Sequence[float] | None = None,
) -> HourlyTrace:
    """Fold complete hours through one side, with the alarm latch and tenant hold of ``cusum.fold``.

    ``hold(change start, last minute of the hour, second_look, charge)`` is asked
    at a crossing, as in :func:`routerwatch.drift.cusum_run.fold` (``charge``: the
    run's expected successes per trial, signed by direction, what the tenant
    split charges each trial). ``profile`` (24 logit
    offsets by UTC hour of the day, a baseline's ``rate_profile``) moves the
    expected rate of each hour with the clock.
    """
    offsets = list(profile) if profile and any(profile) else None
    sign = 1.0 if design.direction == "up" else -1.0
    s, run_start, last = 0.0, None, None
    alarm_at: datetime | None = None
    change_start: datetime | None = None
    second_look = False
    alarms: list[tuple[datetime, datetime | None, float]] = []
    cleared: list[datetime] = []
    held: list[Any] = []
    cap, clear = cap_factor * design.h, clear_factor * design.h
    run_x0 = run_n = 0.0
    for hr, x, n in hours:
        last = hr
        if n <= 0:
            continue
        p0 = design.p0
        if offsets is not None:
            p0 = shift_logit(p0, offsets[hr.hour])
        z = (x - n * p0) / hour_sd(n, p0, design.tau)
        prev = s
        s = max(0.0, s + sign * z - design.k)
        if s <= 0:
            run_start = None
            if prev > 0:
                second_look = False
        elif prev <= 0 or run_start is None:
            run_start = hr
            run_x0 = run_n = 0.0
        if run_start is not None:
            run_x0, run_n = run_x0 + n * p0, run_n + n
        # The tenant split charges each trial the run's expected rate (clock profile included).
        run_p0 = sign * run_x0 / run_n if run_n else None
        end = hr + HOUR
        if alarm_at is None:
            if s >= design.h and hold is not None and (
                    why := hold(run_start or hr, end - timedelta(minutes=1), second_look, run_p0)) is not None:
                held.append(why)
                s, run_start = 0.0, None
                second_look = bool(getattr(why, "provisional", False))
            elif s >= design.h:
                alarm_at, change_start = end, run_start
                alarms.append((end, run_start, s))
                s = min(s, cap)
                second_look = False
        else:
            s = min(s, cap)
            if s <= clear:
                cleared.append(end)
                s, run_start, alarm_at, change_start = 0.0, None, None, None
    return HourlyTrace(s, run_start, alarm_at, change_start, tuple(alarms), tuple(cleared), tuple(held), last)
