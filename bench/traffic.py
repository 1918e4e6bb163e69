"""Realistic traffic for the drift replay benchmark: clock-driven volume and mix, hour-level wobble, bursts.

Pure functions of a seed (``numpy.random.default_rng``), vectorised over
minutes. Minute ``i`` of every stream starts at ``T0 + i`` minutes (the same
grid as ``bench/scenarios.py``); ``T0`` is a Monday 00:00 UTC, so minute ``i``
falls in hour-of-week ``(i // 60) % 168`` (0 = Monday 00:00-01:00).

What production traffic does and iid Bernoulli minutes do not (issue 15):

- **volume follows the clock**: an hour-of-week profile, about 9x between the
  weekday afternoon peak and the small hours, weekends lower
  (:func:`hour_of_week_profile`); trials per minute are Poisson around it;
- **category mix follows the time of day**: each category's share of its tier
  swings over the day with its own amplitude and phase (:func:`mix_profile`);
- **hour-level random effect**: each series' escalation rate wobbles from hour
  to hour by more than binomial noise, ``logit p_h = logit p + u_h``,
  ``u_h ~ N(0, sd^2)`` independently per series and clock hour;
- **single-tenant batch bursts**: one tenant's batch lands in one category of a
  tier for 20-120 minutes with 1-4x the category's mean volume and an
  escalation rate of its own (``logit p + N(0, 0.5^2)``).

The fleet (:data:`FLEET`) is shaped like the issue's: 3 routers x 5 gated tiers,
66 router x tier x category series, tiers of 50 to 1,500 trials a minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MINUTES_PER_HOUR = 60
HOURS_PER_WEEK = 168
MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

#: Probabilists' Gauss-Hermite nodes/weights (weights sum to 1): E[f(Z)], Z ~ N(0, 1).
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(40)
_GH_W = _GH_W / _GH_W.sum()


def hour_of_week_profile(day_night: float = 9.0, weekend: float = 0.55, peak_hour: float = 15.0) -> np.ndarray:
    """Relative volume of each hour of the week (168 values, mean 1; hour 0 = Monday 00:00-01:00).

    A raised-cosine day with its peak at ``peak_hour`` and its trough 12 hours
    earlier: ``day_night`` is the weekday peak / trough ratio (hourly means);
    Saturday and Sunday are scaled by ``weekend``.
    """
    hod = np.arange(HOURS_PER_WEEK) % 24 + 0.5  # the middle of the hour
    dow = np.arange(HOURS_PER_WEEK) // 24
    shape = (1.0 - np.cos(2 * math.pi * (hod - peak_hour + 12) / 24)) / 2  # 0 at the trough, 1 at the peak
    shape = (shape - shape.min()) / (shape.max() - shape.min())
    level = 1.0 + (day_night - 1.0) * shape
    level = np.where(dow >= 5, level * weekend, level)
    return level / level.mean()


def mix_profile(shares: np.ndarray, amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Per-category share of its tier for each hour of the day: ``(categories, 24)``, columns sum to 1.

    ``share_c(h)`` is proportional to ``shares[c] * exp(amplitudes[c] * cos(2 pi (h - phases[c]) / 24))``.
    """
    hod = np.arange(24) + 0.5
    w = shares[:, None] * np.exp(amplitudes[:, None] * np.cos(2 * math.pi * (hod[None, :] - phases[:, None]) / 24))
    return w / w.sum(axis=0, keepdims=True)


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p / (1.0 - p))


