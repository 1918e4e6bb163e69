"""Baselines that follow the clock: an hour-of-day profile of the rate, kept only where history supports it.

Some series escalate more at some hours than others for reasons that are
nobody's incident: the night's users are another population, a region wakes
up, a batch job runs every afternoon. A flat baseline treats that swing as
hour-to-hour wobble (and tolerates it, at the price of sensitivity) but the
swing is not independent from hour to hour: the afternoon is high every
afternoon, so a CUSUM over hourly residuals would sum it into a daily false
page. :func:`rate_profile` estimates the swing and keeps it only when the
history says it is real.

Model: the logit of clock hour ``h``'s rate is ``c + a_g(h) + b_h`` with ``g(h)``
its UTC hour of the day, ``a`` the profile (24 offsets, weighted mean 0) and
``b_h ~ N(0, tau^2)`` the wobble left. On the hours' empirical logits
``l_h`` (sampling variance ``v_h``):

1. ``a`` is a smooth daily curve, :data:`HARMONICS` pairs of daily harmonics
   (the seasonal regressors of ``surveillance``'s ``algo.glrnb``), fitted by
   weighted least squares (weights ``1 / (v_h + tau^2)``), ``tau^2`` the
   method-of-moments variance of what is left (sampling variance taken out),
   iterated;
2. the profile is real when the harmonics' Wald statistic ``Q`` exceeds the
   chi-square 99.9 % quantile on ``2 * HARMONICS`` degrees of freedom: one
   flat week in a thousand gets a profile;
3. a kept profile is shrunk towards flat by the positive-part James-Stein
   factor ``1 - (df - 2) / Q``; its offsets are relative to the baseline's
   ``p0`` (see :func:`rate_profile`).

A week gives each hour of the day seven observations, enough for a smooth
profile of the day but not of the week: an hour-of-week profile needs months of history,
and the baseline window is a week. The volume's shape needs no profile: the
minute-level CUSUMs cap a minute's evidence at the design volume, the surge
threshold holds at any volume and the hourly residuals are standardised hour by
hour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from routerwatch.drift.robust import HourCount

HOURS_OF_DAY = 24

#: A profile is kept when its chi-square statistic passes this upper quantile (one flat week in 1,000).
QUANTILE_Z = 3.090232306167813  # the normal's 99.9 % point, for the Wilson-Hilferty chi-square quantile

#: Fewest usable hours (two days).
MIN_HOURS = 48

#: Daily harmonics in the curve: 2 (a day and a half-day period) follow a smooth daily swing with
#: 4 parameters instead of 24 free offsets, whose estimation error (a week gives each hour of the
#: day seven observations) repeats every day and which an hourly CUSUM would sum into pages.
HARMONICS = 2


@dataclass(frozen=True)
class RateProfile:
    """A kept hour-of-day profile: 24 logit offsets (UTC hour of the day), its statistic, the wobble left."""

    offsets: tuple[float, ...]
    statistic: float
    threshold: float
    tau: float


def chi2_quantile(df: int, z: float = QUANTILE_Z) -> float:
    """The chi-square quantile at normal point ``z`` on ``df`` degrees of freedom (Wilson-Hilferty)."""
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def _design(hours_of_day: Sequence[int]) -> list[list[float]]:
    """Rows ``[1, cos(2 pi j t / 24), sin(2 pi j t / 24) for j in 1..HARMONICS]`` at the middle of each hour."""
    rows = []
    for g in hours_of_day:
        t = 2 * math.pi * (g + 0.5) / HOURS_OF_DAY
        row = [1.0]
        for j in range(1, HARMONICS + 1):
            row += [math.cos(j * t), math.sin(j * t)]
        rows.append(row)
    return rows


def rate_profile(hours: Sequence[HourCount], *, min_trials: int = 30, p0: float | None = None) -> RateProfile | None:
    """The hour-of-day profile of ``hours`` (usable ones: ``min_trials`` trials or more), or None if flat.

    ``p0`` is the rate the offsets are relative to (the baseline's pooled rate):
    ``expit(logit p0 + offset_g)`` is then the fitted rate of hour ``g``. The
    pooled rate weighs the busy hours more than the curve's own level does (9x
    more trials at the peak), so the offsets must be taken from it, not from the
    curve's mean. Without ``p0`` the offsets are centred (mean 0).
    """
    import numpy as np

    usable = [h for h in hours if h.trials >= max(1, min_trials)]
    if len(usable) < MIN_HOURS:
        return None
    y = np.array([math.log((h.successes + 0.5) / (h.trials - h.successes + 0.5)) for h in usable])
    v = np.array([1.0 / (h.successes + 0.5) + 1.0 / (h.trials - h.successes + 0.5) for h in usable])
    x = np.array(_design([h.hour.hour for h in usable]))
    params = x.shape[1]
    tau2 = 0.0
    beta = np.zeros(params)
    cov = np.eye(params)
    for _ in range(4):
        w = 1.0 / (v + tau2)
        xtw = x.T * w
        try:
            cov = np.linalg.inv(xtw @ x)
        except np.linalg.LinAlgError:
            return None
        beta = cov @ (xtw @ y)
        resid = y - x @ beta
        # Wobble left around the curve: squared residuals less sampling variance (method of moments).
        tau2 = max(0.0, float((resid**2 - v).sum()) / (len(y) - params))
    harmonics = beta[1:]
    # Wald statistic of the harmonics (the curve's shape), chi-square on 2 * HARMONICS df when flat.
    try:
        q = float(harmonics @ np.linalg.solve(cov[1:, 1:], harmonics))
    except np.linalg.LinAlgError:
        return None
    df = params - 1
    threshold = chi2_quantile(df)
    if q <= threshold:
        return None
    shrink = max(0.0, 1.0 - (df - 2) / q)
    curve = np.array(_design(range(HOURS_OF_DAY)))[:, 1:] @ harmonics * shrink
    if p0 is not None and 0 < p0 < 1:
        curve += beta[0] - math.log(p0 / (1 - p0))
    else:
        curve -= curve.mean()
    return RateProfile(tuple(round(float(a), 5) for a in curve), q, threshold, math.sqrt(tau2))

