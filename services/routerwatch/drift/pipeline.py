"""Pipeline health verdicts: is the data the detectors read complete and current?

A drift detector that reads nothing sees no drift: before trusting silence, the
scheduler checks the pipe. These are plain threshold checks on quantities the
caller measures (ingest lag from ``routerwatch_ingest_delay_seconds`` or the
newest stored minute, dead-letter and consumed counts, SDK drop counters),
plus "router went silent": a router that normally sends traffic has sent
nothing for a while.

When ingest lags, pass the detectors a ``now`` no later than the newest minute
ingest has completed: otherwise the missing minutes read as zero traffic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from routerwatch.drift.baseline import Baseline
from routerwatch.drift.counts import MINUTE, MinuteCount
from routerwatch.drift.verdict import Severity, Signal, Status, Verdict, fmt_labels, silent


def check_ingest_lag(
    lag_seconds: float | None,
    *,
    now: datetime,
    threshold_seconds: float = 300.0,
    severity: Severity = Severity.CRITICAL,
    labels: Mapping[str, str] | None = None,
) -> Verdict:
    """Firing when events take more than ``threshold_seconds`` from occurrence to storage.

    ``lag_seconds`` None (no measurement: ingest not reporting) is
    ``insufficient_volume``: the caller should treat a missing metric as its
    own problem (Prometheus ``absent()``), not as health.
    """
    lab = dict(labels or {})
    if lag_seconds is None:
        return silent(Signal.PIPELINE_INGEST_LAG, Status.INSUFFICIENT_VOLUME, now=now, labels=lab,
                      severity=severity, reason="no ingest lag measurement")
    firing = lag_seconds > threshold_seconds
    return Verdict(
        signal=Signal.PIPELINE_INGEST_LAG,
        labels=lab,
        firing=firing,
        severity=severity,
        statistic=lag_seconds,
        threshold=threshold_seconds,
        observed_value=lag_seconds,
        evaluated_at=now,
        summary=f"ingest lag {lag_seconds:.0f}s" + (f" > {threshold_seconds:.0f}s" if firing else ""),
        description=(
            f"Events reach storage {lag_seconds:.0f}s after they occur (threshold {threshold_seconds:.0f}s): "
            "rollups and every drift detector are that far behind."
            if firing else "ingest is current"
        ),
    )


def check_dlq_rate(
    dead_lettered: int,
    consumed: int,
    *,
    now: datetime,
    threshold: float = 0.01,
    min_messages: int = 100,
    window_minutes: int = 5,
    severity: Severity = Severity.WARNING,
    labels: Mapping[str, str] | None = None,
    reasons: Mapping[str, int] | None = None,
) -> Verdict:
    """Firing when more than ``threshold`` of consumed messages were dead-lettered in the window.

    ``reasons`` (dead letters per reason) is copied to ``extra`` and names the
    top reason in the text: a schema change in one router shows as one reason.
    """
    lab = dict(labels or {})
    if consumed < min_messages:
        return silent(Signal.PIPELINE_DLQ_RATE, Status.INSUFFICIENT_VOLUME, now=now, labels=lab, severity=severity,
                      reason=f"{consumed} messages consumed in {window_minutes} min; {min_messages} needed")
    rate = dead_lettered / consumed
    firing = rate > threshold
    top = max(reasons, key=lambda r: reasons[r]) if reasons else None
    return Verdict(
        signal=Signal.PIPELINE_DLQ_RATE,
        labels=lab,
        firing=firing,
        severity=severity,
        statistic=rate,
        threshold=threshold,
        observed_value=rate,
        evaluated_at=now,
        summary=f"{rate:.1%} of messages dead-lettered over {window_minutes} min",
        description=(
            f"{dead_lettered} of {consumed} messages went to the dead-letter topic"
            + (f" (top reason: {top})" if top else "")
            + ". Their requests are missing from every figure and detector."
        ),
        extra={"dead_lettered": dead_lettered, "consumed": consumed, "reasons": dict(reasons or {}),
               "window_minutes": window_minutes},
    )


def check_sdk_drops(
    dropped: int,
    *,
    now: datetime,
    window_minutes: int = 5,
    severity: Severity = Severity.WARNING,
    labels: Mapping[str, str] | None = None,
    reasons: Mapping[str, int] | None = None,
) -> Verdict:
    """Firing when a router's SDK dropped any event in the window (queue full, broker down...)."""
    lab = dict(labels or {})
    firing = dropped > 0
    return Verdict(
        signal=Signal.PIPELINE_SDK_DROPS,
        labels=lab,
        firing=firing,
        severity=severity,
        statistic=float(dropped),
        threshold=0.0,
        observed_value=float(dropped),
        evaluated_at=now,
        summary=f"SDK dropped {dropped} events over {window_minutes} min ({fmt_labels(lab)})",
        description=(
            "The routerwatch SDK in the router dropped events instead of sending them; figures under-count "
            "this router." if firing else "no SDK drops"
        ),
        extra={"reasons": dict(reasons or {}), "window_minutes": window_minutes},
    )


