"""Rate-drift detector: a rate drifting away from its baseline (escalation, failure mode, shadow pass rate).

:func:`detect_rate_drift` designs one Bernoulli CUSUM per direction for a
series' frozen baseline (:func:`~routerwatch.drift.cusum_design.plan_cusum`),
folds the counts after the baseline window through it
(:func:`~routerwatch.drift.cusum_run.run_cusum`), adds the hourly CUSUM of
:mod:`routerwatch.drift.hourly` on a wobbly series, and turns the runs into
verdicts with the text a person reads: what moved, since when, against which
baseline, and the false-alarm budget the threshold was sized for
(:class:`FalseAlarmBudget`, :func:`spacing_text`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from routerwatch.drift.attribution import TenantBreakdown, hold_check
from routerwatch.drift.baseline import Baseline, baseline_problem
from routerwatch.drift.counts import MINUTE, MINUTES_PER_MONTH, MinuteCount, merge_by_minute
from routerwatch.drift.cusum_design import (
    RATE_EPS,
    CusumDesign,
    DesignSkip,
    Direction,
    arl0_for_budget,
    design_rate,
    plan_cusum,
)
from routerwatch.drift.cusum_run import CusumState, CusumTrace, coerce_state, run_cusum
from routerwatch.drift.hourly import HOUR, HourlyDesign, hourly_counts, plan_hourly, run_hourly
from routerwatch.drift.overdispersion import quantize_sd, shift_logit
from routerwatch.drift.verdict import Severity, Signal, Status, Verdict, fmt_labels, silent, window_text


def pages_text(false_pages_per_month: float) -> str:
    """``1 false page per month``, ``2 false pages per month``, ``0.5 false pages per month``."""
    return f"{false_pages_per_month:g} false page{'' if false_pages_per_month == 1 else 's'} per month"


def spacing_text(minutes: float) -> str:
    """A mean spacing between false alarms in the unit a person reads: ``41 days``, ``8.1 years``."""
    if not math.isfinite(minutes):
        return "never (no false alarm is possible)"
    for unit, size in (("years", 365.25 * 24 * 60), ("months", MINUTES_PER_MONTH), ("days", 24 * 60),
                       ("hours", 60), ("minutes", 1)):
        if minutes >= 2 * size or unit == "minutes":
            value = minutes / size
            return f"{value:,.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class FalseAlarmBudget:
    """The fleet's false-alarm budget as people state it, and what it leaves each one-sided CUSUM.

    ``pages_per_month`` false pages a month in all (``ROUTERWATCH_SCHEDULER__FALSE_PAGES_PER_MONTH``)
    across ``series`` watched series, shared equally by their ``cusums`` one-sided CUSUMs (a
    two-sided series has two, a tier three: both drift sides and the surge). ``str()`` is the
    sentence pages and ``routerwatch alerts`` print: "1 false page per month across the 400
    watched series".
    """

    pages_per_month: float
    series: int
    cusums: int

    def __post_init__(self) -> None:
        if not self.pages_per_month > 0 or self.series < 1 or self.cusums < 1:
            raise ValueError("need a positive page budget, at least one series and one CUSUM")

    @property
    def arl0_minutes(self) -> float:
        """In-control ARL each one-sided CUSUM needs: :func:`arl0_for_budget` over all of them."""
        return arl0_for_budget(self.pages_per_month, series=self.cusums, sides=1)

    def __str__(self) -> str:
        return f"{pages_text(self.pages_per_month)} across the {self.series:,} watched series"

    def share_text(self, arl0_minutes: float | None = None) -> str:
        """The budget and each CUSUM's share of it; ``arl0_minutes``: one detector's own ARL0 when it differs."""
        text = (f"{self} (each of their {self.cusums:,} one-sided CUSUMs may false-alarm once per "
                f"{spacing_text(self.arl0_minutes)}")
        if arl0_minutes is not None and not math.isclose(arl0_minutes, self.arl0_minutes, rel_tol=1e-3):
            text += f"; this threshold: once per {spacing_text(arl0_minutes)}"
        return text + ")"


def threshold_text(arl0_minutes: float, budget: FalseAlarmBudget | None) -> str:
    """What a detector's threshold is sized for, in words: the fleet budget when known, else its own spacing."""
    if budget is None:
        return f"one false alarm per {spacing_text(arl0_minutes)}"
    return f"the false-alarm budget of {budget.share_text(arl0_minutes)}"


