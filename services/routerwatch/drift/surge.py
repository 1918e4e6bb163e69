"""Sudden escalation surges: a broken verifier or judge rejecting almost everything.

The drift CUSUM is tuned for a small shift (+3 points) and therefore has a long
memory: at a jump from 30 % to 90 % it pages too, but its design trades speed
for sensitivity. The surge detector is the same Bernoulli CUSUM tuned for a
large shift (default +20 points): its per-minute evidence under a real surge
is huge (about +40 nats a minute for 30 % -> 90 % at 100 trials/min) while its
threshold, derived from the same false-alarm budget, stays near the drift's,
so it pages in the first minute or two of the jump, forgets quickly, and
clears within a couple of minutes once the gate is fixed.

It also names the escalation reason behind the surge: the reason whose count
since the change began most exceeds what its baseline share predicts (a broken
verifier shows as ``verifier_rejected``; a provider outage would not appear
here at all, since failures are not escalations).

The threshold does not depend on volume
---------------------------------------

The drift CUSUM sizes ``h`` by an exact run-length computation at the baseline's
mean volume. For the surge CUSUM that design breaks under diurnal traffic: against
a +20 point alternative the per-minute log-likelihood ratio under the baseline has
mean ``-n * KL(p0 || p1)`` and spread ``~ sqrt(n)``, so at 1,000 trials a minute no
in-control minute carries positive evidence at all and the search returned its
floor (``h = 1e-6``, "any positive evidence pages"), while at night, at 110 trials
a minute, about one minute in seventy has positive evidence: the detector paged
on the night's volume alone (650 alarms in 30 simulated nights of one series with
iid traffic at the baseline rate).

The surge threshold is therefore ``h = log(ARL0)``, whatever the volume. Under the
baseline, ``exp(llr_t)`` has expectation 1 for *any* ``n_t`` (it is a likelihood
ratio), so within one excursion of the CUSUM ``exp(S)`` is a non-negative
martingale started at 1 and, by Ville's inequality, reaches ``exp(h)`` with
probability at most ``exp(-h)``. At most one excursion starts per minute, so
the CUSUM false-alarms at most once per ``exp(h) = ARL0`` minutes on average for
every sequence of volumes (diurnal, weekly, bursts, a fresh tier), not only for
the baseline's mean volume. The bound is within a few nats of the exact
constant-volume design where that design is largest (at low volume, where the
per-minute evidence is nearly per-trial): the constant-volume ARL0 at this ``h``
is about 6-17x the target between 1 and 200 trials a minute, and far above it
at higher volumes. The price is small because a surge is a large shift: a
broken verifier (30 % -> 90 %) brings ``~0.43 n`` nats a minute, so it pages in
the first minute from about 40 trials a minute up (tested at 110 and 1,000) and
within a few minutes at 10.

Hour-to-hour wobble
-------------------

Ville's bound needs the in-control rate to be ``p0``. On production traffic each
clock hour has a rate of its own (``expit(logit p0 + b)``, ``b ~ N(0, tau^2)``,
:mod:`routerwatch.drift.overdispersion`), and an hour 4 sd up at ``tau = 0.2`` is a
+20-point "surge" that lasts an hour. With ``SurgeConfig(overdispersion=True)``
the CUSUM judges against the tolerance rate ``p_ref = expit(logit p0 + z tau)``
and its alternative is ``delta`` beyond ``p_ref``. While an hour's rate is at or
below ``p_ref`` the likelihood ratio's expectation is at most 1, so Ville's bound
holds within it; an hour above ``p_ref`` can at worst cause one alarm. The
false-alarm rate is therefore at most ``exp(-h) + P(b > z tau) / 60`` a minute,
and the design gives each half the budget: ``h = log(2 ARL0)`` and ``z`` the
normal quantile of ``1 - 60 / (2 ARL0)`` (4.5 sd for one false page a month
across 177 CUSUMs). Still no volume in it. ``tau`` is the pooled series' own
hour-level sd (which counts the clock's mix swing as wobble too: the quiet
side), or ``hour_sd_prior`` without one. A broken verifier (30 % -> 90 %) is far
beyond any tolerance: it still pages in the first minute or two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from routerwatch.drift.attribution import TenantBreakdown
from routerwatch.drift.baseline import Baseline, baseline_problem
from routerwatch.drift.counts import MINUTE, MinuteCount, merge_by_minute
from routerwatch.drift.cusum_design import CusumDesign, DesignSkip, alternative_rate, arl0_for_budget, design_rate
from routerwatch.drift.cusum_run import CusumState, coerce_state, run_cusum
from routerwatch.drift.overdispersion import quantize_sd, shifted_rate
from routerwatch.drift.rate_drift import DriftConfig, FalseAlarmBudget, drift_verdict, series_hour_sd
from routerwatch.drift.verdict import Severity, Signal, Status, Verdict, silent


@dataclass(frozen=True)
class SurgeConfig:
    """Large-shift CUSUM settings. ``arl0_minutes`` defaults to one false page a month, one side."""

    delta: float = 0.20
    ratio: float | None = None
    arl0_minutes: float = field(default_factory=lambda: arl0_for_budget(1.0, 1, 1))
    min_trials: int = 1
    min_volume: float = 1.0
    cap_factor: float = 1.25
    clear_factor: float = 0.5
    severity: Severity = Severity.CRITICAL
    reason_minutes: int = 5  # window for the reason breakdown while not firing
    overdispersion: bool = False  # judge against the hour-level wobble's tolerance (module docstring)
    hour_sd_prior: float = 0.1
    budget: FalseAlarmBudget | None = None  # the fleet budget arl0_minutes came from (descriptions)

    def drift_config(self) -> DriftConfig:
        return DriftConfig(
            delta=self.delta,
            ratio=self.ratio,
            directions=("up",),
            arl0_minutes=self.arl0_minutes,
            min_trials=self.min_trials,
            min_volume=self.min_volume,
            cap_factor=self.cap_factor,
            clear_factor=self.clear_factor,
            severity=self.severity,
            observe_minutes=self.reason_minutes,
            overdispersion=self.overdispersion,
            hour_sd_prior=self.hour_sd_prior,
            budget=self.budget,
        )


def surge_threshold(arl0_minutes: float) -> float:
    """The surge CUSUM's threshold for an in-control ARL of at least ``arl0_minutes``, at any volume.

    ``log(arl0_minutes)``: Ville's bound (module docstring) holds for every
    sequence of per-minute volumes, so the threshold needs no volume at all.
    """
    return math.log(arl0_minutes)


def surge_tolerance_z(arl0_minutes: float) -> float:
    """Tolerance in sd of the hour effect: an hour beyond it once per ``2 * arl0_minutes`` minutes."""
    from statistics import NormalDist

    tail = min(0.5, 60.0 / (2.0 * arl0_minutes))
    return NormalDist().inv_cdf(1.0 - tail)


def plan_surge(
    p0: float, volume: float, *, arl0: float, delta: float = 0.20, ratio: float | None = None,
    hour_sd: float | None = 0.0,
) -> CusumDesign | DesignSkip:
    """The upward surge CUSUM for baseline ``p0``, or why there is none. Never raises.

    The rates are handled as in :func:`~routerwatch.drift.cusum_design.plan_cusum`
    (clamped by ``RATE_EPS``; skipped when degenerate or when the rate has no
    room to rise); the threshold is :func:`surge_threshold`, so ``volume`` is
    only recorded (``design.trials``) and ``design.arl0`` is the guaranteed
    lower bound on the in-control ARL, the target itself. ``hour_sd`` above 0
    gives the wobble tolerance of the module docstring: ``p0`` of the design is
    then the tolerance rate, ``center_p0`` the baseline's, and ``h`` is
    ``surge_threshold(2 * arl0)``.
    """
    if not (isinstance(p0, (int, float)) and 0 < p0 < 1):  # NaN fails the comparison too
        return DesignSkip(f"baseline rate {p0} is degenerate (outside (0, 1)): no likelihood ratio exists")
    if not (isinstance(volume, (int, float)) and math.isfinite(volume) and volume > 0):
        return DesignSkip(f"baseline volume {volume} trials/min is degenerate (not a positive number)")
    if not (isinstance(arl0, (int, float)) and math.isfinite(arl0) and arl0 > 1):
        return DesignSkip(f"target ARL0 {arl0} minutes is degenerate (not a finite number above 1)")
    rate = design_rate(p0)
    tau = quantize_sd(hour_sd)
    z = surge_tolerance_z(arl0) if tau > 0 else None
    ref = design_rate(shifted_rate(rate, z, tau)) if z is not None else rate
    p1 = alternative_rate(ref, "up", delta, ratio)
    if p1 is None or not 0 < p1 < 1 or p1 == ref:
        return DesignSkip(f"baseline rate {p0:.6g} leaves no room for a shift up (delta {delta}, ratio {ratio}"
                          + (f", tolerance {ref:.4g} for hour sd {tau})" if z is not None else ")"))
    if z is None:
        return CusumDesign("up", rate, p1, float(volume), surge_threshold(arl0), arl0, arl0,
                           baseline_p0=None if rate == p0 else p0)
    return CusumDesign("up", ref, p1, float(volume), surge_threshold(2 * arl0), arl0, arl0,
                       baseline_p0=None if rate == p0 else p0, hour_sd=tau, tolerance_z=round(z, 2),
                       center_p0=rate)


def dominant_reason(
    reason_counts: Mapping[str, int], trials: int, reason_rates: Mapping[str, float] | None = None
) -> tuple[str | None, dict[str, float]]:
    """The reason with the largest excess of escalations over its baseline expectation.

    ``reason_counts[reason]`` escalations in the window, ``trials`` the trials
    in the same window, ``reason_rates[reason]`` the baseline escalations per
    trial for that reason (absent: 0, so the raw count decides). Returns the
    reason (None when nothing was counted) and every reason's excess.
    """
    rates = reason_rates or {}
    excess = {r: c - trials * rates.get(r, 0.0) for r, c in reason_counts.items()}
    if not excess or max(reason_counts.values(), default=0) <= 0:
        return None, excess
    best = max(excess, key=lambda r: (excess[r], reason_counts[r], r))
    return best, excess


def detect_surge(
    baseline: Baseline | None,
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    config: SurgeConfig = SurgeConfig(),
    labels: Mapping[str, str] | None = None,
    reason_counts: Mapping[str, Sequence[MinuteCount]] | None = None,
    reason_rates: Mapping[str, float] | None = None,
    state: CusumState | Mapping[str, Any] | None = None,
    tenants: TenantBreakdown | None = None,
) -> Verdict:
    """Escalation surge verdict for one series (router, tier[, category]).

    ``counts``: per-minute escalated / (accepted + escalated) attempts.
    ``reason_counts[reason]``: per-minute escalations with that reason (only
    ``successes`` is read). ``reason_rates[reason]``: the baseline's escalations
    per trial with that reason (e.g. ``learn_baseline(...).p0`` of the reason's
    series). The reason breakdown covers the minutes since the estimated change
    start while firing, else the last ``config.reason_minutes``; it is in
    ``extra["dominant_reason"]`` and ``extra["reason_counts"]``.

    Statuses as :func:`~routerwatch.drift.rate_drift.detect_rate_drift`'s (no
    baseline, insufficient volume, degenerate); the threshold is
    :func:`surge_threshold` of ``config.arl0_minutes``, the same at every volume.
    ``tenants``: as for :func:`~routerwatch.drift.rate_drift.detect_rate_drift` (a
    surge carried by one tenant's batch is held, not paged).
    """
    verdict = _surge_verdict(baseline, counts, now=now, config=config, labels=labels, state=state, tenants=tenants)
    if not verdict.evaluated or not reason_counts:
        return verdict
    since = verdict.change_start or (now - config.reason_minutes * MINUTE)
    trials = sum(c.trials for c in merge_by_minute(counts) if since <= c.minute < now)
    window = {
        reason: sum(c.successes for c in rows if since <= c.minute < now) for reason, rows in reason_counts.items()
    }
    best, excess = dominant_reason(window, trials, reason_rates)
    extra = {
        **verdict.extra,
        "dominant_reason": best,
        "reason_counts": window,
        "reason_excess": excess,
        "reason_window_start": since.isoformat(),
    }
    update: dict[str, Any] = {"extra": extra}
    if verdict.firing and best is not None:
        total = sum(window.values())
        share = window[best] / total if total else 0.0
        update["summary"] = f"{verdict.summary}; dominant reason {best} ({share:.0%} of escalations)"
        update["description"] = (
            f"{verdict.description} Dominant escalation reason since the change: {best} with {window[best]} of "
            f"{total} escalations ({excess[best]:+.0f} over its baseline expectation): check that gate first."
        )
    return verdict.model_copy(update=update)


def _surge_verdict(
    baseline: Baseline | None,
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    config: SurgeConfig,
    labels: Mapping[str, str] | None,
    state: CusumState | Mapping[str, Any] | None,
    tenants: TenantBreakdown | None = None,
) -> Verdict:
    """The upward CUSUM verdict of :func:`detect_surge`, before the reason breakdown."""
    drift = config.drift_config()
    signal = Signal.ESCALATION_SURGE
    lab = {**(labels if labels is not None else (baseline.labels if baseline else {})), "direction": "up"}
    if baseline is None:
        return silent(signal, Status.NO_BASELINE, now=now, labels=lab, severity=config.severity,
                      reason="no frozen baseline for this series yet (too little history): not evaluated")
    problem = baseline_problem(baseline)
    if problem is not None:
        return silent(signal, Status.DEGENERATE, now=now, labels=lab, severity=config.severity,
                      baseline_version=baseline.version, reason=f"skipped: {problem}")
    if baseline.volume < config.min_volume:
        return silent(signal, Status.INSUFFICIENT_VOLUME, now=now, labels=lab, severity=config.severity,
                      baseline_version=baseline.version,
                      reason=f"baseline volume {baseline.volume:.2f} trials/min is below the floor "
                      f"{config.min_volume}: not evaluated")
    design = plan_surge(baseline.p0, baseline.volume, arl0=config.arl0_minutes, delta=config.delta,
                        ratio=config.ratio, hour_sd=series_hour_sd(baseline, drift))
    if isinstance(design, DesignSkip):
        return silent(signal, design.status, now=now, labels=lab, severity=config.severity,
                      baseline_version=baseline.version, reason=f"skipped: {design.reason}")
    rows = [c for c in merge_by_minute(counts) if baseline.window_end <= c.minute < now]
    trace = run_cusum(design, rows, state=coerce_state(state), min_trials=config.min_trials,
                      cap_factor=config.cap_factor, clear_factor=config.clear_factor, tenants=tenants,
                      profile=getattr(baseline, "rate_profile", None))
    verdict = drift_verdict(signal, design, baseline, rows, trace, lab, now, drift)
    sized = f" at {design.trials:.0f} trials/min."
    description = verdict.description
    if sized in description:
        description = description.replace(
            sized, " at any per-minute volume (h = log ARL0, a bound that holds whatever the traffic's shape)."
        )
    return verdict.model_copy(update={
        "description": description,
        "extra": {**verdict.extra, "threshold_rule": (
            "volume-free: h = log(arl0_target)" if design.hour_sd == 0 else
            "volume-free with an hour-wobble tolerance: h = log(2 arl0_target), z from the other half")},
    })
