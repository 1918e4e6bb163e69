"""Seeded per-minute count streams with known change points: the inputs of the drift replay benchmark.

Every stream is pure Python and reproducible from a string seed
(``random.Random("<scenario>/<run>")``). Minute ``i`` of a stream starts at
``T0 + i`` minutes; a stream is ``history`` quiet minutes (the last
``BASELINE_MINUTES`` of them are what the frozen baseline is learned from),
then ``pre`` quiet minutes the detectors watch before anything changes, then
``horizon`` minutes after the change point ``change = history + pre``.

Volumes follow the benchmark brief: 100 trials a minute per series (a
category series, a tier's pooled series, a latency series, a tenant).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from routerwatch.drift import MinuteCount

T0 = datetime(2026, 1, 5, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
#: A baseline is learned from the last 7 days of history (the scheduler's default ``baseline_window_hours``).
BASELINE_MINUTES = 7 * 1440
VOLUME = 100

_GRID: list[datetime] = []


def minute(i: int) -> datetime:
    """Start of minute ``i`` of every stream."""
    if i >= len(_GRID):
        start = len(_GRID)
        _GRID.extend(T0 + k * MINUTE for k in range(start, max(i + 1, 2 * start, 4096)))
    return _GRID[i]


def grid(length: int) -> list[datetime]:
    """The shared list of minute starts, at least ``length`` long (index ``i`` is minute ``i``)."""
    minute(length)
    return _GRID


def index(at: datetime) -> int:
    """Minute index of ``at`` (inverse of :func:`minute`)."""
    return int((at - T0) / MINUTE)


_CDF: dict[tuple[int, float], tuple[int, list[float]]] = {}


def _table(n: int, p: float) -> tuple[int, list[float]]:
    key = (n, p)
    found = _CDF.get(key)
    if found is not None:
        return found
    if n <= 0 or p <= 0.0:
        table: tuple[int, list[float]] = (0, [1.0])
    elif p >= 1.0:
        table = (n, [1.0])
    else:
        lp, lq, lgn = math.log(p), math.log1p(-p), math.lgamma(n + 1)
        probs = [math.exp(lgn - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq)
                 for k in range(n + 1)]
        lo = 0
        while lo < n and probs[lo] < 1e-15:
            lo += 1
        cdf, acc = [], 0.0
        for q in probs[lo:]:
            acc += q
            cdf.append(acc)
        cdf[-1] = 1.0
        table = (lo, cdf)
    _CDF[key] = table
    return table


def binomial(rng: random.Random, n: int, p: float) -> int:
    """One ``Bin(n, p)`` draw by inverse CDF (cached table per ``(n, p)``)."""
    lo, cdf = _table(n, p)
    return lo + bisect_left(cdf, rng.random())


def rate_stream(rng: random.Random, length: int, *, n: int, before: float, after: float,
                change: int | None) -> tuple[list[int], list[int]]:
    """``(successes, trials)`` per minute: ``Bin(n, before)`` until ``change``, ``Bin(n, after)`` from it."""
    lo_b, cdf_b = _table(n, before)
    lo_a, cdf_a = _table(n, after)
    rand = rng.random
    cut = length if change is None else min(change, length)
    xs = [lo_b + bisect_left(cdf_b, rand()) for _ in range(cut)]
    xs += [lo_a + bisect_left(cdf_a, rand()) for _ in range(length - cut)]
    return xs, [n] * length


def mix_stream(rng: random.Random, length: int, *, total: int, shares: tuple[Mapping[str, float], Mapping[str, float]],
               rates: tuple[Mapping[str, float], Mapping[str, float]], change: int | None
               ) -> dict[str, tuple[list[int], list[int]]]:
    """Per-category ``(successes, trials)`` of one tier: ``total`` requests a minute split by ``shares``.

    Two categories (the benchmark's case): the first category's trials are
    ``Bin(total, share)``, the second gets the rest; each category escalates at
    its own rate. ``shares``/``rates`` are (before, after) the change.
    """
    cats = list(shares[0])
    if len(cats) != 2:
        raise ValueError("mix_stream splits a tier into exactly two categories")
    first, second = cats
    out: dict[str, tuple[list[int], list[int]]] = {c: ([], []) for c in cats}
    for i in range(length):
        k = 0 if change is None or i < change else 1
        n1 = binomial(rng, total, shares[k][first])
        n2 = total - n1
        for cat, n in ((first, n1), (second, n2)):
            xs, ns = out[cat]
            xs.append(binomial(rng, n, rates[k][cat]))
            ns.append(n)
    return out


def to_counts(xs: list[int], ns: list[int], start: int = 0, stop: int | None = None) -> list[MinuteCount]:
    """``MinuteCount`` rows of minutes ``[start, stop)``."""
    stop = len(xs) if stop is None else stop
    minute(stop)
    grid = _GRID
    return [MinuteCount(grid[i], xs[i], ns[i]) for i in range(start, stop)]


@dataclass(frozen=True)
class Target:
    """What the brief asks of routerwatch on a scenario, and how it is judged."""

    text: str
    detector: str  # the row the target is judged on
    kind: str  # "median_delay", "max_delay", "no_pages", "budget"
    limit: float
    about: float | None = None  # "about" tolerance: up to this counts as borderline, not a miss


@dataclass(frozen=True)
class Scenario:
    """One change scenario. ``kind`` picks the stream and the detectors that watch it."""

    name: str
    title: str
    kind: str  # "rate" | "mix" | "latency" | "tenant"
    history: int
    pre: int
    horizon: int
    params: dict[str, Any] = field(default_factory=dict)
    targets: tuple[Target, ...] = ()

    @property
    def change(self) -> int:
        return self.history + self.pre

    @property
    def length(self) -> int:
        return self.history + self.pre + self.horizon


MIX_RATES = {"easy": 0.10, "hard": 0.50}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "drift_3pt", "escalation drift 0.30 -> 0.33", "rate", BASELINE_MINUTES, 360, 720,
        {"before": 0.30, "after": 0.33},
        (Target("3-point drift caught in about an hour or less (median)", "rw.any", "median_delay", 60, 75),),
    ),
    Scenario(
        "drift_10pt", "escalation drift 0.30 -> 0.40", "rate", BASELINE_MINUTES, 360, 360,
        {"before": 0.30, "after": 0.40},
        (Target("10-point drift caught in about 15 minutes (median)", "rw.any", "median_delay", 15, 20),),
    ),
    Scenario(
        "broken_verifier", "broken verifier 0.30 -> 0.90", "rate", BASELINE_MINUTES, 360, 120,
        {"before": 0.30, "after": 0.90},
        (Target("broken verifier caught in under 5 minutes (every run)", "rw.any", "max_delay", 4),),
    ),
    Scenario(
        "tier_within_3pt", "tier: every category +3 points, mix unchanged (80/20)", "mix", BASELINE_MINUTES, 360, 720,
        {"shares": ({"easy": 0.8, "hard": 0.2}, {"easy": 0.8, "hard": 0.2}),
         "rates": (MIX_RATES, {"easy": 0.13, "hard": 0.53})},
    ),
    Scenario(
        "mix_shift", "tier: category mix 80/20 -> 50/50, no within-category change", "mix", BASELINE_MINUTES, 360, 720,
        {"shares": ({"easy": 0.8, "hard": 0.2}, {"easy": 0.5, "hard": 0.5}), "rates": (MIX_RATES, MIX_RATES)},
        (Target("pure mix shift never pages at category level", "rw.cat_any", "no_pages", 0),
         Target("pure mix shift does not page the risk-adjusted tier detector", "rw.tier", "no_pages", 0)),
    ),
    Scenario(
        "latency_regression", "latency: bad share 2% -> 20% (SLO 95% under target)", "latency",
        3 * 1440, 360, 1440, {"before": 0.02, "after": 0.20, "objective": 0.95},
    ),
    Scenario(
        "tenant_abuse", "tenant abuse: 1 of 50 tenants 0.30 -> 0.80", "tenant", BASELINE_MINUTES, 360, 240,
        {"tenants": 50, "fleet": 0.30, "abusive": 0.80},
    ),
)

SCENARIO_BY_NAME = {s.name: s for s in SCENARIOS}


@dataclass(frozen=True)
class QuietSpec:
    """Quiet streams for false-alarm measurement: ``units`` streams of ``days`` each (after history)."""

    name: str
    title: str
    kind: str  # "rate" | "mix" | "latency" | "tenant"
    units: int
    days: float
    quick_units: int
    quick_days: float


QUIET: tuple[QuietSpec, ...] = (
    QuietSpec("quiet_category", "quiet category series (p 0.30)", "rate", 100, 30, 4, 1),
    QuietSpec("quiet_tier", "quiet tiers (80/20 of 0.10/0.50)", "mix", 20, 30, 2, 1),
    QuietSpec("quiet_latency", "quiet latency series (bad 2%)", "latency", 10, 30, 1, 1),
    QuietSpec("quiet_tenants", "quiet tenant fleet (50 x p 0.30)", "tenant", 1, 30, 1, 0.5),
)

QUIET_BY_NAME = {q.name: q for q in QUIET}
