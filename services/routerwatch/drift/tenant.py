"""Tenants escalating far more than the fleet: abuse, a broken integration, a costly customer.

Escalation is an attack surface: a tenant that crafts requests the cheap tier
rejects buys the flagship model at the cheap tier's price. Each tenant's
escalation rate over a window is tested against the rate of *all other*
tenants (leave-one-out, so a large abusive tenant cannot hide by raising the
fleet rate it is compared with) with an exact one-sided binomial test. Across
tenants the p-values are corrected with Holm's step-down method, so the chance
of flagging *any* normal tenant in one evaluation is at most ``alpha``
(family-wise, not per tenant: with 10,000 tenants a per-tenant 1 % would flag
100 of them every minute).

Significance alone is not enough with large volumes (0.1 point over the fleet
becomes "significant" at a million requests), so a tenant also has to escalate
at least ``min_ratio`` times the fleet rate. Tenants below ``min_requests`` in
the window are not judged.

Escalation spend share: a tenant whose share of escalation spend is
``spend_ratio`` times its share of requests (and at least ``min_spend_share``)
is flagged too; its escalations are unusually expensive even if not unusually
frequent (long prompts sent straight up the cascade).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from routerwatch.drift.verdict import Severity, Signal, Status, Verdict, silent


@dataclass(frozen=True)
class TenantCounts:
    """One tenant over the evaluation window (``tenant_minute`` summed)."""

    tenant: str
    requests: int
    escalated: int  # escalated requests (at least one escalation)
    escalation_cost_usd: float = 0.0  # spend on escalated attempts' upper tiers; 0 when unknown


@dataclass(frozen=True)
class TenantConfig:
    alpha: float = 1e-4  # family-wise error per evaluation (Holm over the tenants tested)
    min_requests: int = 100
    min_ratio: float = 1.5
    spend_ratio: float = 3.0
    min_spend_share: float = 0.10
    severity: Severity = Severity.WARNING


def binom_logsf(x: int, n: int, p: float) -> float:
    """``log P(X >= x)`` for ``X ~ Bin(n, p)``, exact (summed in log space), accurate far in the tail."""
    if x <= 0:
        return 0.0
    if x > n:
        return -math.inf
    if p <= 0:
        return -math.inf
    if p >= 1:
        return 0.0
    lp, lq, lgn = math.log(p), math.log1p(-p), math.lgamma(n + 1)

    def logpmf(k: int) -> float:
        return lgn - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq

    mode = math.floor((n + 1) * p)
    if x > mode:
        # Terms fall from x upward: sum until they stop mattering.
        first = logpmf(x)
        total, term, k = 1.0, 1.0, x
        while k < n:
            term *= (n - k) / (k + 1) * p / (1 - p)
            k += 1
            total += term
            if term < total * 1e-17:
                break
        return first + math.log(total)
    # x at or below the mode: P(X >= x) = 1 - P(X <= x-1), the lower tail falling from x-1 down.
    first = logpmf(x - 1)
    total, term, k = 1.0, 1.0, x - 1
    while k > 0:
        term *= k / (n - k + 1) * (1 - p) / p
        k -= 1
        total += term
        if term < total * 1e-17:
            break
    lower = math.exp(first) * total
    return math.log(max(1e-300, 1.0 - lower))


def detect_tenant_anomalies(
    tenants: Sequence[TenantCounts],
    *,
    now: datetime,
    window_start: datetime | None = None,
    config: TenantConfig = TenantConfig(),
    labels: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """One verdict per tenant (labels add ``tenant``); firing for the anomalous ones.

    ``statistic`` is ``-log10`` of the tenant's one-sided p-value and
    ``threshold`` ``-log10`` of its Holm level (``alpha / (m - rank)``);
    ``baseline_value`` is the rest of the fleet's escalation rate,
    ``observed_value`` the tenant's. ``extra`` has the z-score, the ratio to the
    fleet, request share and escalation spend share, and ``reasons``
    (``escalation_rate`` and/or ``escalation_spend``). ``change_start`` is
    ``window_start`` (when given) for firing tenants.
    """
    base = dict(labels or {})
    total_req = sum(t.requests for t in tenants)
    total_esc = sum(t.escalated for t in tenants)
    total_spend = sum(t.escalation_cost_usd for t in tenants)
    tested: list[tuple[float, TenantCounts, float]] = []  # (log p, tenant, fleet rate)
    out: dict[str, Verdict] = {}
    for t in tenants:
        lab = {**base, "tenant": t.tenant}
        rest_n, rest_x = total_req - t.requests, total_esc - t.escalated
        if t.requests < config.min_requests or rest_n < config.min_requests:
            out[t.tenant] = silent(
                Signal.TENANT_ANOMALY, Status.INSUFFICIENT_VOLUME, now=now, labels=lab, severity=config.severity,
                reason=f"{t.requests} requests (rest of fleet {rest_n}); at least {config.min_requests} needed",
            )
            continue
        fleet = (rest_x + 0.5) / (rest_n + 1.0)
        tested.append((binom_logsf(t.escalated, t.requests, fleet), t, fleet))
    m = len(tested)
    tested.sort(key=lambda item: item[0])
    rejecting = True
    for rank, (logp, t, fleet) in enumerate(tested):
        level = config.alpha / (m - rank)
        significant = rejecting and logp <= math.log(level)
        rejecting = significant  # Holm: stop at the first tenant that is not significant
        rate = t.escalated / t.requests
        ratio = rate / fleet
        z = (t.escalated - t.requests * fleet) / math.sqrt(t.requests * fleet * (1 - fleet))
        request_share = t.requests / total_req if total_req else 0.0
        spend_share = t.escalation_cost_usd / total_spend if total_spend > 0 else None
        reasons = []
        if significant and ratio >= config.min_ratio:
            reasons.append("escalation_rate")
        if (
            spend_share is not None
            and spend_share >= config.min_spend_share
            and spend_share >= config.spend_ratio * request_share
        ):
            reasons.append("escalation_spend")
        firing = bool(reasons)
        stat = -logp / math.log(10)
        lab = {**base, "tenant": t.tenant}
        spend_text = f", {spend_share:.0%} of escalation spend" if spend_share is not None else ""
        if firing:
            summary = f"tenant {t.tenant} escalates {rate:.1%} of requests vs {fleet:.1%} for the rest of the fleet"
            description = (
                f"Tenant {t.tenant}: {t.escalated} escalated of {t.requests} requests ({rate:.1%}, {ratio:.1f}x the "
                f"fleet's {fleet:.1%}, z={z:.1f}, p=10^-{stat:.1f} against a Holm level of {level:.1e}); "
                f"{request_share:.1%} of requests{spend_text}. Reasons: {', '.join(reasons)}."
            )
        else:
            summary = f"tenant {t.tenant} escalation rate {rate:.1%} vs fleet {fleet:.1%}"
            description = f"not anomalous (p=10^-{stat:.1f}, Holm level {level:.1e}, ratio {ratio:.2f})"
        out[t.tenant] = Verdict(
            signal=Signal.TENANT_ANOMALY,
            labels=lab,
            status=Status.OK,
            firing=firing,
            severity=config.severity,
            statistic=stat,
            threshold=-math.log10(level),
            baseline_value=fleet,
            observed_value=rate,
            magnitude=rate - fleet,
            change_start=window_start if firing else None,
            evaluated_at=now,
            summary=summary,
            description=description,
            extra={
                "requests": t.requests,
                "escalated": t.escalated,
                "z": z,
                "ratio": ratio,
                "p_value": math.exp(logp),
                "holm_level": level,
                "tenants_tested": m,
                "request_share": request_share,
                "escalation_spend_share": spend_share,
                "reasons": reasons,
            },
        )
    return [out[t.tenant] for t in tenants if t.tenant in out]