@dataclass(frozen=True)
class DriftConfig:
    """Settings of a two-sided (or one-sided) Bernoulli CUSUM detector.

    ``arl0_minutes`` is the in-control ARL of *each* one-sided CUSUM: build it
    with :func:`arl0_for_budget` from the page budget and the number of series
    watched (the default: one false page a month for a single series).
    ``min_volume`` is the baseline trials/minute below which the series is not
    evaluated (status ``insufficient_volume``); ``min_trials`` pools quieter
    minutes (see :func:`~routerwatch.drift.cusum_run.fold`). ``observe_minutes``
    is the window of the "observed rate" reported while not firing.

    ``overdispersion`` designs each series for its hour-level wobble
    (``Baseline.hour_sd``; the tolerance CUSUM of
    :mod:`routerwatch.drift.overdispersion`). A baseline without an estimate (fewer
    than ``MIN_SD_HOURS`` usable hours, or stored before the field existed) is
    designed with ``hour_sd_prior``: 0.1 on the logit scale, the middle of the
    0.05-0.2 measured on production-like traffic (a fresh series is judged a
    little less sharply until a week of history gives its own estimate). Off (the
    default), every series gets the iid design. With ``overdispersion`` and
    ``hourly`` (the default) each side of a wobbly series runs two CUSUMs that
    share its budget: the minute-level tolerance CUSUM for fast shifts and the
    CUSUM over standardised hourly residuals of :mod:`routerwatch.drift.hourly`
    for slow ones (a +3-point drift in hours rather than days); either pages.
    """

    delta: float = 0.03
    ratio: float | None = None
    directions: tuple[Direction, ...] = ("up", "down")
    arl0_minutes: float = field(default_factory=lambda: arl0_for_budget(1.0, 1, 2))
    min_trials: int = 1
    min_volume: float = 1.0
    cap_factor: float = 1.25
    clear_factor: float = 0.5
    severity: Severity = Severity.CRITICAL
    observe_minutes: int = 60
    overdispersion: bool = False
    hour_sd_prior: float = 0.1
    hourly: bool = True
    #: The fleet budget ``arl0_minutes`` was derived from, for the descriptions (None: say only the ARL0).
    budget: FalseAlarmBudget | None = None


def _rate_text(signal: Signal) -> str:
    return {
        Signal.ESCALATION_DRIFT: "escalation rate",
        Signal.ESCALATION_SURGE: "escalation rate",
        Signal.FAILURE_SHIFT: "failure rate",
        Signal.SHADOW_QUALITY: "shadow pass rate",
    }.get(signal, "rate")


