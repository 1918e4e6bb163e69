"""The one result type of every drift detector: :class:`Verdict`.

Each detector returns verdicts and nothing else: the scheduler turns firing ones
into Alertmanager alerts (re-sent every minute while ``firing``, resolved when a
later verdict for the same :attr:`Verdict.identity` is no longer firing) and a
benchmark compares them with what it injected. A verdict says *why* it is
silent too: ``status`` is ``no_baseline``, ``insufficient_volume`` or
``degenerate`` when the detector could not judge, so "no alert" never
silently means "not evaluated".

Verdicts are frozen pydantic models: ``verdict.model_dump(mode="json")`` is the
wire form, ``Verdict.model_validate(...)`` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Signal(StrEnum):
    """What a verdict is about. One alert name per signal (see :data:`ALERT_NAMES`)."""

    ESCALATION_DRIFT = "escalation_drift"  # slow shift of an escalation rate (CUSUM, small shift)
    ESCALATION_SURGE = "escalation_surge"  # sudden jump (broken verifier), large-shift CUSUM
    LATENCY_BURN = "latency_burn"  # latency SLO error budget burning (multi-window burn rate)
    FAILURE_SHIFT = "failure_shift"  # a tier x failure-mode rate rising
    TENANT_ANOMALY = "tenant_anomaly"  # a tenant escalating far more than the fleet
    SHADOW_QUALITY = "shadow_quality"  # cheap tier's pass rate on the shadow slice falling
    EXPERIMENT_CONFOUND = "experiment_confound"  # variants differ in routing mix
    PIPELINE_INGEST_LAG = "pipeline_ingest_lag"
    PIPELINE_DLQ_RATE = "pipeline_dlq_rate"
    PIPELINE_SDK_DROPS = "pipeline_sdk_drops"
    PIPELINE_ROUTER_SILENT = "pipeline_router_silent"
    CANARY_TIER_FLIP = "canary_tier_flip"  # canaries served off their expected tier, N of M
    CANARY_ANSWER_FAILURE = "canary_answer_failure"  # canaries failing their answer check, N of M
    CANARY_NO_ANSWER = "canary_no_answer"  # the router did not answer N of its last M probes


#: Alertmanager ``alertname`` of each signal: CamelCase with the product prefix. The names the
#: scheduler raises must also have a runbook section (``alerts/runbooks/README.md``).
ALERT_NAMES: dict[Signal, str] = {
    Signal.ESCALATION_DRIFT: "RouterwatchEscalationDrift",
    Signal.ESCALATION_SURGE: "RouterwatchEscalationSurge",
    Signal.LATENCY_BURN: "RouterwatchLatencyBudgetBurn",
    Signal.FAILURE_SHIFT: "RouterwatchFailureModeShift",
    Signal.TENANT_ANOMALY: "RouterwatchTenantAnomaly",
    Signal.SHADOW_QUALITY: "RouterwatchShadowQualityDrop",
    Signal.EXPERIMENT_CONFOUND: "RouterwatchExperimentConfound",
    Signal.PIPELINE_INGEST_LAG: "RouterwatchIngestLagHigh",
    Signal.PIPELINE_DLQ_RATE: "RouterwatchDeadLetterRateHigh",
    Signal.PIPELINE_SDK_DROPS: "RouterwatchSdkEventsDropped",
    Signal.PIPELINE_ROUTER_SILENT: "RouterwatchRouterSilent",
    Signal.CANARY_TIER_FLIP: "RouterwatchCanaryTierFlip",
    Signal.CANARY_ANSWER_FAILURE: "RouterwatchCanaryAnswerFailure",
    Signal.CANARY_NO_ANSWER: "RouterwatchCanaryNoAnswer",
}


class Severity(StrEnum):
    """``critical`` pages someone now; ``warning`` opens a ticket."""

    CRITICAL = "critical"
    WARNING = "warning"


class Status(StrEnum):
    """Whether the detector could judge at all."""

    OK = "ok"  # evaluated; ``firing`` is the answer
    NO_BASELINE = "no_baseline"  # no frozen baseline yet (too little history): silent by design
    INSUFFICIENT_VOLUME = "insufficient_volume"  # too few trials to judge: silent by design
    # The baseline or the shift admits no sound design (a rate outside (0, 1), no trials, no room to
    # move): silent, and the description says "skipped: ..." with the value at fault.
    DEGENERATE = "degenerate"


class Verdict(BaseModel):
    """One detector's judgement of one series at one instant (``evaluated_at``).

    ``labels`` identify the series (router, tier, category, tenant, direction...)
    and, with ``signal`` and ``severity``, the alert. ``statistic`` is compared
    with ``threshold`` (firing when it reaches it; the unit is the detector's:
    CUSUM nats, burn-rate multiple, -log10 p-value...). ``baseline_value`` and
    ``observed_value`` are in the signal's natural unit (a rate, a lag in
    seconds); ``magnitude`` is their difference (or the burn rate) for the alert
    text. ``change_start`` is the detector's estimate of when the change began.
    ``extra`` holds detector-specific, JSON-serialisable detail (mix/within split,
    dominant escalation reason, per-window burn rates). ``state`` is the
    detector's resumable state as JSON (CUSUM detectors): pass it back as
    ``state=`` on the next call to continue without re-reading history.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal: Signal
    labels: dict[str, str] = Field(default_factory=dict)
    status: Status = Status.OK
    firing: bool = False
    severity: Severity = Severity.CRITICAL
    statistic: float | None = None
    threshold: float | None = None
    baseline_value: float | None = None
    observed_value: float | None = None
    magnitude: float | None = None
    change_start: datetime | None = None
    evaluated_at: datetime
    baseline_version: str | None = None
    #: Start and end (UTC) of the history the baseline was learned from; pages print it with
    #: :func:`window_text`.
    baseline_window: tuple[datetime, datetime] | None = None
    summary: str = ""
    description: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] | None = None

    @property
    def alertname(self) -> str:
        """The Alertmanager ``alertname`` of this verdict's signal."""
        return ALERT_NAMES[self.signal]

    @property
    def identity(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What makes two verdicts "the same alert": signal, severity and labels."""
        return (self.signal.value, self.severity.value, tuple(sorted(self.labels.items())))

    @property
    def evaluated(self) -> bool:
        """False when the detector stayed silent for want of a baseline or of volume."""
        return self.status is Status.OK


def silent(
    signal: Signal,
    status: Status,
    *,
    now: datetime,
    labels: dict[str, str],
    severity: Severity = Severity.CRITICAL,
    reason: str,
    baseline_version: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Verdict:
    """A non-firing verdict that says why the detector could not judge."""
    what = fmt_labels(labels)
    return Verdict(
        signal=signal,
        labels=labels,
        status=status,
        firing=False,
        severity=severity,
        evaluated_at=now,
        baseline_version=baseline_version,
        summary=f"{signal.value} not evaluated ({status.value}) for {what}",
        description=reason,
        extra=extra or {},
    )


def iso_minute(value: datetime) -> str:
    """``2026-11-30T14:05Z``: a time in UTC to the minute, ISO 8601 (naive times are taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%MZ")


def window_text(start: datetime, end: datetime) -> str:
    """``2026-11-23T14:00Z to 2026-11-30T14:00Z``: a baseline window by its real start and end (UTC)."""
    return f"{iso_minute(start)} to {iso_minute(end)}"


def fmt_labels(labels: Mapping[str, str]) -> str:
    """``k=v, ...`` in a stable order, for summaries."""
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "all"
