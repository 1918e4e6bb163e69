"""Experiments confounded by routing mix: variants that send traffic to different tiers.

An A/B test of a prompt or a gate threshold changes which tier serves the
requests; the variant with more flagship answers looks better (and slower, and
dearer) for that reason alone. When the variants' routing mix differs
(chi-square test of variant x final tier, :func:`routerwatch.stats.routing_mix_test`)
the experiment's pooled quality and latency comparison is confounded: compare
within slices (entry tier, escalated or not, the shadow slice) instead.

The test runs on the experiment's cumulative counts every minute, i.e. it is
repeated many times on growing data; the default ``alpha`` is therefore
strict (0.001), and the verdict is a ticket, not a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from routerwatch.drift.verdict import Severity, Signal, Status, Verdict, silent
from routerwatch.stats import chi2_sf, routing_mix_test


def chi2_critical(alpha: float, dof: int) -> float:
    """The chi-square value whose upper tail is ``alpha`` (bisection on :func:`chi2_sf`)."""
    lo, hi = 0.0, max(10.0, 10.0 * dof)
    while chi2_sf(hi, dof) > alpha:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if chi2_sf(mid, dof) > alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * hi:
            break
    return (lo + hi) / 2


def detect_experiment_confound(
    counts: Mapping[str, Mapping[str, int]],
    *,
    now: datetime,
    experiment_id: str,
    alpha: float = 0.001,
    min_requests: int = 100,
    labels: Mapping[str, str] | None = None,
    severity: Severity = Severity.WARNING,
) -> Verdict:
    """Verdict on one experiment: ``counts[variant][final_tier]`` = requests (shadow excluded).

    Variants with fewer than ``min_requests`` requests are left out; with fewer
    than two variants left the verdict is ``insufficient_volume``. ``statistic``
    is the chi-square, ``threshold`` its critical value at ``alpha``;
    ``extra["mix"]`` holds each variant's share of requests per final tier.
    """
    lab = {**(labels or {}), "experiment_id": experiment_id}
    kept = {v: dict(tiers) for v, tiers in counts.items() if sum(tiers.values()) >= min_requests}
    if len(kept) < 2:
        return silent(
            Signal.EXPERIMENT_CONFOUND, Status.INSUFFICIENT_VOLUME, now=now, labels=lab, severity=severity,
            reason=f"fewer than two variants with {min_requests} requests",
        )
    test = routing_mix_test(kept, alpha=alpha)
    mix = {}
    for v, tiers in kept.items():
        n = sum(tiers.values())
        mix[v] = {t: c / n for t, c in sorted(tiers.items())}
    critical = chi2_critical(alpha, test.dof) if test.dof > 0 else None
    if test.significant:
        parts = "; ".join(
            f"{v}: " + ", ".join(f"{t} {share:.0%}" for t, share in shares.items()) for v, shares in mix.items()
        )
        summary = f"experiment {experiment_id}: variants differ in routing mix (p={test.p_value:.1e})"
        description = (
            f"Final-tier shares differ between variants ({parts}; chi2={test.chi2:.1f}, dof={test.dof}). "
            f"Quality, latency and cost differences between the variants are confounded by routing: "
            f"compare them within entry tier / kept vs escalated / the shadow slice."
        )
    else:
        summary = f"experiment {experiment_id}: routing mix consistent across variants"
        description = f"chi2={test.chi2:.2f}, dof={test.dof}, p={test.p_value:.3f}"
    return Verdict(
        signal=Signal.EXPERIMENT_CONFOUND,
        labels=lab,
        status=Status.OK,
        firing=test.significant,
        severity=severity,
        statistic=test.chi2,
        threshold=critical,
        evaluated_at=now,
        summary=summary,
        description=description,
        extra={"p_value": test.p_value, "dof": test.dof, "alpha": alpha, "mix": mix,
               "requests": {v: sum(t.values()) for v, t in kept.items()}},
    )