def expit(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def wobble_moments(p: float, sd: float) -> tuple[float, float]:
    """Mean and variance of ``expit(logit p + u)``, ``u ~ N(0, sd^2)`` (Gauss-Hermite)."""
    if sd <= 0:
        return p, 0.0
    vals = expit(logit(p) + sd * _GH_X)
    m = float((_GH_W * vals).sum())
    return m, float((_GH_W * (vals - m) ** 2).sum())


@dataclass(frozen=True)
class Traffic:
    """One traffic type: which of the realistic effects are on."""

    name: str
    title: str
    diurnal: bool = True  # hour-of-week volume profile
    mix: bool = True  # time-of-day category mix
    wobble_sd: float = 0.0  # hour-level random effect on the logit scale
    bursts_per_day: float = 0.0  # single-tenant batch bursts per tier per day


TRAFFIC: tuple[Traffic, ...] = (
    Traffic("iid", "iid Bernoulli, constant volume and mix", diurnal=False, mix=False),
    Traffic("diurnal", "diurnal volume (9x day/night, weekends 0.55x) and time-of-day mix"),
    Traffic("wobble05", "diurnal + hour-level random effect, logit sd 0.05", wobble_sd=0.05),
    Traffic("wobble10", "diurnal + hour-level random effect, logit sd 0.10", wobble_sd=0.10),
    Traffic("wobble20", "diurnal + hour-level random effect, logit sd 0.20", wobble_sd=0.20),
    Traffic("bursts", "diurnal + single-tenant batch bursts (3 per tier per day)", bursts_per_day=3.0),
    Traffic("wobble15_bursts", "diurnal + logit sd 0.15 + bursts", wobble_sd=0.15, bursts_per_day=3.0),
)
TRAFFIC_BY_NAME = {t.name: t for t in TRAFFIC}


@dataclass(frozen=True)
class TierSpec:
    """One router x tier: mean trials a minute over the week, and its categories."""

    router: str
    tier: str
    volume: float
    categories: tuple[str, ...]
    rates: np.ndarray = field(compare=False)  # escalation rate per category
    shares: np.ndarray = field(compare=False)  # mean share of the tier's traffic per category
    amplitudes: np.ndarray = field(compare=False)  # time-of-day mix amplitude (log scale)
    phases: np.ndarray = field(compare=False)  # hour of the day where the category's share peaks

    @property
    def key(self) -> str:
        return f"{self.router}/{self.tier}"


ROUTERS = (("r1", 1.0), ("r2", 0.5), ("r3", 0.25))
#: Tier (mean trials a minute at the largest router, number of categories): 22 categories per router.
TIERS = (("t1", 1500.0, 5), ("t2", 900.0, 5), ("t3", 400.0, 4), ("t4", 200.0, 4), ("t5", 200.0, 4))


def build_fleet(seed: str = "fleet") -> tuple[TierSpec, ...]:
    """The benchmark fleet: 3 routers x 5 tiers, 66 router x tier x category series (fixed by ``seed``).

    Every tier's first category escalates at 0.30 and carries about 35 % of the
    tier (the series the change scenarios act on); the others escalate at
    0.05-0.50.
    """
    rng = np.random.default_rng(list(seed.encode()))
    out = []
    for router, factor in ROUTERS:
        for tier, volume, k in TIERS:
            rates = np.concatenate([[0.30], rng.uniform(0.05, 0.50, k - 1)])
            rest = rng.dirichlet(np.full(k - 1, 4.0)) * 0.65
            shares = np.concatenate([[0.35], rest])
            amplitudes = rng.uniform(0.2, 0.6, k) * rng.choice([-1.0, 1.0], k)
            phases = rng.uniform(0, 24, k)
            out.append(TierSpec(router, tier, volume * factor, tuple(f"c{j + 1}" for j in range(k)),
                                rates, shares, amplitudes, phases))
    return tuple(out)


FLEET = build_fleet()
FLEET_SERIES = sum(len(t.categories) for t in FLEET)
FLEET_TIERS = len(FLEET)


@dataclass(frozen=True)
class Change:
    """A change from minute ``at`` on: rates (per category, absolute) and/or shares replaced or shifted."""

    at: int
    add: dict[int, float] = field(default_factory=dict)  # category index -> points added to its rate
    rates: np.ndarray | None = None  # every category's rate replaced by these
    shares: np.ndarray | None = None  # the tier's mean shares replaced by these (same time-of-day swing)


def seed_rng(*parts: object) -> np.random.Generator:
    """A generator seeded from a readable key, e.g. ``seed_rng("quiet", "wobble10", "r1/t1", 3)``."""
    return np.random.default_rng(list("/".join(map(str, parts)).encode()))


@dataclass(frozen=True)
class Burst:
    """One tenant's batch: category index, minutes ``[b0, b1)`` of the stream, its own counts per minute."""

    category: int
    b0: int
    b1: int
    trials: np.ndarray
    escalated: np.ndarray
    tenant: str


#: Tenants sharing a tier's ordinary traffic (outside batches), with Dirichlet(1) shares: the largest
#: of 40 carries about 10 % of the traffic.
BASE_TENANTS = 40


def tenant_shares(spec: TierSpec) -> np.ndarray:
    """The tier's ordinary traffic split between :data:`BASE_TENANTS` tenants (fixed per tier)."""
    return seed_rng("tenants", spec.key).dirichlet(np.ones(BASE_TENANTS))


def tenant_counts(spec: TierSpec, xs: np.ndarray, ns: np.ndarray, bursts: list[Burst], a: int, b: int,
                  categories: list[int]) -> dict[str, dict[str, tuple[int, int]]]:
    """Counts by tenant and category over stream minutes ``[a, b)``: what the scheduler reads from ``attempts``.

    A batch's counts belong to its tenant; the rest of each category's counts is
    split between the ordinary tenants (multinomially by :func:`tenant_shares`,
    escalations hypergeometrically: every ordinary tenant escalates alike),
    seeded by the window so that a re-read gives the same answer.
    """
    a, b = max(0, a), min(ns.shape[1], b)
    out: dict[str, dict[str, tuple[int, int]]] = {}
    shares = tenant_shares(spec)
    for j in categories:
        cat = spec.categories[j]
        x, n = int(xs[j, a:b].sum()), int(ns[j, a:b].sum())
        for burst in bursts:
            if burst.category != j or burst.b1 <= a or burst.b0 >= b:
                continue
            lo, hi = max(a, burst.b0) - burst.b0, min(b, burst.b1) - burst.b0
            bx, bn = int(burst.escalated[lo:hi].sum()), int(burst.trials[lo:hi].sum())
            px, pn = out.setdefault(burst.tenant, {}).get(cat, (0, 0))
            out[burst.tenant][cat] = (px + bx, pn + bn)
            x, n = x - bx, n - bn
        if n <= 0:
            continue
        rng = seed_rng("split", spec.key, j, a, b)
        nt = rng.multinomial(n, shares)
        xt = rng.multivariate_hypergeometric(nt, x) if x > 0 else np.zeros_like(nt)
        for t in np.flatnonzero(nt):
            out.setdefault(f"tenant{t}", {})[cat] = (int(xt[t]), int(nt[t]))
    return out


def tier_stream(spec: TierSpec, traffic: Traffic, rng: np.random.Generator, length: int, *,
                change: Change | None = None, start: int = 0,
                bursts: list[Burst] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(escalated, trials)`` per category and minute, shape ``(categories, length)``, minutes ``[start, start+length)``.

    Deterministic given ``rng``'s state. Memory is a few arrays of
    ``categories x length`` (a tier-month is about 1 MB per array). ``bursts``,
    when given, receives every batch drawn (for :func:`tenant_counts`); it
    draws nothing more from ``rng``.
    """
    k = len(spec.categories)
    minutes = np.arange(start, start + length)
    hours = minutes // MINUTES_PER_HOUR
    how = hours % HOURS_PER_WEEK
    hod = hours % 24
    volume = spec.volume * (hour_of_week_profile()[how] if traffic.diurnal else np.ones(length))
    shares_by_hour = (mix_profile(spec.shares, spec.amplitudes, spec.phases) if traffic.mix
                      else np.repeat(spec.shares[:, None], 24, axis=1))
    shares = shares_by_hour[:, hod]  # (k, length)
    base_logit = logit(spec.rates)[:, None] * np.ones((1, length))
    if change is not None and change.shares is not None:
        after = (mix_profile(change.shares, spec.amplitudes, spec.phases) if traffic.mix
                 else np.repeat(change.shares[:, None], 24, axis=1))
        cut = max(0, change.at - start)
        shares[:, cut:] = after[:, hod[cut:]]
    trials = rng.poisson(volume[None, :] * shares)
    # Hour-level random effect: one draw per series and clock hour.
    if traffic.wobble_sd > 0:
        first = hours[0]
        u = rng.normal(0.0, traffic.wobble_sd, (k, hours[-1] - first + 1))
        lg = base_logit + u[:, hours - first]
    else:
        lg = base_logit
    p = expit(lg)
    if change is not None:
        cut = max(0, change.at - start)
        if change.rates is not None:
            p[:, cut:] = change.rates[:, None]
        for j, pts in change.add.items():
            p[j, cut:] = np.clip(p[j, cut:] + pts, 0.0, 1.0)
    escalated = rng.binomial(trials, p)
    if traffic.bursts_per_day > 0:
        days = length / MINUTES_PER_DAY
        for _ in range(rng.poisson(traffic.bursts_per_day * days)):
            j = int(rng.choice(k, p=spec.shares))
            b0 = int(rng.integers(0, length))
            dur = int(rng.integers(20, 121))
            b1 = min(length, b0 + dur)
            extra = rng.poisson(rng.uniform(1.0, 4.0) * spec.volume * spec.shares[j], b1 - b0)
            pb = float(expit(logit(spec.rates[j]) + rng.normal(0.0, 0.5)))
            trials[j, b0:b1] += extra
            bx = rng.binomial(extra, pb)
            escalated[j, b0:b1] += bx
            if bursts is not None:
                bursts.append(Burst(j, b0, b1, extra, bx, f"batch{len(bursts)}"))
    return escalated, trials


def hourly(values: np.ndarray) -> np.ndarray:
    """Sum per clock hour along the last axis (length a multiple of 60 after truncation)."""
    n = values.shape[-1] // MINUTES_PER_HOUR * MINUTES_PER_HOUR
    return values[..., :n].reshape(*values.shape[:-1], -1, MINUTES_PER_HOUR).sum(axis=-1)
