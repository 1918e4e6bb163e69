"""Frozen, versioned baselines: what "normal" was for one series.

A detector compares the present with a :class:`Baseline` learned once from a
history window and then frozen: re-learning it from the recent past every
minute would let a slow drift become its own baseline and never alarm. The
scheduler learns baselines on a schedule (e.g. weekly, or by hand after an
accepted change), stores them as JSON and passes them to the detectors; a
benchmark learns them from the replayed history before the injected change.

``version`` is a content hash of the series key, window and counts, so the same
history always yields the same version and an alert can say exactly which
baseline it was judged against.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from routerwatch.drift.clock import rate_profile
from routerwatch.drift.counts import MINUTE, MinuteCount, check_counts, floor_minute, merge_by_minute
from routerwatch.drift.robust import clock_hours, incident_hours


class ExcludedStretch(BaseModel):
    """Clock hours ``[start, end)`` left out of a baseline: an incident inside its window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime
    end: datetime
    hours: int = Field(ge=1)
    statistic: float = Field(description="segment scan statistic |sum z| / sqrt(hours) (robust.incident_hours)")
    direction: str = Field(description="up: the rate stood above the rest; down: below")
    successes: int = Field(ge=0)
    trials: int = Field(ge=0)


class Baseline(BaseModel):
    """A frozen per-series rate baseline. JSON: ``model_dump(mode="json")`` / ``model_validate``.

    ``p0`` is the rate the detectors test against, ``volume`` the mean trials per
    minute over the series' observed history: from its first minute with a trial
    in the window to the window's end (``observed_minutes``; empty minutes after
    the first trial included). It sizes the CUSUM threshold and the
    minimum-volume guards, so it must be the series' real rate of traffic: a
    series that began three hours into a 168-hour window has not been quiet for
    the other 165 (it did not exist), and spreading its trials over the whole
    window (0.1 a minute for 100) froze a baseline below every volume floor.
    Baselines stored before ``observed_minutes`` existed have it None and
    their volume per minute of the whole window. ``dispersion`` is the Pearson
    chi-square per degree of freedom of the per-minute counts around ``p0``:
    about 1 for binomial noise; well above 1 means the rate wanders from minute
    to minute more than sampling explains (time-of-day effects, bursts of one
    tenant), so binomial false-alarm rates are optimistic for this series.

    ``hour_sd`` is the hour-level random effect on the logit scale: the
    standard deviation of a clock hour's log-odds around ``p0`` beyond binomial
    noise (:func:`hour_effect_sd`). At the minute scale the extra variance hardly
    shows (``dispersion`` 1.01-1.20 on production-like traffic) but hour-to-hour
    wobble of 0.05-0.2 is common, and a CUSUM designed for iid minutes pages on it
    thousands of times its budget. ``hour_sd_hours`` is the number of clock hours
    it was estimated from. Both are None when the window held fewer than
    :data:`MIN_SD_HOURS` usable hours (the detector then uses its configured
    prior, ``DriftConfig.hour_sd_prior``) and in baselines stored before the
    field existed (read the same way).

    ``excluded`` lists the incidents found inside the window and left out of
    ``p0``, ``observed_rate``, ``dispersion``, ``hour_sd``, ``successes`` and
    ``trials`` (stretches of clock hours
    whose rate stood apart from the rest, :mod:`routerwatch.drift.robust`), so a
    drift during the learning week does not become the new normal; ``volume``
    and ``active_minutes`` still count every trial (they describe the series'
    traffic, not its rate).

    ``rate_profile`` (24 logit offsets by UTC hour of the day) is set when the
    rate follows the clock by more than chance allows (:mod:`routerwatch.drift.clock`):
    the detectors then expect ``expit(logit p0 + offset)`` in each hour, and
    ``hour_sd`` is the wobble left around that profile.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: dict[str, str] = Field(default_factory=dict)
    p0: float = Field(gt=0, lt=1)
    observed_rate: float = Field(ge=0, le=1)
    successes: int = Field(ge=0)
    trials: int = Field(gt=0)
    volume: float = Field(gt=0)
    minutes: int = Field(gt=0, description="minutes in the window, empty ones included")
    observed_minutes: int | None = Field(
        default=None, gt=0,
        description="minutes from the series' first trial in the window to its end: what volume is per",
    )
    active_minutes: int = Field(ge=0, description="minutes with at least one trial")
    dispersion: float | None = None
    hour_sd: float | None = Field(
        default=None, ge=0,
        description="hour-level random-effect sd of the rate on the logit scale (method of moments); None: too few hours",
    )
    hour_sd_hours: int | None = Field(default=None, ge=0, description="clock hours hour_sd was estimated from")
    excluded: list[ExcludedStretch] = Field(
        default_factory=list, description="incidents inside the window left out of p0 and hour_sd")
    rate_profile: list[float] | None = Field(
        default=None, min_length=24, max_length=24,
        description="logit offsets of the rate by UTC hour of the day (routerwatch.drift.clock); None: flat",
    )
    rate_profile_statistic: float | None = Field(
        default=None, description="chi-square statistic that kept the profile (threshold: its 99.9 % quantile)")
    window_start: datetime
    window_end: datetime
    version: str


#: Fewest usable clock hours (each with :data:`MIN_HOUR_TRIALS` trials or more) from which
#: :func:`hour_effect_sd` estimates the hour-level variance; with fewer the baseline stores None and
#: the detector falls back to its prior. Six hours give a rough (+-50 %) but usable estimate of an
#: sd of 0.1 at 100 trials a minute; a week gives about +-10 %.
MIN_SD_HOURS = 6

#: Trials an hour must hold to count in the hour-level estimate (a nearly empty hour says nothing).
MIN_HOUR_TRIALS = 30


def hour_effect_sd(
    hours: Iterable[tuple[int, int]], *, min_hours: int = MIN_SD_HOURS, min_trials: int = MIN_HOUR_TRIALS
) -> tuple[float | None, int]:
    """``(sd, hours used)``: the hour-level random-effect sd on the logit scale, by the method of moments.

    Model: in clock hour ``h`` the rate is ``expit(logit(p) + b_h)`` with
    ``b_h ~ N(0, sd^2)`` and the hour's ``x_h`` of ``n_h`` trials binomial given it.
    On the rate scale the hour rates then vary by ``s^2 ~= (p(1-p) sd)^2`` (delta
    method) and the weighted between-hour statistic
    ``Q = sum n_h (x_h/n_h - pbar)^2 / (pbar (1-pbar))`` has expectation
    ``(H - 1) + s^2 (N - sum n_h^2 / N) / (pbar (1-pbar))`` (the DerSimonian-Laird
    moment identity), so ``s^2 = max(0, Q - (H-1)) pbar (1-pbar) / (N - sum n_h^2 / N)``:
    between-hour variance minus its binomial part, floored at 0; and
    ``sd = s / (pbar (1-pbar))``. Unbiased for ``s^2`` whatever the hours' volumes;
    a slow diurnal swing of the rate counts as wobble (conservative: the detector
    then tolerates it rather than pages on it). Hours with fewer than ``min_trials``
    trials are dropped; with fewer than ``min_hours`` left, or a pooled rate of 0
    or 1, the sd is None (too little to tell: the caller's prior applies).
    """
    used = [(x, n) for x, n in hours if n >= max(1, min_trials)]
    count = len(used)
    total = sum(n for _, n in used)
    if count < max(2, min_hours) or total <= 0:
        return None, count
    pbar = sum(x for x, _ in used) / total
    if not 0 < pbar < 1:
        return None, count
    pq = pbar * (1 - pbar)
    q = sum(n * (x / n - pbar) ** 2 for x, n in used) / pq
    denom = total - sum(n * n for _, n in used) / total
    if denom <= 0:
        return None, count
    s2 = max(0.0, q - (count - 1)) * pq / denom
    return math.sqrt(s2) / pq, count


def baseline_problem(baseline: Baseline) -> str | None:
    """Why ``baseline`` cannot be judged against, or None when it can.

    A validated :class:`Baseline` always passes; this catches objects that
    bypassed validation (``model_construct``, a hand-edited store row, a test
    double) so that a detector skips them by name instead of dividing by zero.
    """
    p0, trials, volume = baseline.p0, baseline.trials, baseline.volume
    if not (isinstance(p0, (int, float)) and 0 < p0 < 1):  # NaN fails the comparison too
        return f"baseline rate {p0} is degenerate (outside (0, 1))"
    if not (isinstance(trials, int) and trials > 0):
        return f"baseline has {trials} trials: degenerate (no rate was measured)"
    if not (isinstance(volume, (int, float)) and math.isfinite(volume) and volume > 0):
        return f"baseline volume {volume} trials/min is degenerate (not a positive number)"
    return None


def learn_baseline(
    history: Iterable[MinuteCount],
    *,
    labels: Mapping[str, str] | None = None,
    min_trials: int = 1000,
    min_minutes: int = 60,
    start: datetime | None = None,
    end: datetime | None = None,
    exclude_incidents: bool = True,
    follow_clock: bool = True,
) -> Baseline | None:
    """Learn a baseline from per-minute ``(successes, trials)`` counts, or None if there is too little.

    ``start``/``end`` bound the window (``[start, end)``); they default to the
    first minute seen and one minute past the last, but pass them when the
    history was read for a fixed window, since the rollups hold no rows for
    empty minutes and the volume must count those too. Counts outside the
    window are ignored.

    ``volume`` is per minute of observed history, from the first minute with a
    trial to the window's end (``observed_minutes``), not per minute of the whole
    window: the scheduler reads a fixed 168-hour window for a series that may
    have existed for three hours (a fresh deployment, a new category), and its
    volume is what it carries while it exists. Quiet minutes after the first
    trial still count, so a sparse or stopped series keeps a low volume.

    Returns None when the window holds fewer than ``min_trials`` trials or the
    observed history spans fewer than ``min_minutes`` minutes (so a first
    baseline rests on at least an hour of traffic, not on the first few minutes
    of a busy series): detectors given no baseline stay silent with status
    ``no_baseline`` rather than guess.

    ``hour_sd`` is the hour-level random-effect sd of the rate (:func:`hour_effect_sd`
    over the window's clock hours), None with fewer than :data:`MIN_SD_HOURS` usable
    hours. It is not part of ``version`` (a function of the same counts).

    ``p0`` is the Jeffreys estimate ``(successes + 1/2) / (trials + 1)``: equal to
    the observed rate for any real volume, but never exactly 0 or 1, so a
    failure mode never seen in the window still gets a finite likelihood ratio.

    With ``exclude_incidents`` (the default) stretches of clock hours whose rate
    stood apart from the rest of the window (:func:`~routerwatch.drift.robust.incident_hours`)
    are left out of ``p0``, ``successes``, ``trials`` and ``hour_sd`` and listed
    in ``excluded``. With ``follow_clock`` (the default) an hour-of-day profile
    of the rate is kept where the history supports it (``rate_profile``).
    """
    rows = merge_by_minute(history)
    check_counts(rows)
    if start is not None:
        rows = [r for r in rows if r.minute >= start]
    if end is not None:
        rows = [r for r in rows if r.minute < end]
    if not rows and (start is None or end is None):
        return None
    window_start = floor_minute(start) if start is not None else rows[0].minute
    window_end = floor_minute(end) if end is not None else rows[-1].minute + MINUTE
    minutes = int((window_end - window_start) / MINUTE)
    successes = sum(r.successes for r in rows)
    trials = sum(r.trials for r in rows)
    active = [r for r in rows if r.trials > 0]
    observed = int((window_end - active[0].minute) / MINUTE) if active else 0
    if trials < max(1, min_trials) or observed < max(1, min_minutes):
        return None
    excluded: list[ExcludedStretch] = []
    if exclude_incidents:
        for inc in incident_hours(clock_hours(active), min_trials=MIN_HOUR_TRIALS):
            inside = [r for r in active if inc.start <= r.minute < inc.end]
            excluded.append(ExcludedStretch(start=inc.start, end=inc.end, hours=inc.hours,
                                            statistic=round(inc.statistic, 3), direction=inc.direction,
                                            successes=sum(r.successes for r in inside),
                                            trials=sum(r.trials for r in inside)))
    all_trials, all_active = trials, active
    if excluded:
        def kept(r: MinuteCount) -> bool:
            return not any(e.start <= r.minute < e.end for e in excluded)

        active = [r for r in active if kept(r)]
        successes = sum(r.successes for r in active)
        trials = sum(r.trials for r in active)
    p0 = (successes + 0.5) / (trials + 1.0)
    dispersion = None
    if len(active) > 1:
        # Pearson chi-square of the minutes around the pooled rate, per degree of freedom.
        chi2 = sum((r.successes - r.trials * p0) ** 2 / (r.trials * p0 * (1 - p0)) for r in active)
        dispersion = chi2 / (len(active) - 1)
    hours = clock_hours(active)
    hour_sd, hour_sd_hours = hour_effect_sd((h.successes, h.trials) for h in hours)
    profile = rate_profile(hours, min_trials=MIN_HOUR_TRIALS, p0=p0) if follow_clock else None
    if profile is not None:
        hour_sd = profile.tau  # the wobble left around the clock's swing
    label_map = dict(labels or {})
    digest = hashlib.sha256(
        json.dumps(
            {
                "labels": sorted(label_map.items()),
                "start": window_start.isoformat(),
                "end": window_end.isoformat(),
                "counts": [(r.minute.isoformat(), r.successes, r.trials) for r in all_active],
                **({"excluded": [(e.start.isoformat(), e.end.isoformat()) for e in excluded]} if excluded else {}),
            },
            separators=(",", ":"),
        ).encode()
    ).hexdigest()
    return Baseline(
        labels=label_map,
        p0=p0,
        observed_rate=successes / trials,
        successes=successes,
        trials=trials,
        volume=all_trials / observed,
        minutes=minutes,
        observed_minutes=observed,
        active_minutes=len(all_active),
        dispersion=dispersion,
        hour_sd=hour_sd,
        hour_sd_hours=hour_sd_hours,
        excluded=excluded,
        rate_profile=list(profile.offsets) if profile is not None else None,
        rate_profile_statistic=round(profile.statistic, 3) if profile is not None else None,
        window_start=window_start,
        window_end=window_end,
        version=f"b1-{digest[:16]}",
    )
