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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from routerwatch.drift.baseline import Baseline
from routerwatch.drift.counts import MINUTE, MinuteCount, merge_by_minute
from routerwatch.drift.cusum import CusumState, DriftConfig, arl0_for_budget, detect_rate_drift
from routerwatch.drift.verdict import Severity, Signal, Verdict


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
        )


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
) -> Verdict:
    """Escalation surge verdict for one series (router, tier[, category]).

    ``counts``: per-minute escalated / (accepted + escalated) attempts.
    ``reason_counts[reason]``: per-minute escalations with that reason (only
    ``successes`` is read). ``reason_rates[reason]``: the baseline's escalations
    per trial with that reason (e.g. ``learn_baseline(...).p0`` of the reason's
    series). The reason breakdown covers the minutes since the estimated change
    start while firing, else the last ``config.reason_minutes``; it is in
    ``extra["dominant_reason"]`` and ``extra["reason_counts"]``.
    """
    verdict = detect_rate_drift(
        baseline,
        counts,
        now=now,
        config=config.drift_config(),
        signal=Signal.ESCALATION_SURGE,
        labels=labels,
        states={"up": state} if state is not None else None,
    )[0]
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
