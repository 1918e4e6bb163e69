"""Pure statistics used by the figures and reports: data in, verdict out, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class MixTest:
    """Chi-square test of independence between experiment variant and final tier."""

    chi2: float
    dof: int
    p_value: float
    significant: bool


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom.

    The regularised upper incomplete gamma Q(dof/2, x/2), by its series (x small)
    or continued fraction (x large), as in Numerical Recipes; accurate to ~1e-12.
    """
    if dof <= 0:
        raise ValueError("dof must be positive")
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    log_prefix = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= z / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def routing_mix_test(counts: Mapping[str, Mapping[str, int]], alpha: float = 0.01) -> MixTest:
    """Do variants differ in routing mix? ``counts[variant][final_tier]`` = requests.

    A significant result means a quality or latency difference between the
    variants may be nothing but a different share of requests per tier: compare
    them within each slice (entry tier, escalated, shadow), not pooled.
    """
    variants = [v for v in counts if sum(counts[v].values()) > 0]
    tiers = sorted({t for v in variants for t, n in counts[v].items() if n > 0})
    if len(variants) < 2 or len(tiers) < 2:
        return MixTest(0.0, 0, 1.0, False)
    row = {v: sum(counts[v].get(t, 0) for t in tiers) for v in variants}
    col = {t: sum(counts[v].get(t, 0) for v in variants) for t in tiers}
    total = sum(row.values())
    chi2 = 0.0
    for v in variants:
        for t in tiers:
            expected = row[v] * col[t] / total
            chi2 += (counts[v].get(t, 0) - expected) ** 2 / expected
    dof = (len(variants) - 1) * (len(tiers) - 1)
    p_value = chi2_sf(chi2, dof)
    return MixTest(chi2, dof, p_value, p_value < alpha)


@dataclass(frozen=True)
class ThresholdChoice:
    """The gate threshold that meets a target error rate on graded answers."""

    threshold: float | None  # None: no threshold meets the target
    error_rate: float | None  # error among answers the gate would accept at that threshold
    coverage: float  # share of graded answers the gate would accept (kept at the cheap tier)
    graded: int


def threshold_for_target(scored: list[tuple[float, int, int]], target_error: float) -> ThresholdChoice:
    """Lowest gate threshold whose accepted answers are wrong at most ``target_error`` of the time.

    ``scored`` holds ``(score, graded, correct)`` per distinct gate score (graded
    answers, not only those the gate accepted: shadow and rejected grades show
    what a lower threshold would let through). The lowest qualifying threshold
    keeps the most traffic on the cheap tier.
    """
    total = sum(n for _, n, _ in scored)
    if total == 0:
        return ThresholdChoice(None, None, 0.0, 0)
    best: ThresholdChoice | None = None
    accepted = correct = 0
    # Walk thresholds from the highest score down, accumulating what the gate would accept.
    for score, n, good in sorted(scored, reverse=True):
        accepted += n
        correct += good
        error = 1 - correct / accepted
        if error <= target_error:
            best = ThresholdChoice(score, error, accepted / total, total)
    return best or ThresholdChoice(None, None, 0.0, total)
