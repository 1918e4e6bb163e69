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

Two batches at once (two customers' evaluation runs in one category) are
judged the same way without both top tenants (``also`` names the second;
``tenant_trials`` and ``tenant_evidence`` are then the pair's).

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

from collections.abc import Callable, Mapping
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
        }


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
) -> TenantHold | None:
    """The hold for an alarm whose window had ``counts``, or None when the alarm stands.

    ``per_trial[category]`` is the CUSUM's compensator per trial of that
    category (``default_per_trial`` for categories not listed): the window's
    evidence of a tenant is ``sum_c x_c * log_odds - n_c * per_trial[c]``.
    ``second_look``: the previous crossing of this excursion was held
    provisionally, so no provisional hold is given again.
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
    if rest < needed:
        return TenantHold(at, since, top, trials[top], total_n, evidence[top], rest, needed)
    # Two batches at once (two customers' evaluation runs): the same test without both.
    if len(ranked) >= 3 and evidence[ranked[1]] > 0:
        second = ranked[1]
        rest2 = rest - evidence[second]
        needed2 = rest_share * window * (rest_n - trials[second]) / total_n
        if rest2 < needed2:
            return TenantHold(at, since, top, trials[top] + trials[second], total_n,
                              evidence[top] + evidence[second], rest2, needed2, also=(second,))
    if evidence[top] > rest and not second_look:
        return TenantHold(at, since, top, trials[top], total_n, evidence[top], rest, needed, provisional=True)
    return None


def hold_check(
    breakdown: TenantBreakdown | None,
    *,
    log_odds: float,
    per_trial: Mapping[str, float] | Callable[[datetime], Mapping[str, float]],
    default_per_trial: float,
) -> Callable[[datetime, datetime], TenantHold | None] | None:
    """The callback :func:`~routerwatch.drift.cusum_run.fold` calls at an alarm (``since``, alarm minute, second look).

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
                           default_per_trial=default, at=at, since=since, second_look=second_look)

    return check