def silent_minutes_needed(rate_per_minute: float, min_minutes: int, false_alarm_probability: float) -> int:
    """Minutes of silence that are evidence, not chance, for a router sending ``rate_per_minute``.

    With Poisson traffic, ``N`` empty minutes happen by chance with probability
    ``exp(-rate * N)``; a quiet router (1 event a minute) needs about 21
    minutes of silence before a 1e-9 chance, a busy one only ``min_minutes``.
    """
    if rate_per_minute <= 0:
        return 10**9
    return max(min_minutes, math.ceil(-math.log(false_alarm_probability) / rate_per_minute))


def detect_silent_routers(
    baselines: Mapping[str, Baseline | float | None],
    counts: Mapping[str, Sequence[MinuteCount]],
    *,
    now: datetime,
    min_rate: float = 1.0,
    silent_minutes: int = 5,
    false_alarm_probability: float = 1e-9,
    severity: Severity = Severity.CRITICAL,
    labels: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """One verdict per router in ``baselines``: firing when it went silent.

    ``baselines[router]``: a :class:`Baseline` (its ``volume``) or the events
    per minute it sent in its baseline window. ``counts[router]``: recent
    per-minute events (``trials``; ``successes`` is ignored). A router whose
    baseline rate is below ``min_rate`` is not judged (``insufficient_volume``);
    one without a baseline, ``no_baseline``. A router is silent when it sent
    nothing over the last ``silent_minutes_needed(rate, silent_minutes,
    false_alarm_probability)`` minutes; ``change_start`` is the minute after its
    last event, when that is in the counts.
    """
    base = dict(labels or {})
    out = []
    for router in sorted(baselines):
        b = baselines[router]
        lab = {**base, "router": router}
        if b is None:
            out.append(silent(Signal.PIPELINE_ROUTER_SILENT, Status.NO_BASELINE, now=now, labels=lab,
                              severity=severity, reason="no baseline volume for this router"))
            continue
        rate = b.volume if isinstance(b, Baseline) else float(b)
        if rate < min_rate:
            out.append(silent(Signal.PIPELINE_ROUTER_SILENT, Status.INSUFFICIENT_VOLUME, now=now, labels=lab,
                              severity=severity, reason=f"baseline {rate:.2f} events/min is below {min_rate}"))
            continue
        need = silent_minutes_needed(rate, silent_minutes, false_alarm_probability)
        rows = [c for c in counts.get(router, ()) if c.minute < now and c.trials > 0]
        last = max((c.minute for c in rows), default=None)
        since = now - need * MINUTE
        recent = sum(c.trials for c in rows if c.minute >= since)
        firing = recent == 0
        quiet_for = int((now - (last + MINUTE)) / MINUTE) if last is not None else None
        out.append(
            Verdict(
                signal=Signal.PIPELINE_ROUTER_SILENT,
                labels=lab,
                firing=firing,
                severity=severity,
                statistic=float(recent),
                threshold=0.0,
                baseline_value=rate,
                observed_value=recent / need,
                magnitude=recent / need - rate,
                change_start=(last + MINUTE) if firing and last is not None else None,
                evaluated_at=now,
                baseline_version=b.version if isinstance(b, Baseline) else None,
                summary=(
                    f"router {router} sent no events for {quiet_for if quiet_for is not None else f'{need}+'} minutes"
                    if firing else f"router {router} sending ({recent} events in {need} min)"
                ),
                description=(
                    f"Router {router} normally sends {rate:.1f} events/min and sent none in the last {need} minutes"
                    + (f" (last event in the minute of {last:%Y-%m-%d %H:%M} UTC)" if last else "")
                    + ": the router is down, its SDK cannot reach Kafka, or its traffic moved elsewhere."
                    if firing else "router traffic present"
                ),
                extra={"minutes_required": need, "last_event_minute": last.isoformat() if last else None,
                       "quiet_minutes": quiet_for},
            )
        )
    return out
