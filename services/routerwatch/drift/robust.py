"""Keep an incident inside the learning window out of what "normal" is.

A baseline learned over a week that held an incident (two days of a degraded
verifier, an afternoon's tenant batch, an hour of a provider's bad answers)
would make the incident part of ``p0`` and of the hour-level wobble: the
detector would then judge the next incident against the last one and stay
quiet. :func:`incident_hours` finds such stretches in the window's clock hours
so that :func:`~routerwatch.drift.baseline.learn_baseline` can leave them out
(and say which it left out, so the baseline stays reviewable).

Method, all on the hour's empirical logit ``l_h = log((x_h + 1/2) / (n_h - x_h + 1/2))``
with sampling variance ``v_h = 1/(x_h + 1/2) + 1/(n_h - x_h + 1/2)``:

1. a robust centre: the median of ``l_h``, one vote per hour (an incident
   covering less than half the window's hours cannot move it far, however many
   trials it brought: a tenant's batch at 100x the usual volume included);
2. a robust wobble: the ``tau >= 0`` at which the median of
   ``|l_h - centre| / sqrt(v_h + tau^2)`` is the normal's 0.6745 (the MAD
   estimate of the hour effect's sd, with each hour's own sampling noise taken
   out; 0 when sampling explains the spread);
3. standardised residuals ``z_h`` and a segment scan: the run of consecutive
   hours with the largest ``|sum z_h| / sqrt(length)``. A stretch above
   :data:`SCAN_THRESHOLD` is an incident (the largest such statistic of 168
   in-control hours is below 4.7 in 999 weeks of 1,000; 5.0 leaves room for the
   estimated centre and wobble), provided it covers under half of the usable
   hours (a majority is the new normal, not an incident). Up to
   :data:`MAX_INCIDENTS` stretches are removed; after each, centre and wobble
   are estimated again without it and the scan repeated.

A change still running at the window's end and covering less than half of it
is treated as an incident too: a drift that began two days before the baseline
was learned must not become the new normal. An intended change is re-learned
after it has run long enough (``routerwatch baseline learn --until ...``).

A +10-point incident of two days at 100 trials a minute scores about 30; +3
points for two days, about 9; one hour of a tenant's batch at +0.5 on the logit
scale, 4-10 depending on its size. Pure functions, O(H^2) in the window's hours
per scan (168 hours: about 14,000 segments).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from routerwatch.drift.counts import MinuteCount

#: A stretch of hours whose scan statistic reaches this is an incident (module docstring).
SCAN_THRESHOLD = 5.0

#: Most incidents removed from one window.
MAX_INCIDENTS = 3

#: Fewest usable hours the search needs (fewer: nothing is removed).
MIN_HOURS = 12

_MAD_Z = 0.6744897501960817  # the median of |N(0, 1)|


@dataclass(frozen=True)
class HourCount:
    """One clock hour of a series: its start, successes and trials."""

    hour: datetime
    successes: int
    trials: int


def clock_hours(rows: Iterable[MinuteCount]) -> list[HourCount]:
    """Per-minute counts summed per clock hour, in time order (an hour with rows but no trials included)."""
    acc: dict[datetime, list[int]] = {}
    for r in rows:
        a = acc.setdefault(r.minute.replace(minute=0, second=0, microsecond=0), [0, 0])
        a[0] += r.successes
        a[1] += r.trials
    return [HourCount(h, x, n) for h, (x, n) in sorted(acc.items())]


@dataclass(frozen=True)
class Incident:
    """A stretch of clock hours left out of a baseline: ``[start, end)`` and its scan statistic."""

    start: datetime
    end: datetime
    hours: int
    statistic: float
    direction: str  # "up" (the rate was high) or "down"


def _weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    pairs = sorted(zip(values, weights))
    half = sum(weights) / 2.0
    acc = 0.0
    for v, w in pairs:
        acc += w
        if acc >= half:
            return v
    return pairs[-1][0]


def robust_wobble(dev: Sequence[float], var: Sequence[float]) -> float:
    """The ``tau`` at which the median of ``|dev| / sqrt(var + tau^2)`` is 0.6745 (0 if already below)."""

    def med(tau: float) -> float:
        s = sorted(abs(d) / math.sqrt(v + tau * tau) for d, v in zip(dev, var))
        k = len(s)
        return s[k // 2] if k % 2 else (s[k // 2 - 1] + s[k // 2]) / 2

    if not dev or med(0.0) <= _MAD_Z:
        return 0.0
    lo, hi = 0.0, max(abs(d) for d in dev) + 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if med(mid) > _MAD_Z else (lo, mid)
    return hi


def _best_segment(z: Sequence[float]) -> tuple[float, int, int]:
    """``(statistic, i, j)``: the run ``z[i:j]`` with the largest ``|sum| / sqrt(j - i)``."""
    prefix = [0.0]
    for v in z:
        prefix.append(prefix[-1] + v)
    best, bi, bj = 0.0, 0, 0
    n = len(z)
    for i in range(n):
        pi = prefix[i]
        for j in range(i + 1, n + 1):
            s = abs(prefix[j] - pi) / math.sqrt(j - i)
            if s > best:
                best, bi, bj = s, i, j
    return best, bi, bj


def incident_hours(
    hours: Sequence[HourCount], *, min_trials: int = 30, threshold: float = SCAN_THRESHOLD,
    max_incidents: int = MAX_INCIDENTS, min_hours: int = MIN_HOURS,
) -> list[Incident]:
    """The incidents in ``hours`` (in time order; hours with fewer than ``min_trials`` trials are ignored).

    Each incident's ``[start, end)`` runs from its first hour to one hour past
    its last; hours of too little traffic inside it are left out with it.
    """
    from datetime import timedelta

    usable = [h for h in sorted(hours, key=lambda h: h.hour) if h.trials >= max(1, min_trials)]
    if len(usable) < max(2, min_hours):
        return []
    logit = [math.log((h.successes + 0.5) / (h.trials - h.successes + 0.5)) for h in usable]
    var = [1.0 / (h.successes + 0.5) + 1.0 / (h.trials - h.successes + 0.5) for h in usable]
    keep = list(range(len(usable)))
    found: list[Incident] = []
    for _ in range(max(0, max_incidents)):
        # Centre and wobble of the hours still kept (an incident removed no longer pulls them).
        centre = _weighted_median([logit[k] for k in keep], [1.0] * len(keep))
        dev = {k: logit[k] - centre for k in keep}
        tau = robust_wobble([dev[k] for k in keep], [var[k] for k in keep])
        z = {k: dev[k] / math.sqrt(var[k] + tau * tau) for k in keep}
        stat, i, j = _best_segment([z[k] for k in keep])
        if stat < threshold or (j - i) * 2 >= len(keep):
            break
        idx = keep[i:j]
        total = sum(z[k] for k in idx)
        found.append(Incident(usable[idx[0]].hour, usable[idx[-1]].hour + timedelta(hours=1), len(idx), stat,
                              "up" if total > 0 else "down"))
        keep = keep[:i] + keep[j:]
    return sorted(found, key=lambda inc: inc.start)
