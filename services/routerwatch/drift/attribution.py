"""Is an alarm about the router, or about one tenant's batch?

A tenant that sends a batch of its own prompts (an evaluation run, a backfill, a
new integration) moves its category's escalation rate for as long as the batch
lasts: 1-4x the category's usual volume at a rate of its own for half an hour
to two hours is a +5 to +10 point "drift" of the category, indistinguishable in
the category's counts from a router that really degraded. Three such batches a
tier a day paged on-call hundreds of times a month (``bench/RESULTS-drift.md``).

The router's drift moves every tenant's traffic; a batch moves one tenant's.
So when a CUSUM crosses its threshold the detector asks for the window's counts
by tenant (``[change start, alarm minute]``, one small query per alarm) and
splits the window's evidence (the log-likelihood ratio the CUSUM summed,
``x * log_odds - n * per_trial`` per category) between tenants. The alarm is
**held** (no page; the CUSUM restarts from zero, so it re-alarms and is judged
again while the batch lasts) when

- at least two tenants sent traffic in the window,
- the tenant with the most evidence, ``S_T``, carries a positive amount, and
- the rest of the traffic, ``S_rest = S - S_T``, shows less than
  :data:`REST_SHARE` of its pro-rata share of the window's evidence ``S``,
  ``S_rest < REST_SHARE * S * n_rest / n``.

- and "a batch" (the rest in control, the tenant at a rate of its own)
  explains the window's counts better than "a shift everyone shares" (one
  rate per category for all): :func:`batch_support` is positive.

Two batches at once (two customers' evaluation runs in one category) are
judged the same way without both top tenants (``also`` names the second;
``tenant_trials`` and ``tenant_evidence`` are then the pair's).

The last condition is what keeps a real shift from being held. The tenant with
the most evidence is the largest of many noisy numbers: when the router
degraded for everyone, each tenant's share of the window's evidence is its
share of a small positive total plus its own binomial noise
(``log_odds * (x_t - n_t p)``), and with forty tenants the largest noise term
alone can exceed the total, which leaves "the rest" below its share. A batch
escalates at a rate of its own and leaves the rest at the in-control rate; a
tenant picked for its noise does neither. In the realistic replay a broken
verifier at night was held for up to an hour on ordinary tenants with 7-10 % of
the traffic before this test.

All evidence here is the window's raw log-likelihood ratio, in one unit (a
tolerance CUSUM scales a minute above its design volume down, see
``cusum.fold``, so its ``h`` is not in the same unit; the split compares like
with like).

One more case is judged twice: the rest shows its share but the top tenant
carries more evidence than all the rest together. The CUSUM's excursion often
began before the batch (the statistic wanders above zero on ordinary noise), and
that stretch counts for the rest: a few nats, enough to pass the test above.
Such a crossing is held **provisionally** and the CUSUM restarts; if it crosses
again within the same excursion it is judged on fresh evidence only, and then a
shift the rest also shows pages. The price is a second crossing's delay when one
tenant carries most of a real shift (a tenant with most of the traffic).

A router that degraded for everyone gives the rest about its pro-rata share of
the window's evidence (``S_rest ~ S n_rest / n``): the alarm
stands even when one tenant carries most of the traffic. One tenant's batch
leaves the rest in control (``S_rest`` negative or near 0): held. A shift
confined to one tenant is that tenant's story, and the tenant detector
(:mod:`routerwatch.drift.tenant`) judges it against the rest of the fleet. With
one tenant only (or the breakdown unavailable) nothing can be told apart and the
alarm stands: a single-tenant deployment pages as before.

The held alarm is reported in the verdict (``extra["held_alarms"]``): tenant,
its share of the window's trials and both evidences, so the decision is
reviewable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from routerwatch.drift.counts import MINUTE

#: The rest of the traffic must show at least this fraction of its pro-rata share of the window's evidence for the
#: alarm to stand. Under a shift shared by every tenant the rest shows about all of it (1.0); 0.5
#: leaves room for the rest's sampling noise while a batch's rest (in control, negative drift)
#: stays far below.
REST_SHARE = 0.5

#: tenant -> category -> (successes, trials) over an alarm's window.
TenantCounts = Mapping[str, Mapping[str, tuple[int, int]]]

#: ``(since, until)`` -> the window's counts by tenant (``until`` exclusive); None when unavailable.
TenantBreakdown = Callable[[datetime, datetime], "TenantCounts | None"]


@dataclass(frozen=True)
class TenantHold:
    """An alarm held because one tenant carried its evidence (module docstring)."""

    at: datetime
    since: datetime
    tenant: str
    tenant_trials: int
    window_trials: int
    tenant_evidence: float
    rest_evidence: float
    rest_needed: float
    provisional: bool = False
    also: tuple[str, ...] = ()  # a second tenant held with the first (two batches at once)
    batch_support: float = math.inf  # "a batch" over "a shared shift", log-likelihood (:func:`batch_support`)

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "since": self.since.isoformat(),
            "tenant": self.tenant,
            "tenant_share": self.tenant_trials / self.window_trials if self.window_trials else None,
            "tenant_trials": self.tenant_trials,
            "window_trials": self.window_trials,
            "tenant_evidence": round(self.tenant_evidence, 3),
            "rest_evidence": round(self.rest_evidence, 3),
            "rest_needed": round(self.rest_needed, 3),
            "provisional": self.provisional,
            "also": list(self.also),
            "batch_support": round(self.batch_support, 2),
        }


def reference_rate(log_odds: float, per_trial: float) -> float:
    """The in-control rate a Bernoulli CUSUM step ``x * log_odds - n * per_trial`` judges against.

    A step is ``x log(p1 q0 / (p0 q1)) + n log(q1 / q0)`` with ``per_trial = log(q0 / q1)``, so
    ``p0 = (e^per_trial - 1) / (e^log_odds - 1)`` (either direction), clamped into (0, 1).
    """
    if log_odds == 0:
        return 0.5
    p0 = math.expm1(per_trial) / math.expm1(log_odds)
    return min(max(p0, 1e-9), 1 - 1e-9)


def _loglik(x: int, n: int, p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return x * math.log(p) + (n - x) * math.log1p(-p)


def batch_support(counts: TenantCounts, held: Collection[str], reference: Mapping[str, float],
                  upward: bool = True) -> float:
    """Log-likelihood of "a batch" minus that of "a shift everyone shares", for the ``held`` tenants.

    *A batch*: the rest of the traffic is in control, at a rate of its own at or
    below the CUSUM's ``reference[category]`` (at or above it for a downward
    CUSUM: a tolerance design counts anything up to its reference as in
    control), and the held tenants at a rate of their own per category.
    *A shared shift*: everyone in a category escalates at one rate of its own.
    Positive favours the batch. A shift every tenant shares moves the rest beyond
    the reference (negative: the rest's misfit at the reference outweighs the
    held tenants' noise); a batch leaves the rest in control while the held
    tenants stand apart (positive, about ``z^2 / 2`` of their difference from the
    rest). Categories only the held tenants sent count for nothing.
    """
    by_cat: dict[str, list[int]] = {}  # category -> [held x, held n, rest x, rest n]
    for tenant, cats in counts.items():
        i = 0 if tenant in held else 2
        for cat, (x, n) in cats.items():
            if n > 0:
                acc = by_cat.setdefault(cat, [0, 0, 0, 0])
                acc[i] += x
                acc[i + 1] += n
    support = 0.0
    for cat, (hx, hn, rx, rn) in by_cat.items():
        if hn == 0 or rn == 0:
            continue
        pooled = (hx + rx) / (hn + rn)
        rest = min(rx / rn, reference[cat]) if upward else max(rx / rn, reference[cat])
        support += (_loglik(hx, hn, hx / hn) + _loglik(rx, rn, rest)
                    - _loglik(hx, hn, pooled) - _loglik(rx, rn, pooled))
    return support


def tenant_hold(
    counts: TenantCounts | None,
    *,
    log_odds: float,
    per_trial: Mapping[str, float],
    default_per_trial: float,
    at: datetime,
    since: datetime,
    second_look: bool = False,
    rest_share: float = REST_SHARE,
    linear: bool = False,
) -> TenantHold | None:
    """The hold for an alarm whose window had ``counts``, or None when the alarm stands.

    ``per_trial[category]`` is the CUSUM's compensator per trial of that
    category (``default_per_trial`` for categories not listed): the window's
    evidence of a tenant is ``sum_c x_c * log_odds - n_c * per_trial[c]``.
    ``second_look``: the previous crossing of this excursion was held
    provisionally, so no provisional hold is given again. ``linear``: the
    steps are ``x * sign - n * sign * rate`` (the hourly CUSUM's counts), not
    Bernoulli log-likelihood ratios, so the in-control rate is
    ``per_trial / log_odds`` rather than :func:`reference_rate`'s.
    """
    if not counts:
        return None
    evidence: dict[str, float] = {}
    trials: dict[str, int] = {}
    for tenant, by_cat in counts.items():
        s = 0.0
        n_t = 0
        for cat, (x, n) in by_cat.items():
            if n <= 0:
                continue
            s += x * log_odds - n * per_trial.get(cat, default_per_trial)
            n_t += n
        if n_t > 0:
            evidence[tenant], trials[tenant] = s, n_t
    if len(evidence) < 2:
        return None
    ranked = sorted(evidence, key=lambda t: (evidence[t], trials[t], t), reverse=True)
    top = ranked[0]
    if evidence[top] <= 0:
        return None
    total_n = sum(trials.values())
    rest_n = total_n - trials[top]
    window = sum(evidence.values())
    if window <= 0:
        return None  # the raw window shows no evidence to split: the alarm stands
    rest = window - evidence[top]
    needed = rest_share * window * rest_n / total_n
    # A tenant picked for its evidence is also picked for its noise: hold only when "a batch" explains
    # the window better than "a shift everyone shares" (module docstring), by a margin for the pick.
    reference = {cat: (min(max(charge / log_odds, 1e-9), 1 - 1e-9) if linear else reference_rate(log_odds, charge))
                 for cats in counts.values() for cat in cats
                 for charge in (per_trial.get(cat, default_per_trial),)}
    apart = batch_support(counts, {top}, reference, upward=log_odds >= 0)
    apart_enough = apart > 0
    if rest < needed and apart_enough:
        return TenantHold(at, since, top, trials[top], total_n, evidence[top], rest, needed, batch_support=apart)
    # Two batches at once (two customers' evaluation runs): the same test without both.
    if len(ranked) >= 3 and evidence[ranked[1]] > 0:
        second = ranked[1]
        rest2 = rest - evidence[second]
        needed2 = rest_share * window * (rest_n - trials[second]) / total_n
        pair = batch_support(counts, {top, second}, reference, upward=log_odds >= 0)
        if rest2 < needed2 and pair > 0:
            return TenantHold(at, since, top, trials[top] + trials[second], total_n,
                              evidence[top] + evidence[second], rest2, needed2, also=(second,), batch_support=pair)
    if evidence[top] > rest and apart_enough and not second_look:
        return TenantHold(at, since, top, trials[top], total_n, evidence[top], rest, needed, provisional=True,
                          batch_support=apart)
    return None


def hold_check(
    breakdown: TenantBreakdown | None,
    *,
    log_odds: float,
    per_trial: Mapping[str, float] | Callable[[datetime], Mapping[str, float]],
    default_per_trial: float,
    linear: bool = False,
) -> Callable[[datetime, datetime], TenantHold | None] | None:
    """The callback :func:`~routerwatch.drift.cusum.fold` calls at an alarm (``since``, alarm minute, second look).

    ``linear`` as in :func:`tenant_hold` (the hourly CUSUM).

    ``breakdown`` reads the counts by tenant for ``[since, at + 1 minute)``;
    None (no breakdown available) gives None: every alarm stands.
    """
    if breakdown is None:
        return None

    def check(since: datetime, at: datetime, second_look: bool = False,
              run_per_trial: float | None = None) -> TenantHold | None:
        # A single-rate CUSUM (no per-category compensators) charges each trial what its run was
        # charged on average: the same units as the statistic, clock profile included.
        rates = per_trial(at) if callable(per_trial) else per_trial  # per category, at the alarm's hour
        default = run_per_trial if run_per_trial is not None and not rates else default_per_trial
        return tenant_hold(breakdown(since, at + MINUTE), log_odds=log_odds, per_trial=rates,
                           default_per_trial=default, at=at, since=since, second_look=second_look, linear=linear)

    return check