def detect_rate_drift(
    baseline: Baseline | None,
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    config: DriftConfig = DriftConfig(),
    signal: Signal = Signal.ESCALATION_DRIFT,
    labels: Mapping[str, str] | None = None,
    states: Mapping[str, CusumState | Mapping[str, Any]] | None = None,
    tenants: TenantBreakdown | None = None,
    hours: Sequence[tuple[datetime, int, int]] | None = None,
) -> list[Verdict]:
    """One verdict per direction in ``config.directions`` for one series.

    ``hours`` (``(hour start, successes, trials)``, e.g. from the hourly rollup
    over days) feeds the hourly CUSUM of a wobbly series; without it the hourly
    CUSUM folds the complete hours of ``counts``. The scheduler passes it: its
    minute look-back (hours) is far shorter than a slow drift needs.

    ``tenants`` reads the series' counts by tenant for an alarm's window: an
    alarm carried by one tenant's batch is then held, not paged
    (:mod:`routerwatch.drift.attribution`; ``extra["held_alarms"]``).

    ``counts`` are the series' per-minute counts after the baseline window;
    minutes before ``baseline.window_end`` or at/after ``now`` (the end of the
    last complete minute) are ignored. ``states`` maps a direction to the state
    returned in the previous verdict's ``state`` to resume from; without it
    the CUSUM starts from zero at the first count (pass a long enough
    look-back, several hours, when running stateless). ``labels`` default to
    the baseline's; each verdict adds ``direction``.

    No baseline -> ``no_baseline``; a baseline volume below ``config.min_volume``
    -> ``insufficient_volume``; a baseline or shift with no sound design (see
    :func:`plan_cusum`: a rate outside ``(0, 1)``, no trials, no room to move)
    -> ``degenerate``, its description ``skipped: <reason>``. All are
    non-firing and say why. A baseline rate within :data:`RATE_EPS` of 0 or 1
    is judged at the clamped rate, and the description says so. Raises
    ``ValueError`` for impossible counts (successes above trials, negative) and
    for a ``states`` entry that is not a valid :class:`CusumState`.
    """
    base_labels = dict(labels if labels is not None else (baseline.labels if baseline else {}))
    out: list[Verdict] = []
    for direction in config.directions:
        lab = {**base_labels, "direction": direction}
        if baseline is None:
            out.append(
                silent(signal, Status.NO_BASELINE, now=now, labels=lab, severity=config.severity,
                       reason="no frozen baseline for this series yet (too little history): not evaluated")
            )
            continue
        problem = baseline_problem(baseline)
        if problem is not None:
            out.append(
                silent(signal, Status.DEGENERATE, now=now, labels=lab, severity=config.severity,
                       baseline_version=baseline.version, reason=f"skipped: {problem}")
            )
            continue
        if baseline.volume < config.min_volume:
            out.append(
                silent(signal, Status.INSUFFICIENT_VOLUME, now=now, labels=lab, severity=config.severity,
                       baseline_version=baseline.version,
                       reason=f"baseline volume {baseline.volume:.2f} trials/min is below the floor "
                       f"{config.min_volume}: not evaluated")
            )
            continue
        tau = series_hour_sd(baseline, config)
        hourly = None
        arl0 = config.arl0_minutes
        if quantize_sd(tau) > 0 and config.hourly:
            # Two CUSUMs per side share its budget: the hourly one (slow drifts) and the minute one (fast).
            arl0 = 2 * config.arl0_minutes
            hourly = plan_hourly(design_rate(baseline.p0), baseline.volume, quantize_sd(tau), direction=direction,
                                 arl0_minutes=arl0, delta=config.delta,
                                 baseline_hours=baseline.hour_sd_hours
                                 or max(1, (baseline.observed_minutes or baseline.minutes) // 60))
        design = plan_cusum(baseline.p0, baseline.volume, direction=direction, arl0=arl0,
                            delta=config.delta, ratio=config.ratio, hour_sd=tau)
        if isinstance(design, DesignSkip):
            out.append(
                silent(signal, design.status, now=now, labels=lab, severity=config.severity,
                       baseline_version=baseline.version, reason=f"skipped: {design.reason}")
            )
            continue
        prior = coerce_state((states or {}).get(direction))
        rows = [c for c in merge_by_minute(counts) if baseline.window_end <= c.minute < now]
        profile = getattr(baseline, "rate_profile", None)
        trace = run_cusum(design, rows, state=prior, min_trials=config.min_trials,
                          cap_factor=config.cap_factor, clear_factor=config.clear_factor, tenants=tenants,
                          profile=profile)
        verdict = drift_verdict(signal, design, baseline, rows, trace, lab, now, config)
        if hourly is not None:
            verdict = _with_hourly(verdict, hourly, rows, trace, now, config, tenants, profile,
                                   hours=None if hours is None else
                                   [h for h in hours if h[0] >= baseline.window_end and h[0] + HOUR <= now])
        out.append(verdict)
    return out


def firing_onsets(*spans: Sequence[tuple[datetime, datetime | None]]) -> list[datetime]:
    """Page onsets of the union of firing spans ``[alarm, cleared)`` (None: still firing)."""
    merged = sorted(((a, c) for group in spans for a, c in group),
                    key=lambda span: (span[0], span[1] is None, span[1] or span[0]))
    onsets: list[datetime] = []
    end: datetime | None = None
    open_ = False
    for a, c in merged:
        # A span starting when (or before) the previous one cleared continues the same page.
        if open_ and (end is None or a <= end):
            if c is None:
                end = None
            elif end is not None:
                end = max(end, c)
            continue
        onsets.append(a)
        open_, end = True, c
    return onsets


def alarm_spans(alarms: Sequence[datetime], cleared: Sequence[datetime]) -> list[tuple[datetime, datetime | None]]:
    """Alarm times paired with the clears that follow them (a latch alternates alarm, clear, alarm...)."""
    out: list[tuple[datetime, datetime | None]] = []
    later = sorted(cleared)
    for a in sorted(alarms):
        c = next((t for t in later if t >= a), None)
        out.append((a, c))
        if c is not None:
            later.remove(c)
    return out


def _with_hourly(
    verdict: Verdict, design: HourlyDesign, rows: Sequence[MinuteCount], trace: CusumTrace, now: datetime,
    config: DriftConfig, tenants: TenantBreakdown | None, profile: Sequence[float] | None = None,
    hours: Sequence[tuple[datetime, int, int]] | None = None,
) -> Verdict:
    """The minute verdict combined with the hourly CUSUM of :mod:`routerwatch.drift.hourly` (either one pages)."""
    sign = 1.0 if design.direction == "up" else -1.0
    hold = hold_check(tenants, log_odds=sign, per_trial={}, default_per_trial=sign * design.p0)
    hourly = run_hourly(design, hourly_counts(rows, now) if hours is None else hours, cap_factor=config.cap_factor,
                        clear_factor=config.clear_factor, hold=hold, profile=profile)
    minute_spans = alarm_spans([a.at for a in trace.alarms], list(trace.cleared))
    if trace.state.alarm_at is not None and minute_spans and minute_spans[-1][1] is not None:
        minute_spans[-1] = (minute_spans[-1][0], None)
    hour_spans = alarm_spans([a for a, _, _ in hourly.alarms], list(hourly.cleared))
    onsets = firing_onsets(minute_spans, hour_spans)
    extra = {
        **verdict.extra,
        "alarms_in_call": [t.isoformat() for t in onsets],
        "held_alarms": verdict.extra.get("held_alarms", []) + [hd.as_dict() for hd in hourly.held],
        "hourly": {
            "k": design.k, "h": design.h, "s": hourly.s, "arl0_hours": design.arl0_hours,
            "alarm_at": hourly.alarm_at.isoformat() if hourly.alarm_at else None,
            "change_start": hourly.change_start.isoformat() if hourly.change_start else None,
            "last_hour": hourly.last_hour.isoformat() if hourly.last_hour else None,
        },
    }
    update: dict[str, Any] = {"extra": extra}
    hourly_text = (
        f" Hourly CUSUM over standardised hourly residuals (binomial noise plus the hour's wobble): "
        f"S={hourly.s:.2f}, h={design.h:.2f}, k={design.k:.2f}, one false alarm per "
        f"{spacing_text(design.arl0_hours * 60)}"
        + (f" (its share of {config.budget})." if config.budget is not None else ".")
    )
    if hourly.alarm_at is not None and not verdict.firing:
        since = hourly.change_start or (hourly.alarm_at - HOUR)
        window = [c for c in rows if since <= c.minute < now]
        x = sum(c.successes for c in window)
        n = sum(c.trials for c in window)
        observed = x / n if n else None
        expected = expected_rate(design.p0, window, profile)
        interval = expected_interval(expected, window, design.tau)
        what = _rate_text(verdict.signal)
        where = fmt_labels({k: v for k, v in verdict.labels.items() if k != "direction"})
        verb = "rose" if design.direction == "up" else "fell"
        obs_text = _pct(observed)
        update.update(
            firing=True, statistic=hourly.s, threshold=design.h, change_start=since, observed_value=observed,
            magnitude=None if observed is None else observed - expected,
            summary=f"{what} {verb} to {obs_text} from {expected:.1%} over hours ({where})",
            description=(
                f"The {design.direction}ward hourly CUSUM of the {what} for {where} crossed h={design.h:.2f} at "
                f"{hourly.alarm_at:%Y-%m-%d %H:%M} UTC (sized for {threshold_text(design.arl0_hours * 60, config.budget)}; the "
                f"hour-to-hour wobble, logit sd {design.tau:.2f}, counted as noise); the drift most likely began "
                f"at {since:%Y-%m-%d %H:%M} UTC. Since then {x} of {n} ({obs_text}) against a baseline of "
                f"{expected:.2%}"
                + (f", in-control 95% interval {interval[0]:.2%}-{interval[1]:.2%} over these trials."
                   if interval is not None else ".")
                + held_text(hourly.held)
            ),
        )
        extra["alarm_at"] = hourly.alarm_at.isoformat()
    else:
        update["description"] = verdict.description + hourly_text + held_text(hourly.held)
    return verdict.model_copy(update=update)


def series_hour_sd(baseline: Baseline, config: DriftConfig) -> float:
    """The hour-level sd a series is designed for: 0 without ``config.overdispersion``; else its own or the prior."""
    if not config.overdispersion:
        return 0.0
    own = getattr(baseline, "hour_sd", None)
    return float(own) if own is not None else float(config.hour_sd_prior)


def expected_interval(
    p0: float, rows: Sequence[MinuteCount], hour_sd: float, z: float = 1.96
) -> tuple[float, float] | None:
    """Central ``z``-sd interval of the rate ``rows`` would show in control, hour wobble included.

    Over ``n`` trials spread as ``n_h`` over clock hours, the in-control rate has
    variance ``p0 (1 - p0) / n`` (binomial) plus ``(p0 (1 - p0) hour_sd)^2 sum n_h^2 / n^2``
    (each hour's shared random effect, delta method). None without trials.
    """
    per_hour: dict[datetime, int] = {}
    for r in rows:
        if r.trials > 0:
            key = r.minute.replace(minute=0, second=0, microsecond=0)
            per_hour[key] = per_hour.get(key, 0) + r.trials
    n = sum(per_hour.values())
    if n <= 0:
        return None
    pq = p0 * (1 - p0)
    var = pq / n + (pq * hour_sd) ** 2 * sum(v * v for v in per_hour.values()) / (n * n)
    sd = math.sqrt(var)
    return max(0.0, p0 - z * sd), min(1.0, p0 + z * sd)


def expected_rate(p0: float, rows: Sequence[MinuteCount], profile: Sequence[float] | None) -> float:
    """The rate ``rows`` should show in control: ``p0``, or with a clock profile its trial-weighted mean."""
    if not profile or not any(profile):
        return p0
    n = sum(c.trials for c in rows)
    if n <= 0:
        return p0
    return sum(c.trials * shift_logit(p0, profile[c.minute.hour]) for c in rows) / n


def held_text(held: Sequence[Any]) -> str:
    """The description's sentence on alarms held for one tenant (empty when none)."""
    if not held:
        return ""
    last = held[-1]
    share = last.tenant_trials / last.window_trials if last.window_trials else 0.0
    return (
        f" Held {len(held)} crossing(s) carried by one tenant (or two at once), the last at {last.at:%Y-%m-%d %H:%M} UTC: "
        f"tenant {last.tenant}{''.join(' and ' + t for t in last.also)} sent {share:.0%} of the "
        f"{last.window_trials} trials since "
        f"{last.since:%H:%M} and {last.tenant_evidence:.1f} of the evidence; the rest of the traffic showed "
        f"{last.rest_evidence:.1f} (a shift of the router would have shown at least {last.rest_needed:.1f}), so it "
        f"was not paged as drift: the tenant signal judges that tenant."
    )


def _pct(observed: float | None) -> str:
    return f"{observed:.2%}" if observed is not None else "n/a"


def drift_verdict(
    signal: Signal,
    design: CusumDesign,
    baseline: Baseline,
    rows: list[MinuteCount],
    trace: CusumTrace,
    labels: dict[str, str],
    now: datetime,
    config: DriftConfig,
) -> Verdict:
    """The verdict of one side's run: firing or not, observed against expected rate, and the text saying why.

    ``rows`` are the minutes folded into ``trace`` (``now`` the end of the last
    complete minute); the verdict's ``state`` is ``trace.state``, to resume from.
    The surge detector builds its verdict with it too.
    """
    st = trace.state
    firing = st.alarm_at is not None
    since = st.change_start if firing else None
    # Not firing: a fixed recent window. The current excursion (since run_start) would be biased
    # upward by construction: it is the stretch the statistic found suspicious.
    window_from = since or (now - config.observe_minutes * MINUTE)
    window = [c for c in rows if c.minute >= window_from]
    x = sum(c.successes for c in window)
    n = sum(c.trials for c in window)
    observed = x / n if n else None
    expected = expected_rate(design.center_p0 if design.center_p0 is not None else design.p0, window,
                             getattr(baseline, "rate_profile", None))
    interval = expected_interval(expected, window, design.hour_sd)
    if design.hour_sd > 0:
        own = getattr(baseline, "hour_sd", None)
        source = (f"estimated from {baseline.hour_sd_hours} hours of the baseline" if own is not None
                  else "prior: too little baseline history to estimate")
        dispersion_text = (
            f" Dispersion: hour-to-hour wobble of the rate, logit sd {design.hour_sd:.2f} ({source}); the "
            f"{design.direction}ward CUSUM judges against {design.p0:.2%} (the baseline moved "
            f"{design.tolerance_z:g} sd of that wobble) and its threshold holds one false alarm per "
            f"{spacing_text(design.arl0_target)} under that wobble."
        )
    else:
        dispersion_text = " Dispersion: binomial (no hour-to-hour wobble beyond sampling noise)."
    interval_text = (
        f" Observed {_pct(observed)} vs expected {expected:.2%}, in-control 95% interval "
        f"{interval[0]:.2%}-{interval[1]:.2%} over these {n} trials." if interval is not None and observed is not None
        else ""
    )
    what = _rate_text(signal)
    where = fmt_labels({k: v for k, v in labels.items() if k != "direction"})
    obs_text = f"{observed:.1%}" if observed is not None else "n/a"
    verb = "rose" if design.direction == "up" else "fell"
    if firing:
        summary = f"{what} {verb} to {obs_text} from {expected:.1%} ({where})"
        description = (
            f"The {design.direction}ward CUSUM of the {what} for {where} crossed its threshold "
            f"(S={st.s:.1f} >= h={design.h:.1f}) at {st.alarm_at:%Y-%m-%d %H:%M} UTC. The change most likely "
            f"began at {since:%Y-%m-%d %H:%M} UTC; since then {x} of {n} ({obs_text}) against a baseline of "
            f"{expected:.2%} (baseline {baseline.version}, learned from "
            f"{window_text(baseline.window_start, baseline.window_end)}). Threshold sized for "
            f"{threshold_text(design.arl0_target, config.budget)} at {design.trials:.0f} trials/min."
            + interval_text + dispersion_text
            if since is not None else f"{what} {verb} for {where}"
        )
    else:
        summary = f"{what} {obs_text} vs baseline {expected:.1%}: no {design.direction}ward shift ({where})"
        description = (
            f"{design.direction}ward CUSUM S={st.s:.2f} below h={design.h:.2f}; observed {obs_text} over "
            f"{n} trials since {window_from:%Y-%m-%d %H:%M} UTC." + interval_text + dispersion_text
        )
    description += held_text(trace.held)
    if design.baseline_p0 is not None:
        description += (
            f" The baseline rate {design.baseline_p0:.3g} is within {RATE_EPS:g} of 0 or 1 and was judged as "
            f"{design.p0:.10g}."
        )
    return Verdict(
        signal=signal,
        labels=labels,
        status=Status.OK,
        firing=firing,
        severity=config.severity,
        statistic=st.s,
        threshold=design.h,
        baseline_value=expected,
        observed_value=observed,
        magnitude=None if observed is None else observed - expected,
        change_start=since,
        evaluated_at=now,
        baseline_version=baseline.version,
        baseline_window=(baseline.window_start, baseline.window_end),
        summary=summary,
        description=description,
        extra={
            "p1": design.p1,
            "arl0_target": design.arl0_target,
            "arl0": design.arl0 if math.isfinite(design.arl0) else None,  # inf: no false alarm possible
            "design_trials_per_minute": design.trials,
            "alarm_at": st.alarm_at.isoformat() if st.alarm_at else None,
            "run_start": st.run_start.isoformat() if st.run_start else None,
            "window_trials": n,
            "window_successes": x,
            "alarms_in_call": [a.at.isoformat() for a in trace.alarms],
            "dispersion": baseline.dispersion,
            "hour_sd": design.hour_sd,
            "hour_sd_source": (None if design.hour_sd == 0 else
                               "baseline" if getattr(baseline, "hour_sd", None) is not None else "prior"),
            "hour_sd_hours": getattr(baseline, "hour_sd_hours", None),
            "expected_rate": expected,
            "expected_interval": list(interval) if interval is not None else None,
            "tolerance_rate": design.p0 if design.hour_sd > 0 else None,
            "tolerance_z": design.tolerance_z,
            "rate_clamped_from": design.baseline_p0,
            "held_alarms": [hd.as_dict() for hd in trace.held],
        },
        state=st.model_dump(mode="json"),
    )


def detect_escalation_drift(
    baseline: Baseline | None,
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    config: DriftConfig = DriftConfig(),
    labels: Mapping[str, str] | None = None,
    states: Mapping[str, CusumState | Mapping[str, Any]] | None = None,
) -> list[Verdict]:
    """Escalation rate of one (router, tier, category) drifting up or down: :func:`detect_rate_drift`.

    ``counts``: successes = escalated attempts, trials = accepted + escalated
    attempts at the tier (shadow and failed attempts excluded, docs/design-notes.md section 2).
    """
    return detect_rate_drift(baseline, counts, now=now, config=config, signal=Signal.ESCALATION_DRIFT,
                             labels=labels, states=states)
