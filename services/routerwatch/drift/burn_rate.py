"""Multi-window, multi-burn-rate alerts on a latency SLO (Google SRE Workbook, ch. 5).

The SLO is "``objective`` of requests finish under the latency target" (e.g.
95 % under the kept-path p95 target), so the error budget is ``1 - objective``
of requests. The burn rate over a window is the bad share divided by the
budget: 1 spends the budget exactly over the SLO period, 14.4 spends 2 % of a
30-day budget in one hour. A rule fires when the burn rate exceeds its factor
over *both* a long window (enough budget spent to matter) and a short one
(still burning now, so the alert resets soon after recovery). Defaults:

========  =====  ======  ========
long      short  factor  severity
========  =====  ======  ========
1 h       5 m    14.4    critical (page)
6 h       30 m   6       critical (page)
3 d       6 h    1       warning (ticket)
========  =====  ======  ========

Input: per-minute ``(good, total)`` counts (``MinuteCount(minute, good, total)``,
good = requests under the target) ending at ``now``. ``now`` is the end of the
last complete minute: buckets ``[now - W, now)`` make a window of W minutes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from routerwatch.drift.counts import MINUTE, MinuteCount
from routerwatch.drift.verdict import Severity, Signal, Status, Verdict, fmt_labels, silent


@dataclass(frozen=True)
class BurnRule:
    """Fire when the burn rate exceeds ``factor`` over both windows (minutes)."""

    long_minutes: int
    short_minutes: int
    factor: float
    severity: Severity

    @property
    def name(self) -> str:
        return f"{_span(self.long_minutes)}/{_span(self.short_minutes)}"


def _span(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


DEFAULT_BURN_RULES: tuple[BurnRule, ...] = (
    BurnRule(60, 5, 14.4, Severity.CRITICAL),
    BurnRule(360, 30, 6.0, Severity.CRITICAL),
    BurnRule(4320, 360, 1.0, Severity.WARNING),
)


def window_counts(counts: Sequence[MinuteCount], now: datetime, minutes: int) -> tuple[int, int]:
    """``(good, total)`` over the buckets ``[now - minutes, now)``."""
    start = now - minutes * MINUTE
    good = total = 0
    for c in counts:
        if start <= c.minute < now:
            good += c.successes
            total += c.trials
    return good, total


def burn_rate(good: int, total: int, objective: float) -> float | None:
    """Bad share over the error budget; None without requests."""
    if total <= 0:
        return None
    return ((total - good) / total) / (1.0 - objective)


def evaluate_burn_rate(
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    objective: float = 0.95,
    rules: Sequence[BurnRule] = DEFAULT_BURN_RULES,
    labels: Mapping[str, str] | None = None,
    min_requests: int = 1,
) -> list[Verdict]:
    """One verdict per severity among ``rules``: firing when any of its rules fires.

    A rule needs at least ``min_requests`` requests in each of its windows to
    fire (so five slow requests out of six at 3 a.m. do not page). The verdict's
    ``statistic`` is the burn rate of its most-exceeded rule (the smaller of the
    rule's two windows, which is what has to exceed the factor) and
    ``threshold`` that rule's factor; ``extra["rules"]`` holds every rule's
    long/short burn rates and volumes. A severity whose every long window is
    below ``min_requests`` is ``insufficient_volume``.
    """
    if not 0 < objective < 1:
        raise ValueError("objective must be inside (0, 1)")
    lab = dict(labels or {})
    budget = 1.0 - objective
    out: list[Verdict] = []
    for severity in (Severity.CRITICAL, Severity.WARNING):
        mine = [r for r in rules if r.severity is severity]
        if not mine:
            continue
        details = []
        best = None  # (ratio, rule, effective, long_good, long_total)
        any_volume = False
        for rule in mine:
            lg, lt = window_counts(counts, now, rule.long_minutes)
            sg, stt = window_counts(counts, now, rule.short_minutes)
            long_burn, short_burn = burn_rate(lg, lt, objective), burn_rate(sg, stt, objective)
            enough = lt >= min_requests and stt >= min_requests
            any_volume = any_volume or lt >= min_requests
            effective = min(long_burn, short_burn) if enough and long_burn is not None and short_burn is not None else None
            fires = effective is not None and effective > rule.factor
            details.append(
                {
                    "rule": rule.name,
                    "factor": rule.factor,
                    "long_minutes": rule.long_minutes,
                    "short_minutes": rule.short_minutes,
                    "long_burn": long_burn,
                    "short_burn": short_burn,
                    "long_total": lt,
                    "short_total": stt,
                    "firing": fires,
                }
            )
            if effective is not None and (best is None or effective / rule.factor > best[0]):
                best = (effective / rule.factor, rule, effective, lg, lt)
        rule_labels = dict(lab)
        if not any_volume or best is None:
            out.append(
                silent(Signal.LATENCY_BURN, Status.INSUFFICIENT_VOLUME, now=now, labels=rule_labels,
                       severity=severity, reason=f"fewer than {min_requests} requests in the rules' windows",
                       extra={"rules": details, "objective": objective})
            )
            continue
        _, rule, effective, lg, lt = best
        firing = any(d["firing"] for d in details)
        bad_share = (lt - lg) / lt if lt else None
        firing_rules = [str(d["rule"]) for d in details if d["firing"]]
        where = fmt_labels(lab)
        if firing:
            summary = f"latency error budget burning {effective:.1f}x over {rule.name} ({where})"
            description = (
                f"{bad_share:.1%} of requests missed the latency target over the last {_span(rule.long_minutes)} "
                f"(budget {budget:.1%}, objective {objective:.1%}): burn rate {effective:.1f}x > {rule.factor}x over "
                f"both {rule.name} windows. Rules firing: {', '.join(firing_rules)}."
            )
        else:
            summary = f"latency error budget burn {effective:.2f}x, under {rule.factor}x ({where})"
            description = f"no {severity.value} burn-rate rule fires; closest is {rule.name}."
        out.append(
            Verdict(
                signal=Signal.LATENCY_BURN,
                labels=rule_labels,
                status=Status.OK,
                firing=firing,
                severity=severity,
                statistic=effective,
                threshold=rule.factor,
                baseline_value=budget,
                observed_value=bad_share,
                magnitude=effective,
                change_start=None,
                evaluated_at=now,
                summary=summary,
                description=description,
                extra={"rules": details, "objective": objective, "worst_rule": rule.name},
            )
        )
    return out
