"""Bernoulli CUSUMs on per-minute binomial counts, with thresholds derived from a false-alarm budget.

A one-sided CUSUM accumulates the log-likelihood ratio of "the rate moved from
``p0`` to ``p1``" against "it is still ``p0``", minute by minute::

    llr_t = x_t * log(p1 / p0) + (n_t - x_t) * log((1 - p1) / (1 - p0))
    S_t   = max(0, S_{t-1} + llr_t)            alarm when S_t >= h

for ``x_t`` successes of ``n_t`` trials. Two of them (``up``: p1 = p0 + delta,
``down``: p1 = p0 - delta) watch one series. This is the optimal detector of a
persistent shift of that size (Moustakides/Lorden), and unlike a fixed
threshold on the per-minute rate its sensitivity does not depend on volume.

The threshold ``h`` is not tuned by hand: :func:`threshold_for_arl` computes it
from a target in-control average run length (ARL0, minutes between false
alarms) by the Brook-Evans Markov chain method (the statistic discretised into
states on ``[0, h)``, the in-control run length obtained from one LU
factorisation for every candidate ``h``). When only a few successes separate 0
from ``h`` (large shifts, rare events) the ARL is a step function of ``h`` that
a grid smooths over, and ``h`` is refined with an exact computation over the
CUSUM's excursions (Page's renewal argument, :func:`_excursion_arl`). The budget
"one false page per month across every series" gives the ARL0 per one-sided
CUSUM through :func:`arl0_for_budget`. Results are cached on rounded inputs
because the scheduler asks for the same few designs for every series each minute.

Degenerate inputs are judged by a stated rule or skipped, never raised on
(:func:`plan_cusum`): rates within :data:`RATE_EPS` of 0 or 1 are clamped into
``[RATE_EPS, 1 - RATE_EPS]`` for the design, volumes above
:data:`MAX_DESIGN_TRIALS` are designed at that volume, and a rate outside
``(0, 1)``, a volume that is not a positive number or a shift with no room
gives a :class:`DesignSkip` whose reason the verdict carries.

The computation assumes ``n`` trials every minute (the baseline's mean
volume). With diurnal traffic the true false-alarm rate differs from the
target, within a hard bound: each excursion of a likelihood-ratio CUSUM
crosses ``h`` with probability at most ``exp(-h)`` whatever the volume (Wald),
and at most one excursion starts per minute, so ARL0 >= exp(h) minutes for any
traffic pattern (about a tenth of the target at the fleet budget).

Rates that wobble from hour to hour by more than binomial noise (the usual
case for escalation rates: prompt batches, tenant bursts, the hour's users) break
the iid design however ``h`` is chosen: at 1,000 trials a minute one hour 1.5 sd
of the wobble high is as much evidence as a real shift. ``plan_cusum(...,
hour_sd=tau)`` with the baseline's measured hour-level sd (``Baseline.hour_sd``)
gives the tolerance design of :mod:`routerwatch.drift.overdispersion` instead:
judged against the rate at the edge of the plausible wobble, with ``h`` from run
lengths computed under the fitted random-effect model. ``hour_sd = 0`` is the
iid design below, unchanged.

The same pure fold (:func:`run_cusum`) serves the live scheduler (fold the
minutes since the last call, passing the previous :class:`CusumState`; or fold
a long look-back window from zero each time) and a benchmark replaying history
(fold everything; :attr:`CusumTrace.alarms` lists every page it would have sent).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from routerwatch.drift.attribution import TenantBreakdown, hold_check
from routerwatch.drift.baseline import Baseline, baseline_problem
from routerwatch.drift.hourly import HOUR, HourlyDesign, hourly_counts, plan_hourly, run_hourly
from routerwatch.drift.overdispersion import quantize_sd, shift_logit, tolerance_design
from routerwatch.drift.counts import MINUTE, MINUTES_PER_MONTH, MinuteCount, check_counts, merge_by_minute
from routerwatch.drift.verdict import Severity, Signal, Status, Verdict, fmt_labels, silent, window_text

Direction = Literal["up", "down"]

#: Default resolution of the Markov chain: grid points up to Lorden's bound on ``h``. At 120 the
#: computed ARL0 is within a few per cent of the converged value for the designs routerwatch uses
#: (see tests), at well under a second per design.
CHAIN_STATES = 120

#: Rates closer than this to 0 or 1 are designed as if they were this close. Near 1, ``1 - p``
#: keeps only ``16 + log10(RATE_EPS)`` significant digits and the odds overflow long before
#: ``p`` reaches 1 (0.99995 rounded to 1.0 in the design's cache key and divided by zero).
#: Clamping is conservative: it assumes the baseline is less extreme than it was, so a move toward
#: the middle is less surprising and pages no sooner.
RATE_EPS = 1e-9

#: Trials per minute above which the design is sized as if there were this many. The binomial
#: PMF's width grows as ``sqrt(n)`` and its log-gamma terms lose precision past ~1e12. At this
#: volume even a shift of a tenth of a point leaves no in-control minute with positive evidence
#: (the design is "any positive evidence alarms"), and Wald's bound (ARL0 >= exp(h) at any
#: volume, module docstring) holds whatever the real volume.
MAX_DESIGN_TRIALS = 1e8

#: Work budget (multiply-adds) of one exact convolution in :func:`_sum_pmf`; past it the sum of
#: binomials is replaced by the binomial with the same mean and variance (see there).
CONVOLUTION_BUDGET = 4_000_000


def arl0_for_budget(false_pages_per_month: float = 1.0, series: int = 1, sides: int = 2) -> float:
    """In-control ARL (minutes) each one-sided CUSUM needs to meet a false-page budget.

    ``series`` CUSUM pairs with ``sides`` one-sided CUSUMs each, paging at most
    ``false_pages_per_month`` times a month in all: every one-sided CUSUM may
    false-alarm once every ``minutes_per_month * series * sides / pages`` minutes.
    """
    if false_pages_per_month <= 0 or series < 1 or sides < 1:
        raise ValueError("need a positive page budget, at least one series and one side")
    return MINUTES_PER_MONTH * series * sides / false_pages_per_month


def pages_text(false_pages_per_month: float) -> str:
    """``1 false page per month``, ``2 false pages per month``, ``0.5 false pages per month``."""
    return f"{false_pages_per_month:g} false page{'' if false_pages_per_month == 1 else 's'} per month"


def spacing_text(minutes: float) -> str:
    """A mean spacing between false alarms in the unit a person reads: ``41 days``, ``8.1 years``."""
    if not math.isfinite(minutes):
        return "never (no false alarm is possible)"
    for unit, size in (("years", 365.25 * 24 * 60), ("months", MINUTES_PER_MONTH), ("days", 24 * 60),
                       ("hours", 60), ("minutes", 1)):
        if minutes >= 2 * size or unit == "minutes":
            value = minutes / size
            return f"{value:,.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class FalseAlarmBudget:
    """The fleet's false-alarm budget as people state it, and what it leaves each one-sided CUSUM.

    ``pages_per_month`` false pages a month in all (``ROUTERWATCH_SCHEDULER__FALSE_PAGES_PER_MONTH``)
    across ``series`` watched series, shared equally by their ``cusums`` one-sided CUSUMs (a
    two-sided series has two, a tier three: both drift sides and the surge). ``str()`` is the
    sentence pages and ``routerwatch alerts`` print: "1 false page per month across the 400
    watched series".
    """

    pages_per_month: float
    series: int
    cusums: int

    def __post_init__(self) -> None:
        if not self.pages_per_month > 0 or self.series < 1 or self.cusums < 1:
            raise ValueError("need a positive page budget, at least one series and one CUSUM")

    @property
    def arl0_minutes(self) -> float:
        """In-control ARL each one-sided CUSUM needs: :func:`arl0_for_budget` over all of them."""
        return arl0_for_budget(self.pages_per_month, series=self.cusums, sides=1)

    def __str__(self) -> str:
        return f"{pages_text(self.pages_per_month)} across the {self.series:,} watched series"

    def share_text(self, arl0_minutes: float | None = None) -> str:
        """The budget and each CUSUM's share of it; ``arl0_minutes``: one detector's own ARL0 when it differs."""
        text = (f"{self} (each of their {self.cusums:,} one-sided CUSUMs may false-alarm once per "
                f"{spacing_text(self.arl0_minutes)}")
        if arl0_minutes is not None and not math.isclose(arl0_minutes, self.arl0_minutes, rel_tol=1e-3):
            text += f"; this threshold: once per {spacing_text(arl0_minutes)}"
        return text + ")"


def threshold_text(arl0_minutes: float, budget: FalseAlarmBudget | None) -> str:
    """What a detector's threshold is sized for, in words: the fleet budget when known, else its own spacing."""
    if budget is None:
        return f"one false alarm per {spacing_text(arl0_minutes)}"
    return f"the false-alarm budget of {budget.share_text(arl0_minutes)}"


def alternative_rate(p0: float, direction: Direction, delta: float, ratio: float | None = None) -> float | None:
    """The shifted rate ``p1`` a CUSUM is tuned to detect, or None if the rate cannot move that way.

    ``up``: ``p0 + delta``, or ``p0 * ratio`` if that is larger (relative shifts
    suit rare events such as one failure mode: +3 points means nothing at
    0.2 %); ``down``: ``p0 - delta``, or ``p0 / ratio`` if that is smaller. The
    result is kept inside ``(0, 1)`` by going at most half-way to the bound.
    """
    if not 0 < p0 < 1:
        raise ValueError(f"p0 must be inside (0, 1), got {p0}")
    if direction == "up":
        p1 = p0 + delta
        if ratio:
            p1 = max(p1, p0 * ratio)
        p1 = min(p1, p0 + (1 - p0) / 2)
        return p1 if p1 > p0 else None
    if direction == "down":
        p1 = p0 - delta
        if ratio:
            p1 = min(p1, p0 / ratio)
        p1 = max(p1, p0 / 2)
        return p1 if p1 < p0 else None
    raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")


def odds_ratio(p0: float, p1: float) -> float:
    """``odds(p1) / odds(p0)``: the risk-adjusted CUSUM's alternative, and the plain one's."""
    return (p1 * (1 - p0)) / (p0 * (1 - p1))


# ---------------------------------------------------------------------------------------------
# Run-length computation (Brook-Evans Markov chain) and threshold search
# ---------------------------------------------------------------------------------------------


def _sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant digits: the cache key of a design input."""
    return float(f"{x:.{digits}g}")


def _design_rate(p: float, eps: float = RATE_EPS) -> float:
    """``p`` clamped into ``[eps, 1 - eps]`` (see :data:`RATE_EPS`).

    Shifted rates use ``eps = RATE_EPS / 2``: :func:`alternative_rate` goes at
    most half-way to the bound, so a clamped baseline keeps its room to move.
    """
    return min(max(p, eps), 1.0 - eps)


def _sig_rate(p: float, digits: int = 4) -> float:
    """A rate rounded for a cache key, on its smaller side: ``1 - p`` is rounded when ``p > 0.5``.

    Rounding ``p`` itself sent 0.99995 to 1.0 (and 0.9999's shifted rate with it).
    """
    if p > 0.5:
        return 1.0 - _sig(1.0 - p, digits)
    return _sig(p, digits)


@lru_cache(maxsize=1024)
def _binomial_pmf(n: int, p: float) -> tuple[int, tuple[float, ...]]:
    """``(lo, probs)``: P(X = lo + k) for X ~ Bin(n, p), tails below 1e-16 dropped, renormalised."""
    if n <= 0:
        return 0, (1.0,)
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    lo = max(0, math.floor(mean - 12 * sd - 8))
    hi = min(n, math.ceil(mean + 12 * sd + 8))
    lp, lq, lgn = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    probs = [
        math.exp(lgn - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * lp + (n - x) * lq) for x in range(lo, hi + 1)
    ]
    return _trim(lo, probs)


def _trim(lo: int, probs: list[float]) -> tuple[int, tuple[float, ...]]:
    # Mass below 1e-16 changes no run length we care about but widens the chain's band (its cost).
    keep = [i for i, q in enumerate(probs) if q > 1e-16]
    first, last = keep[0], keep[-1]
    body = probs[first : last + 1]
    total = sum(body)
    return lo + first, tuple(q / total for q in body)


def _sum_pmf(terms: tuple[tuple[int, float], ...]) -> tuple[int, tuple[float, ...]]:
    """PMF of a sum of independent binomials ``Bin(n_c, p_c)`` (the risk-adjusted total).

    Exact by convolution while each step costs under :data:`CONVOLUTION_BUDGET`;
    beyond that (several categories of ~1e5+ trials a minute: the exact product
    grows as the square of the PMF widths, minutes of work at 1e7) the sum is
    replaced by the binomial with the same mean and variance,
    ``Bin(m^2 / sum n p^2, sum n p^2 / m)`` with ``m = sum n p``. Terms that wide are
    normal to within a per cent of their skew, so that binomial matches the
    sum's shape as well as its first two moments.
    """
    lo, acc = 0, [1.0]
    for n, p in terms:
        tlo, tp = _binomial_pmf(n, p)
        if len(acc) * len(tp) > CONVOLUTION_BUDGET:
            return _matched_binomial(terms)
        out = [0.0] * (len(acc) + len(tp) - 1)
        for i, a in enumerate(acc):
            if a:
                for j, b in enumerate(tp):
                    out[i + j] += a * b
        lo, acc = lo + tlo, out
        lo, trimmed = _trim(lo, acc)
        acc = list(trimmed)
    return lo, tuple(acc)


def _matched_binomial(terms: tuple[tuple[int, float], ...]) -> tuple[int, tuple[float, ...]]:
    """PMF of the binomial with the mean and variance of ``sum Bin(n_c, p_c)`` (see :func:`_sum_pmf`)."""
    mean = sum(n * p for n, p in terms)
    square = sum(n * p * p for n, p in terms)
    # n_eff = m^2 / sum n p^2 <= sum n (Cauchy-Schwarz), so the sum's support is never exceeded.
    n_eff = max(1, min(sum(n for n, _ in terms), round(mean * mean / square)))
    return _binomial_pmf(n_eff, _design_rate(mean / n_eff))


def _chain_steps(lo: int, probs: Sequence[float], a: float, c: float, w: float) -> list[tuple[float, float]]:
    """The increment ``a*X - c`` in grid units ``w``, as ``(steps, probability)`` pairs.

    Splitting a step that lands between two grid points in proportion keeps the
    chain's mean increment exact but adds ``f(1-f)w^2`` of variance (f the
    fractional position), which biases the ARL low (about 10 % at ARL0 ~ 1e7
    with 150 states). The steps are therefore pulled toward their mean by the
    factor that removes that added variance: with it the chain converges about
    twice as fast in the number of states.
    """
    raw = [((a * (lo + k) - c) / w, q) for k, q in enumerate(probs)]
    mean = sum(v * q for v, q in raw)
    var = sum((v - mean) ** 2 * q for v, q in raw)
    shrink = 1.0
    for _ in range(3):
        added = 0.0
        for v, q in raw:
            f = (mean + (v - mean) * shrink) % 1.0
            added += q * f * (1 - f)
        shrink = math.sqrt(max(0.25, 1 - added / var)) if var > 0 else 1.0
    top = max(v for v, _ in raw)
    if top > 0 and mean + (top - mean) * shrink <= 0:
        # A rare positive step far above a very negative mean (one event at p0 = 1e-9) would be
        # pulled to or below zero: no state could leave 0 and the alarm would be unreachable.
        shrink = 1.0
    return [(mean + (v - mean) * shrink, q) for v, q in raw]


class _Chain:
    """Brook-Evans Markov chain of a CUSUM on a fixed grid, LU-factorised once.

    States are the grid points ``i * w``, ``i = 0 .. size-1``. A step landing
    between two points is split between them in proportion; at or below 0 it
    goes to state 0 (the reflection); at or past the last point it is absorbed
    (the alarm). The chain with threshold ``H`` uses the first ``H`` states and
    the threshold sits half-way between points ``H-1`` and ``H``:
    ``h = (H - 0.5) * w``. Because ``I - R`` for threshold ``H`` is the leading
    ``H x H`` block of the full matrix, one LU factorisation (no pivoting: the
    matrix is diagonally dominant) serves every threshold, and the zero-start
    ARL for one ``H`` costs one back-substitution: a threshold search costs one
    factorisation. ``R`` is banded (a minute moves the statistic by at most the
    increment's range), so the factorisation costs ``size * band^2``.

    Steps are first merged per unit cell ``[k, k+1)`` at their conditional
    mean: from any state a step's transition is linear in the step within a
    cell (split between two neighbours, reflected, or absorbed), so the merge
    is exact, and the chain costs ``size * 2 * size`` whatever the width of the
    binomial (tens of thousands of outcomes at ten million trials a minute).

    When a state can never be left (no step can ever raise the statistic, e.g.
    a true rate far below the baseline), the leading block is singular: its
    index is kept in ``stuck`` and every threshold above it has an infinite ARL.
    """

    def __init__(self, steps: list[tuple[float, float]], size: int, w: float) -> None:
        self.size, self.w = size, w
        steps = _merge_cells(steps, size)
        lowest = min(v for v, _ in steps)
        highest = max(v for v, _ in steps)
        below = min(size, max(1, math.ceil(-lowest) + 1))
        self.above = above = min(size, max(1, math.ceil(highest) + 2))
        M = [[0.0] * size for _ in range(size)]
        for i in range(size):
            row = M[i]
            # The diagonal of I - R is the probability of *leaving* state i, summed directly:
            # 1 - R[i][i] would cancel to 0 for a state left with probability ~1e-17.
            leave = 0.0
            for v, q in steps:
                t = i + v
                if t >= size:
                    leave += q
                    continue
                if t <= 0:
                    if i:
                        row[0] -= q
                        leave += q
                    continue
                j = int(t)
                f = t - j
                if j != i:
                    row[j] -= q * (1 - f)
                    leave += q * (1 - f)
                if j + 1 < size:
                    if j + 1 != i:
                        row[j + 1] -= q * f
                        leave += q * f
                else:
                    leave += q * f
            row[i] = leave
        y = [1.0] * size
        self.stuck = size
        for k in range(size):
            rk = M[k]
            pivot = rk[k]
            if not pivot > 0:
                self.stuck = k  # state k cannot be left: thresholds above it are never reached
                break
            end = min(size, k + above + 1)
            seg = rk[k:end]
            yk = y[k]
            for i in range(k + 1, min(size, k + below + 1)):
                ri = M[i]
                if ri[k]:
                    f = ri[k] / pivot
                    ri[k:end] = [x - f * z for x, z in zip(ri[k:end], seg)]
                    y[i] -= f * yk
        self.U, self.y = M, y

    def arl(self, H: int) -> float:
        """Zero-start ARL with threshold ``(H - 0.5) * w`` (``inf`` when the alarm is unreachable)."""
        if H > self.stuck:
            return math.inf
        U, y, above = self.U, self.y, self.above
        x = [0.0] * H
        for k in range(H - 1, -1, -1):
            rk = U[k]
            acc = y[k]
            for j in range(k + 1, min(H, k + above + 1)):
                acc -= rk[j] * x[j]
            x[k] = acc / rk[k]
        return x[0]


def _merge_cells(steps: list[tuple[float, float]], size: int) -> list[tuple[float, float]]:
    """``steps`` merged per unit cell at their conditional mean (exact for the chain, see :class:`_Chain`)."""
    cells: dict[int, list[float]] = {}
    for v, q in steps:
        # Past +-size every state is absorbed / reflected alike: one cell each.
        v = min(max(v, -float(size)), float(size))
        cell = cells.setdefault(math.floor(v), [0.0, 0.0])
        cell[0] += q
        cell[1] += q * v
    # The clamp only absorbs rounding of m / q: the conditional mean lies in its cell.
    return [(min(max(m / q, k), k + 1.0) if k < size else float(size), q)
            for k, (q, m) in sorted(cells.items()) if q > 0]


def _chain_arl(lo: int, probs: Sequence[float], a: float, c: float, h: float, states: int) -> float:
    """Zero-start ARL of ``S' = max(0, S + a*X - c)`` stopped at ``S >= h``, X with the given PMF."""
    if h <= 0:
        return 1.0
    w = h / (states - 0.5)
    return _Chain(_chain_steps(lo, probs, a, c, w), states, w).arl(states)


def _search_h(lo: int, probs: tuple[float, ...], a: float, c: float, target: float, states: int) -> tuple[float, float]:
    """The ``h`` whose chain ARL is ``target``, and the chain's ARL there.

    The grid is sized from Lorden's bound (a likelihood-ratio CUSUM has
    ARL0 >= exp(h), so ``h <= log(target)``): about ``states`` points up to
    that bound. The smallest grid threshold whose ARL reaches the target is
    found by bisection, and ``h`` is interpolated between it and the one below
    on ``log ARL``, which is close to linear in ``h``.
    """
    goal = math.log(target)
    bound = max(goal, 1.0)
    for _ in range(12):
        w = bound / (states - 0.5)
        chain = _Chain(_chain_steps(lo, probs, a, c, w), states, w)
        if chain.arl(states) >= target:
            break
        bound *= 1.25  # the bound only fails through discretisation error: look a little higher
    top = chain.arl(states)
    if top < target:
        return (states - 0.5) * w, top
    if chain.arl(1) >= target:
        return 0.5 * w, chain.arl(1)
    lo_h, hi_h = 1, states  # arl(lo_h) < target <= arl(hi_h)
    while hi_h - lo_h > 1:
        mid = (lo_h + hi_h) // 2
        if chain.arl(mid) >= target:
            hi_h = mid
        else:
            lo_h = mid
    a0, a1 = chain.arl(lo_h), chain.arl(hi_h)
    if not math.isfinite(a1) or a1 <= a0:
        return (hi_h - 0.5) * w, a1
    l0, l1 = math.log(a0), math.log(a1)
    t = (goal - l0) / (l1 - l0)
    return (lo_h - 0.5 + t) * w, math.exp(l0 + t * (l1 - l0))


def _excursion_arl(
    lo: int, probs: Sequence[float], a: float, c: float, h: float, max_work: float = 2e5
) -> float | None:
    """Exact zero-start ARL by Page's renewal argument, or None when that would cost too much.

    A CUSUM is a sequence of excursions from 0, each ending back at 0 or at an
    alarm, so ``ARL = E[excursion length] / P(excursion alarms)``. Within an
    excursion no reflection happens, so after ``k`` minutes the statistic is
    exactly ``a*T - k*c`` with ``T`` the successes so far: propagating the
    distribution of ``T`` over the still-running excursions is exact, with no
    discretisation. It is cheap when the threshold is a few lattice steps ``a``
    away (large shifts, rare events), exactly where the Markov chain is worst:
    there the ARL is a step function of ``h`` (each step a different number of
    successes needed to alarm), which a chain on a grid smooths over.
    """
    width = len(probs)
    t_lo, running = 0, [1.0]
    alarm, expected_length, work, k = 0.0, 1.0, 0.0, 0
    while True:
        k += 1
        nxt = [0.0] * (len(running) + width - 1)
        for i, m in enumerate(running):
            if m:
                for j, q in enumerate(probs):
                    nxt[i + j] += m * q
        work += len(running) * width
        base = t_lo + lo
        kept_lo: int | None = None
        kept: list[float] = []
        for idx, m in enumerate(nxt):
            v = a * (base + idx) - k * c
            if v >= h:
                alarm += m
            elif v > 0:
                if kept_lo is None:
                    kept_lo = base + idx
                kept.append(m)
        mass = sum(kept)
        if mass == 0 or kept_lo is None:
            break
        expected_length += mass
        t_lo, running = kept_lo, kept
        if alarm > 0 and mass < 1e-9 * alarm:
            break  # what is still running can change P(alarm) by less than 1e-9 of itself
        if work > max_work:
            return None
    return expected_length / alarm if alarm > 0 else math.inf


#: Lattice steps (``h / |log R|``) below which the exact excursion method refines the chain's ``h``.
COARSE_LATTICE_STEPS = 20

#: Threshold used when no minute can carry positive evidence at all (the shift is so large that
#: even a 12-sigma minute under the baseline stays below it): any positive evidence alarms.
TINY_H = 1e-6


def _refine_on_lattice(
    lo: int, probs: tuple[float, ...], a: float, c: float, target: float, h: float
) -> tuple[float, float] | None:
    """The smallest ``h`` whose exact ARL reaches ``target`` (bisection on the step function)."""

    def arl(x: float) -> float | None:
        return _excursion_arl(lo, probs, a, c, x)

    hi = max(h, TINY_H) * 1.2
    a_hi = arl(hi)
    for _ in range(40):
        if a_hi is None or a_hi >= target:
            break
        hi *= 1.2
        a_hi = arl(hi)
    if a_hi is None or a_hi < target:
        return None
    low = hi / 1.5
    a_low = arl(low)
    while a_low is not None and a_low >= target:
        if low <= TINY_H:
            # Even "alarm at the first minute with positive evidence" meets the target (rare
            # events, huge shifts): any small h does, and this is its ARL.
            return TINY_H, a_low
        low = max(TINY_H, low / 2)
        a_low = arl(low)
    if a_low is None:
        return None
    while hi - low > 1e-5 * hi:
        mid = (low + hi) / 2
        a_mid = arl(mid)
        if a_mid is None:
            return None
        if a_mid >= target:
            hi, a_hi = mid, a_mid
        else:
            low = mid
    return hi, a_hi


def _design_h(lo: int, probs: tuple[float, ...], a: float, c: float, target: float, states: int) -> tuple[float, float]:
    if max(a * (lo + k) - c for k in range(len(probs))) <= 0:
        return TINY_H, math.inf
    h, achieved = _search_h(lo, probs, a, c, target, states)
    if h / abs(a) <= COARSE_LATTICE_STEPS:
        # Few successes separate 0 from h: the true ARL jumps between lattice values and the
        # chain's smooth interpolation can land 10-20 % short of the target. Take the exact one.
        refined = _refine_on_lattice(lo, probs, a, c, target, h)
        if refined is not None:
            return refined
    return max(h, TINY_H), achieved


@lru_cache(maxsize=4096)
def _cached_threshold(terms: tuple[tuple[int, float], ...], r: float, target: float, states: int) -> tuple[float, float]:
    lo, probs = _sum_pmf(terms)
    a = math.log(r)
    c = sum(n * math.log1p(p * (r - 1)) for n, p in terms)
    return _design_h(lo, probs, a, c, target, states)


def _terms(trials: float | Mapping[str, tuple[float, float]], p0: float | None) -> tuple[tuple[int, float], ...]:
    """Cache key of a design: (trials per minute, rate) per category, rounded.

    Volumes are capped at :data:`MAX_DESIGN_TRIALS` and rates clamped by
    :data:`RATE_EPS`; volumes or rates that are not finite numbers must be
    filtered by the caller (they have no design).
    """

    def volume(n: float) -> int:
        return round(_sig(min(n, MAX_DESIGN_TRIALS)))

    if isinstance(trials, Mapping):
        out = tuple(sorted((volume(n), _sig_rate(p)) for n, p in trials.values() if volume(n) >= 1))
        if out:
            return out
        # Every category below one trial a minute: size the chain as one trial at the mean rate.
        total = sum(n for n, _ in trials.values())
        mean = sum(n * p for n, p in trials.values()) / total if total else 0.5
        return ((1, _sig_rate(mean)),)
    assert p0 is not None
    return ((max(1, volume(trials)), _sig_rate(p0)),)


def _rounded_odds(p0: float, p1: float) -> float:
    # Round the rates, not the ratio: nearby baselines then share one cached design.
    r0, r1 = _sig_rate(p0), _sig_rate(p1)
    if r0 == r1:
        # A shift finer than the rounding: design for the shift itself rather than for none.
        r0, r1 = p0, p1
    return odds_ratio(r0, r1)


def threshold_for_mix(
    volumes: Mapping[str, tuple[float, float]], r: float, arl0: float, *, states: int = CHAIN_STATES
) -> tuple[float, float]:
    """``(h, achieved ARL0)`` of a risk-adjusted CUSUM with odds ratio ``r``.

    ``volumes[category] = (trials per minute, baseline rate)``: the minute's
    total successes are a sum of those binomials. Cached like :func:`threshold_for_arl`.
    """
    return _cached_threshold(_terms(volumes, None), _sig(r, 6), _sig(arl0), states)


def threshold_for_arl(p0: float, trials: float, p1: float, arl0: float, *, states: int = CHAIN_STATES) -> float:
    """The CUSUM threshold ``h`` whose in-control ARL is ``arl0`` minutes.

    ``p0`` baseline rate, ``trials`` expected trials per minute, ``p1`` the
    shifted rate the CUSUM is tuned to (above ``p0`` for an upward CUSUM, below
    for a downward one). Inputs are rounded to 3-4 significant digits and the
    result cached, so calling it for every series every minute is cheap.
    """
    return _cached_threshold(_terms(trials, p0), _rounded_odds(p0, p1), _sig(arl0), states)[0]


def average_run_length(
    p0: float, trials: float, p1: float, h: float, *, p_true: float | None = None, states: int = CHAIN_STATES
) -> float:
    """Expected minutes from ``S = 0`` to an alarm when the real rate is ``p_true`` (default ``p0``).

    ``p_true = p0`` gives ARL0 (the false-alarm spacing), ``p_true = p1`` the
    zero-start detection delay of the shift the CUSUM is tuned for.
    """
    n = max(1, round(min(trials, MAX_DESIGN_TRIALS)))
    p0, p1 = _design_rate(p0), _design_rate(p1, RATE_EPS / 2)
    lo, probs = _binomial_pmf(n, _design_rate(p0 if p_true is None else p_true))
    r = odds_ratio(p0, p1)
    a, c = math.log(r), n * math.log1p(p0 * (r - 1))
    if a == 0:
        return math.inf if h > 0 else 1.0  # p1 == p0: the statistic never moves
    if h / abs(a) <= COARSE_LATTICE_STEPS:
        exact = _excursion_arl(lo, probs, a, c, h)
        if exact is not None:
            return exact
    return _chain_arl(lo, probs, a, c, h, states)


@dataclass(frozen=True)
class CusumDesign:
    """One one-sided CUSUM: the rates it compares, its threshold and the ARL0 it was sized for.

    ``llr(x, n)`` is the per-minute increment. ``arl0`` is the computed
    in-control ARL at ``h`` for ``trials`` trials a minute: the target within
    a per cent or two, or above it where the ARL jumps in steps (a few
    successes between 0 and ``h``: no ``h`` hits the target, the next step up
    is taken), or ``inf`` when no minute under the baseline can carry positive
    evidence (then ``h`` is tiny: any positive evidence alarms).

    ``p0`` is the rate designed for; ``baseline_p0`` is the baseline's own rate
    when that was within :data:`RATE_EPS` of 0 or 1 and was clamped (else None).
    ``trials`` is the volume designed for (capped at :data:`MAX_DESIGN_TRIALS`).

    Overdispersed series (``hour_sd > 0``, :mod:`routerwatch.drift.overdispersion`):
    ``p0`` is the tolerance reference ``expit(logit(center_p0) +- tolerance_z * hour_sd)``
    the counts are judged against, ``center_p0`` the baseline rate itself, ``arl0``
    the in-control ARL under the hour-level random-effect model, ``delay`` /
    ``fast_delay`` the computed delays of a ``delta`` and a
    :data:`~routerwatch.drift.overdispersion.FAST_DELTA` shift. With ``hour_sd = 0``
    they are None and the design is the iid one. ``evidence_trials`` (tolerance
    designs: the design volume) caps a minute's evidence, see :func:`fold`.
    """

    direction: Direction
    p0: float
    p1: float
    trials: float
    h: float
    arl0_target: float
    arl0: float
    baseline_p0: float | None = None
    hour_sd: float = 0.0
    tolerance_z: float | None = None
    center_p0: float | None = None
    delay: float | None = None
    fast_delay: float | None = None
    evidence_trials: float | None = None
    log_odds: float = field(init=False)
    per_trial: float = field(init=False)

    def __post_init__(self) -> None:
        r = odds_ratio(self.p0, self.p1)
        object.__setattr__(self, "log_odds", math.log(r))
        # llr = x*log R - n*log(1 - p0 + R*p0): the odds-ratio form, shared with the risk-adjusted CUSUM.
        object.__setattr__(self, "per_trial", math.log1p(self.p0 * (r - 1)))

    def llr(self, successes: int, trials: int) -> float:
        return successes * self.log_odds - trials * self.per_trial


@dataclass(frozen=True)
class DesignSkip:
    """Why a series gets no CUSUM: ``reason`` goes into the verdict's description, ``status`` is its status."""

    reason: str
    status: Status = Status.DEGENERATE


def plan_cusum(
    p0: float,
    trials: float,
    *,
    direction: Direction,
    arl0: float,
    delta: float = 0.03,
    ratio: float | None = None,
    states: int = CHAIN_STATES,
    hour_sd: float | None = 0.0,
) -> CusumDesign | DesignSkip:
    """Size one one-sided CUSUM for baseline ``p0`` at ``trials`` per minute, or say why not. Never raises.

    ``hour_sd`` (the baseline's hour-level random-effect sd on the logit scale)
    above 0 gives the tolerance design of :mod:`routerwatch.drift.overdispersion`
    (threshold from run lengths under the fitted random-effect model); 0 or None
    (rounded to :data:`~routerwatch.drift.overdispersion.SD_STEP`) gives the iid
    design below, unchanged.

    Judged: every ``p0`` strictly inside ``(0, 1)``, designed at the rate
    clamped into ``[RATE_EPS, 1 - RATE_EPS]`` (``baseline_p0`` then keeps the
    original), at any positive volume (designed at no more than
    :data:`MAX_DESIGN_TRIALS`). Skipped, with a reason naming the value: a
    ``p0`` outside ``(0, 1)`` or not a number, a volume that is not a positive
    finite number, an ``arl0`` not above 1, a shift with no room in
    ``direction``, and (never seen in tests; a last guard so that one series
    cannot stop a detector run) an arithmetic failure of the threshold search.
    An invalid ``direction`` is a programming error and raises ``ValueError``.
    """
    if direction not in ("up", "down"):
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
    if not (isinstance(p0, (int, float)) and 0 < p0 < 1):  # NaN fails the comparison too
        return DesignSkip(f"baseline rate {p0} is degenerate (outside (0, 1)): no likelihood ratio exists")
    if not (isinstance(trials, (int, float)) and math.isfinite(trials) and trials > 0):
        return DesignSkip(f"baseline volume {trials} trials/min is degenerate (not a positive number)")
    if not (isinstance(arl0, (int, float)) and math.isfinite(arl0) and arl0 > 1):
        return DesignSkip(f"target ARL0 {arl0} minutes is degenerate (not a finite number above 1)")
    rate = _design_rate(p0)
    p1 = alternative_rate(rate, direction, delta, ratio)
    if p1 is None or not 0 < p1 < 1 or p1 == rate:
        return DesignSkip(f"baseline rate {p0:.6g} leaves no room for a shift {direction} "
                          f"(delta {delta}, ratio {ratio})")
    n = min(float(trials), MAX_DESIGN_TRIALS)
    tau = quantize_sd(hour_sd)
    if tau > 0:
        return _plan_tolerance(p0, rate, n, direction, arl0, delta, ratio, tau)
    try:
        h, achieved = _cached_threshold(_terms(n, rate), _rounded_odds(rate, p1), _sig(arl0), states)
    except (ArithmeticError, ValueError, IndexError) as exc:
        return DesignSkip(f"threshold search failed for baseline rate {p0:.6g} at {trials:.6g} trials/min "
                          f"({type(exc).__name__}: {exc})")
    if not (math.isfinite(h) and h > 0):
        return DesignSkip(f"threshold search gave h={h} for baseline rate {p0:.6g} at {trials:.6g} trials/min")
    return CusumDesign(direction, rate, p1, n, h, arl0, achieved, baseline_p0=None if rate == p0 else p0)


def _plan_tolerance(
    p0: float, rate: float, n: float, direction: Direction, arl0: float, delta: float, ratio: float | None, tau: float
) -> CusumDesign | DesignSkip:
    """The overdispersed branch of :func:`plan_cusum` (inputs rounded for the design's cache)."""
    center = _sig_rate(rate, 3)
    volume = max(1, round(_sig(min(n, MAX_DESIGN_TRIALS), 2)))
    try:
        d = tolerance_design(center, volume, direction, _sig(arl0, 2), delta, ratio, tau)
    except (ArithmeticError, ValueError, IndexError, FloatingPointError) as exc:
        return DesignSkip(f"threshold search failed for baseline rate {p0:.6g} at {n:.6g} trials/min with "
                          f"hour sd {tau} ({type(exc).__name__}: {exc})")
    if d is None or not (0 < d.p_ref < 1 and 0 < d.p1 < 1 and d.p1 != d.p_ref):
        return DesignSkip(f"baseline rate {p0:.6g} with hour sd {tau} leaves no room for a shift {direction} "
                          f"(delta {delta}, ratio {ratio})")
    if not (math.isfinite(d.h) and d.h > 0):
        return DesignSkip(f"threshold search gave h={d.h} for baseline rate {p0:.6g} at {n:.6g} trials/min")
    return CusumDesign(direction, d.p_ref, d.p1, float(volume), d.h, arl0, d.arl0,
                       baseline_p0=None if rate == p0 else p0, hour_sd=tau, tolerance_z=d.z, center_p0=rate,
                       delay=d.delay, fast_delay=d.fast_delay, evidence_trials=float(volume))


def design_cusum(
    p0: float,
    trials: float,
    *,
    direction: Direction,
    arl0: float,
    delta: float = 0.03,
    ratio: float | None = None,
    states: int = CHAIN_STATES,
) -> CusumDesign | None:
    """Size one one-sided CUSUM for baseline ``p0`` at ``trials`` per minute; None where :func:`plan_cusum` skips.

    Use :func:`plan_cusum` to learn why (no room for the shift, a degenerate rate or volume).
    """
    plan = plan_cusum(p0, trials, direction=direction, arl0=arl0, delta=delta, ratio=ratio, states=states)
    return plan if isinstance(plan, CusumDesign) else None


def simulate_run_lengths(
    design: CusumDesign, *, p_true: float, trials: int, runs: int, seed: int, max_minutes: int = 10**7
) -> list[int]:
    """Seeded Monte Carlo run lengths (minutes to the first alarm from ``S = 0``) at rate ``p_true``.

    For checking a design or a detector benchmark; pure Python, about a
    microsecond per simulated minute. Runs longer than ``max_minutes`` are
    reported as ``max_minutes`` (censored).
    """
    rng = random.Random(seed)
    lo, probs = _binomial_pmf(trials, p_true)
    cdf, acc = [], 0.0
    for q in probs:
        acc += q
        cdf.append(acc)
    cdf[-1] = 1.0
    llr = [design.llr(lo + k, trials) for k in range(len(probs))]
    h = design.h
    out = []
    for _ in range(runs):
        s, t = 0.0, 0
        rand = rng.random
        while t < max_minutes:
            t += 1
            s += llr[bisect_left(cdf, rand())]
            if s < 0:
                s = 0.0
            elif s >= h:
                break
        out.append(t)
    return out


# ---------------------------------------------------------------------------------------------
# The fold: state, alarms, change-point
# ---------------------------------------------------------------------------------------------


class CusumState(BaseModel):
    """Where one one-sided CUSUM stands after its last folded minute. JSON-serialisable.

    ``run_start`` is the first minute of the current excursion above zero: when
    an alarm comes it is the maximum-likelihood estimate of when the change
    began (the last time the statistic sat at zero). ``alarm_at`` is set while
    the alarm is latched. ``pending_*`` hold low-volume minutes pooled until
    they reach ``min_trials``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    s: float = 0.0
    run_start: datetime | None = None
    alarm_at: datetime | None = None
    change_start: datetime | None = None
    last_minute: datetime | None = None
    pending_successes: float = 0.0
    pending_compensator: float = 0.0
    pending_trials: int = 0
    pending_since: datetime | None = None
    minutes: int = 0


@dataclass(frozen=True)
class Alarm:
    """One crossing of ``h``: when, the estimated change start, and the statistic at that minute."""

    at: datetime
    change_start: datetime | None
    statistic: float


@dataclass(frozen=True)
class CusumTrace:
    """The result of folding minutes: the final state, every alarm raised, every alarm cleared."""

    state: CusumState
    alarms: tuple[Alarm, ...]
    cleared: tuple[datetime, ...]
    held: tuple[Any, ...] = ()  # TenantHold: crossings carried by one tenant (routerwatch.drift.attribution)


def fold(
    steps: Iterable[tuple[datetime, float, float, int]],
    *,
    log_odds: float,
    h: float,
    state: CusumState | None = None,
    min_trials: int = 1,
    cap_factor: float = 1.25,
    clear_factor: float = 0.5,
    evidence_trials: float | None = None,
    hold: Callable[..., Any] | None = None,
) -> CusumTrace:
    """Fold ``(minute, x, compensator, trials)`` steps, ``llr = x * log_odds - compensator``.

    The generic core of the plain and the risk-adjusted CUSUM. Steps must be in
    minute order; those at or before ``state.last_minute`` are skipped, so a
    live caller may pass overlapping windows.

    Minutes with fewer than ``min_trials`` trials are pooled with the following
    ones until the pool reaches ``min_trials`` (the log-likelihood ratio is
    additive, so pooling loses no evidence; it only keeps one near-empty minute
    from resetting or moving the statistic on its own).

    Alarm latch: the first crossing of ``h`` records an :class:`Alarm` (the
    page). While latched the statistic is capped at ``cap_factor * h`` so that,
    however long the shift lasted, the alarm clears a bounded time after the
    rate returns: it clears when the statistic falls to ``clear_factor * h``,
    and the CUSUM restarts from zero, so the false-alarm budget holds afresh.

    ``evidence_trials`` (the overdispersed designs pass their design volume):
    a minute with more trials than that counts for that many, its increment
    scaled by ``evidence_trials / trials``. Why: under hour-level wobble the
    evidence one off-centre hour carries grows with the volume, so a threshold
    computed at the mean volume is crossed by ordinary hours at the daily peak
    (about 16x the designed false alarms with a 9x diurnal swing at logit sd
    0.2, see ``tests/unit/drift/test_drift_overdispersion.py``). Scaled, a peak
    minute has the design minute's mean increment and less than its variance,
    so the computed ARL is a lower bound whatever the volume's shape; the cost
    is that a shift at peak is detected no faster than at the mean volume.

    ``hold(change_start, minute, second_look, per_trial)`` is called at a crossing
    (``per_trial``: the run's compensator per trial, what a tenant's trials are
    charged in the split: the same as the statistic's, clock profile included); a
    non-None result (a :class:`~routerwatch.drift.attribution.TenantHold`: one
    tenant carried the evidence) records it in ``held`` instead of raising the
    alarm, and the CUSUM restarts from zero. ``second_look`` is True when the
    previous crossing was held provisionally and the statistic has not been
    back to zero since (the same excursion, judged on fresh evidence).
    """
    st = state or CusumState()
    s, run_start, alarm_at, change_start = st.s, st.run_start, st.alarm_at, st.change_start
    last, minutes = st.last_minute, st.minutes
    px, pc, pn, psince = st.pending_successes, st.pending_compensator, st.pending_trials, st.pending_since
    alarms: list[Alarm] = []
    cleared: list[datetime] = []
    held: list[Any] = []
    second_look = False
    run_comp = run_n = 0.0  # the current run's compensator and trials (for the tenant split)
    cap, clear = cap_factor * h, clear_factor * h
    for minute, x, comp, n in steps:
        if last is not None and minute <= last:
            continue
        last = minute
        if n <= 0:
            continue
        px, pc, pn = px + x, pc + comp, pn + n
        psince = psince or minute
        if pn < min_trials:
            continue
        llr = px * log_odds - pc
        step_comp, step_n = pc, pn
        if evidence_trials is not None and pn > evidence_trials:
            llr *= evidence_trials / pn
        began = psince
        px, pc, pn, psince = 0.0, 0.0, 0, None
        minutes += 1
        prev = s
        s = prev + llr
        if s <= 0:
            s, run_start = 0.0, None
            if prev > 0:
                second_look = False
        elif prev <= 0 or run_start is None:
            run_start = began
            run_comp = run_n = 0.0
        if run_start is not None:
            run_comp, run_n = run_comp + step_comp, run_n + step_n
        if alarm_at is None:
            if s >= h and hold is not None and (
                    why := hold(run_start or minute, minute, second_look, run_comp / run_n if run_n else None)
            ) is not None:
                held.append(why)
                s, run_start = 0.0, None
                second_look = bool(why.provisional)
                continue
            elif s >= h:
                alarm_at, change_start = minute, run_start
                alarms.append(Alarm(minute, run_start, s))
                second_look = False
                s = min(s, cap)
        else:
            s = min(s, cap)
            if s <= clear:
                cleared.append(minute)
                s, run_start, alarm_at, change_start = 0.0, None, None, None
    final = CusumState(
        s=s,
        run_start=run_start,
        alarm_at=alarm_at,
        change_start=change_start,
        last_minute=last,
        pending_successes=px,
        pending_compensator=pc,
        pending_trials=pn,
        pending_since=psince,
        minutes=minutes,
    )
    return CusumTrace(final, tuple(alarms), tuple(cleared), tuple(held))


def run_cusum(
    design: CusumDesign,
    counts: Iterable[MinuteCount],
    *,
    state: CusumState | None = None,
    min_trials: int = 1,
    cap_factor: float = 1.25,
    clear_factor: float = 0.5,
    tenants: Any = None,
    profile: Sequence[float] | None = None,
) -> CusumTrace:
    """Fold per-minute counts through one one-sided CUSUM (see :func:`fold`).

    ``tenants`` (a :data:`~routerwatch.drift.attribution.TenantBreakdown`) lets
    a crossing carried by one tenant be held (:mod:`routerwatch.drift.attribution`).
    ``profile`` (a baseline's ``rate_profile``: 24 logit offsets by UTC hour of
    the day) moves the rate each minute is judged against with the clock; the
    odds ratio of the alternative stays the design's.

    A tolerance design caps each minute's evidence at its design volume
    (``design.evidence_trials``, see ``fold``); the iid design does not need it
    (its ARL hardly depends on the volume), nor does the surge design (its
    threshold holds at any volume).
    """
    rows = merge_by_minute(counts)
    check_counts(rows)
    if profile and any(profile):
        r = math.exp(design.log_odds)
        per_hour = [math.log1p(shift_logit(design.p0, a) * (r - 1)) for a in profile]
        steps = ((c.minute, float(c.successes), c.trials * per_hour[c.minute.hour], c.trials) for c in rows)
    else:
        steps = ((c.minute, float(c.successes), c.trials * design.per_trial, c.trials) for c in rows)
    return fold(
        steps,
        log_odds=design.log_odds,
        h=design.h,
        state=state,
        min_trials=min_trials,
        cap_factor=cap_factor,
        clear_factor=clear_factor,
        evidence_trials=design.evidence_trials,
        hold=hold_check(tenants, log_odds=design.log_odds, per_trial={}, default_per_trial=design.per_trial),
    )


# ---------------------------------------------------------------------------------------------
# Detector: a rate drifting away from its baseline (escalation, failure mode, shadow pass rate)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftConfig:
    """Settings of a two-sided (or one-sided) Bernoulli CUSUM detector.

    ``arl0_minutes`` is the in-control ARL of *each* one-sided CUSUM: build it
    with :func:`arl0_for_budget` from the page budget and the number of series
    watched (the default: one false page a month for a single series).
    ``min_volume`` is the baseline trials/minute below which the series is not
    evaluated (status ``insufficient_volume``); ``min_trials`` pools quieter
    minutes (see :func:`fold`). ``observe_minutes`` is the window of the
    "observed rate" reported while not firing.

    ``overdispersion`` designs each series for its hour-level wobble
    (``Baseline.hour_sd``; the tolerance CUSUM of
    :mod:`routerwatch.drift.overdispersion`). A baseline without an estimate (fewer
    than ``MIN_SD_HOURS`` usable hours, or stored before the field existed) is
    designed with ``hour_sd_prior``: 0.1 on the logit scale, the middle of the
    0.05-0.2 measured on production-like traffic (a fresh series is judged a
    little less sharply until a week of history gives its own estimate). Off (the
    default), every series gets the iid design. With ``overdispersion`` and
    ``hourly`` (the default) each side of a wobbly series runs two CUSUMs that
    share its budget: the minute-level tolerance CUSUM for fast shifts and the
    CUSUM over standardised hourly residuals of :mod:`routerwatch.drift.hourly`
    for slow ones (a +3-point drift in hours rather than days); either pages.
    """

    delta: float = 0.03
    ratio: float | None = None
    directions: tuple[Direction, ...] = ("up", "down")
    arl0_minutes: float = field(default_factory=lambda: arl0_for_budget(1.0, 1, 2))
    min_trials: int = 1
    min_volume: float = 1.0
    cap_factor: float = 1.25
    clear_factor: float = 0.5
    severity: Severity = Severity.CRITICAL
    observe_minutes: int = 60
    overdispersion: bool = False
    hour_sd_prior: float = 0.1
    hourly: bool = True
    #: The fleet budget ``arl0_minutes`` was derived from, for the descriptions (None: say only the ARL0).
    budget: FalseAlarmBudget | None = None


def _coerce_state(state: CusumState | Mapping[str, Any] | None) -> CusumState | None:
    if state is None or isinstance(state, CusumState):
        return state
    return CusumState.model_validate(state)


def _rate_text(signal: Signal) -> str:
    return {
        Signal.ESCALATION_DRIFT: "escalation rate",
        Signal.ESCALATION_SURGE: "escalation rate",
        Signal.FAILURE_SHIFT: "failure rate",
        Signal.SHADOW_QUALITY: "shadow pass rate",
    }.get(signal, "rate")


def detect_rate_drift(
    baseline: Baseline | None,
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    config: DriftConfig = DriftConfig(),
    signal: Signal = Signal.ESCALATION_DRIFT,
    labels: Mapping[str, str] | None = None,
    states: Mapping[str, CusumState | Mapping[str, Any]] | None = None,
    tenants: TenantBreakdown | None = None,
    hours: Sequence[tuple[datetime, int, int]] | None = None,
) -> list[Verdict]:
    """One verdict per direction in ``config.directions`` for one series.

    ``hours`` (``(hour start, successes, trials)``, e.g. from the hourly rollup
    over days) feeds the hourly CUSUM of a wobbly series; without it the hourly
    CUSUM folds the complete hours of ``counts``. The scheduler passes it: its
    minute look-back (hours) is far shorter than a slow drift needs.

    ``tenants`` reads the series' counts by tenant for an alarm's window: an
    alarm carried by one tenant's batch is then held, not paged
    (:mod:`routerwatch.drift.attribution`; ``extra["held_alarms"]``).

    ``counts`` are the series' per-minute counts after the baseline window;
    minutes before ``baseline.window_end`` or at/after ``now`` (the end of the
    last complete minute) are ignored. ``states`` maps a direction to the state
    returned in the previous verdict's ``state`` to resume from; without it
    the CUSUM starts from zero at the first count (pass a long enough
    look-back, several hours, when running stateless). ``labels`` default to
    the baseline's; each verdict adds ``direction``.

    No baseline -> ``no_baseline``; a baseline volume below ``config.min_volume``
    -> ``insufficient_volume``; a baseline or shift with no sound design (see
    :func:`plan_cusum`: a rate outside ``(0, 1)``, no trials, no room to move)
    -> ``degenerate``, its description ``skipped: <reason>``. All are
    non-firing and say why. A baseline rate within :data:`RATE_EPS` of 0 or 1
    is judged at the clamped rate, and the description says so. Raises
    ``ValueError`` for impossible counts (successes above trials, negative) and
    for a ``states`` entry that is not a valid :class:`CusumState`.
    """
    base_labels = dict(labels if labels is not None else (baseline.labels if baseline else {}))
    out: list[Verdict] = []
    for direction in config.directions:
        lab = {**base_labels, "direction": direction}
        if baseline is None:
            out.append(
                silent(signal, Status.NO_BASELINE, now=now, labels=lab, severity=config.severity,
                       reason="no frozen baseline for this series yet (too little history): not evaluated")
            )
            continue
        problem = baseline_problem(baseline)
        if problem is not None:
            out.append(
                silent(signal, Status.DEGENERATE, now=now, labels=lab, severity=config.severity,
                       baseline_version=baseline.version, reason=f"skipped: {problem}")
            )
            continue
        if baseline.volume < config.min_volume:
            out.append(
                silent(signal, Status.INSUFFICIENT_VOLUME, now=now, labels=lab, severity=config.severity,
                       baseline_version=baseline.version,
                       reason=f"baseline volume {baseline.volume:.2f} trials/min is below the floor "
                       f"{config.min_volume}: not evaluated")
            )
            continue
        tau = _hour_sd(baseline, config)
        hourly = None
        arl0 = config.arl0_minutes
        if quantize_sd(tau) > 0 and config.hourly:
            # Two CUSUMs per side share its budget: the hourly one (slow drifts) and the minute one (fast).
            arl0 = 2 * config.arl0_minutes
            hourly = plan_hourly(_design_rate(baseline.p0), baseline.volume, quantize_sd(tau), direction=direction,
                                 arl0_minutes=arl0, delta=config.delta,
                                 baseline_hours=baseline.hour_sd_hours
                                 or max(1, (baseline.observed_minutes or baseline.minutes) // 60))
        design = plan_cusum(baseline.p0, baseline.volume, direction=direction, arl0=arl0,
                            delta=config.delta, ratio=config.ratio, hour_sd=tau)
        if isinstance(design, DesignSkip):
            out.append(
                silent(signal, design.status, now=now, labels=lab, severity=config.severity,
                       baseline_version=baseline.version, reason=f"skipped: {design.reason}")
            )
            continue
        prior = _coerce_state((states or {}).get(direction))
        rows = [c for c in merge_by_minute(counts) if baseline.window_end <= c.minute < now]
        profile = getattr(baseline, "rate_profile", None)
        trace = run_cusum(design, rows, state=prior, min_trials=config.min_trials,
                          cap_factor=config.cap_factor, clear_factor=config.clear_factor, tenants=tenants,
                          profile=profile)
        verdict = _drift_verdict(signal, design, baseline, rows, trace, lab, now, config)
        if hourly is not None:
            verdict = _with_hourly(verdict, hourly, rows, trace, now, config, tenants, profile,
                                   hours=None if hours is None else
                                   [h for h in hours if h[0] >= baseline.window_end and h[0] + HOUR <= now])
        out.append(verdict)
    return out


def _firing_onsets(*spans: Sequence[tuple[datetime, datetime | None]]) -> list[datetime]:
    """Page onsets of the union of firing spans ``[alarm, cleared)`` (None: still firing)."""
    merged = sorted(((a, c) for group in spans for a, c in group),
                    key=lambda span: (span[0], span[1] is None, span[1] or span[0]))
    onsets: list[datetime] = []
    end: datetime | None = None
    open_ = False
    for a, c in merged:
        # A span starting when (or before) the previous one cleared continues the same page.
        if open_ and (end is None or a <= end):
            if c is None:
                end = None
            elif end is not None:
                end = max(end, c)
            continue
        onsets.append(a)
        open_, end = True, c
    return onsets


def _spans(alarms: Sequence[datetime], cleared: Sequence[datetime]) -> list[tuple[datetime, datetime | None]]:
    """Alarm times paired with the clears that follow them (a latch alternates alarm, clear, alarm...)."""
    out: list[tuple[datetime, datetime | None]] = []
    later = sorted(cleared)
    for a in sorted(alarms):
        c = next((t for t in later if t >= a), None)
        out.append((a, c))
        if c is not None:
            later.remove(c)
    return out


def _with_hourly(
    verdict: Verdict, design: HourlyDesign, rows: Sequence[MinuteCount], trace: CusumTrace, now: datetime,
    config: DriftConfig, tenants: TenantBreakdown | None, profile: Sequence[float] | None = None,
    hours: Sequence[tuple[datetime, int, int]] | None = None,
) -> Verdict:
    """The minute verdict combined with the hourly CUSUM of :mod:`routerwatch.drift.hourly` (either one pages)."""
    sign = 1.0 if design.direction == "up" else -1.0
    hold = hold_check(tenants, log_odds=sign, per_trial={}, default_per_trial=sign * design.p0)
    hourly = run_hourly(design, hourly_counts(rows, now) if hours is None else hours, cap_factor=config.cap_factor,
                        clear_factor=config.clear_factor, hold=hold, profile=profile)
    minute_spans = _spans([a.at for a in trace.alarms], list(trace.cleared))
    if trace.state.alarm_at is not None and minute_spans and minute_spans[-1][1] is not None:
        minute_spans[-1] = (minute_spans[-1][0], None)
    hour_spans = _spans([a for a, _, _ in hourly.alarms], list(hourly.cleared))
    onsets = _firing_onsets(minute_spans, hour_spans)
    extra = {
        **verdict.extra,
        "alarms_in_call": [t.isoformat() for t in onsets],
        "held_alarms": verdict.extra.get("held_alarms", []) + [hd.as_dict() for hd in hourly.held],
        "hourly": {
            "k": design.k, "h": design.h, "s": hourly.s, "arl0_hours": design.arl0_hours,
            "alarm_at": hourly.alarm_at.isoformat() if hourly.alarm_at else None,
            "change_start": hourly.change_start.isoformat() if hourly.change_start else None,
            "last_hour": hourly.last_hour.isoformat() if hourly.last_hour else None,
        },
    }
    update: dict[str, Any] = {"extra": extra}
    hourly_text = (
        f" Hourly CUSUM over standardised hourly residuals (binomial noise plus the hour's wobble): "
        f"S={hourly.s:.2f}, h={design.h:.2f}, k={design.k:.2f}, one false alarm per "
        f"{spacing_text(design.arl0_hours * 60)}"
        + (f" (its share of {config.budget})." if config.budget is not None else ".")
    )
    if hourly.alarm_at is not None and not verdict.firing:
        since = hourly.change_start or (hourly.alarm_at - HOUR)
        window = [c for c in rows if since <= c.minute < now]
        x = sum(c.successes for c in window)
        n = sum(c.trials for c in window)
        observed = x / n if n else None
        expected = expected_rate(design.p0, window, profile)
        interval = expected_interval(expected, window, design.tau)
        what = _rate_text(verdict.signal)
        where = fmt_labels({k: v for k, v in verdict.labels.items() if k != "direction"})
        verb = "rose" if design.direction == "up" else "fell"
        obs_text = _pct(observed)
        update.update(
            firing=True, statistic=hourly.s, threshold=design.h, change_start=since, observed_value=observed,
            magnitude=None if observed is None else observed - expected,
            summary=f"{what} {verb} to {obs_text} from {expected:.1%} over hours ({where})",
            description=(
                f"The {design.direction}ward hourly CUSUM of the {what} for {where} crossed h={design.h:.2f} at "
                f"{hourly.alarm_at:%Y-%m-%d %H:%M} UTC (sized for {threshold_text(design.arl0_hours * 60, config.budget)}; the "
                f"hour-to-hour wobble, logit sd {design.tau:.2f}, counted as noise); the drift most likely began "
                f"at {since:%Y-%m-%d %H:%M} UTC. Since then {x} of {n} ({obs_text}) against a baseline of "
                f"{expected:.2%}"
                + (f", in-control 95% interval {interval[0]:.2%}-{interval[1]:.2%} over these trials."
                   if interval is not None else ".")
                + held_text(hourly.held)
            ),
        )
        extra["alarm_at"] = hourly.alarm_at.isoformat()
    else:
        update["description"] = verdict.description + hourly_text + held_text(hourly.held)
    return verdict.model_copy(update=update)


def _hour_sd(baseline: Baseline, config: DriftConfig) -> float:
    """The hour-level sd a series is designed for: 0 without ``config.overdispersion``; else its own or the prior."""
    if not config.overdispersion:
        return 0.0
    own = getattr(baseline, "hour_sd", None)
    return float(own) if own is not None else float(config.hour_sd_prior)


def expected_interval(
    p0: float, rows: Sequence[MinuteCount], hour_sd: float, z: float = 1.96
) -> tuple[float, float] | None:
    """Central ``z``-sd interval of the rate ``rows`` would show in control, hour wobble included.

    Over ``n`` trials spread as ``n_h`` over clock hours, the in-control rate has
    variance ``p0 (1 - p0) / n`` (binomial) plus ``(p0 (1 - p0) hour_sd)^2 sum n_h^2 / n^2``
    (each hour's shared random effect, delta method). None without trials.
    """
    per_hour: dict[datetime, int] = {}
    for r in rows:
        if r.trials > 0:
            key = r.minute.replace(minute=0, second=0, microsecond=0)
            per_hour[key] = per_hour.get(key, 0) + r.trials
    n = sum(per_hour.values())
    if n <= 0:
        return None
    pq = p0 * (1 - p0)
    var = pq / n + (pq * hour_sd) ** 2 * sum(v * v for v in per_hour.values()) / (n * n)
    sd = math.sqrt(var)
    return max(0.0, p0 - z * sd), min(1.0, p0 + z * sd)


def expected_rate(p0: float, rows: Sequence[MinuteCount], profile: Sequence[float] | None) -> float:
    """The rate ``rows`` should show in control: ``p0``, or with a clock profile its trial-weighted mean."""
    if not profile or not any(profile):
        return p0
    n = sum(c.trials for c in rows)
    if n <= 0:
        return p0
    return sum(c.trials * shift_logit(p0, profile[c.minute.hour]) for c in rows) / n


def held_text(held: Sequence[Any]) -> str:
    """The description's sentence on alarms held for one tenant (empty when none)."""
    if not held:
        return ""
    last = held[-1]
    share = last.tenant_trials / last.window_trials if last.window_trials else 0.0
    return (
        f" Held {len(held)} crossing(s) carried by one tenant (or two at once), the last at {last.at:%Y-%m-%d %H:%M} UTC: "
        f"tenant {last.tenant}{''.join(' and ' + t for t in last.also)} sent {share:.0%} of the "
        f"{last.window_trials} trials since "
        f"{last.since:%H:%M} and {last.tenant_evidence:.1f} of the evidence; the rest of the traffic showed "
        f"{last.rest_evidence:.1f} (a shift of the router would have shown at least {last.rest_needed:.1f}), so it "
        f"was not paged as drift: the tenant signal judges that tenant."
    )


def _pct(observed: float | None) -> str:
    return f"{observed:.2%}" if observed is not None else "n/a"


def _drift_verdict(
    signal: Signal,
    design: CusumDesign,
    baseline: Baseline,
    rows: list[MinuteCount],
    trace: CusumTrace,
    labels: dict[str, str],
    now: datetime,
    config: DriftConfig,
) -> Verdict:
    st = trace.state
    firing = st.alarm_at is not None
    since = st.change_start if firing else None
    # Not firing: a fixed recent window. The current excursion (since run_start) would be biased
    # upward by construction: it is the stretch the statistic found suspicious.
    window_from = since or (now - config.observe_minutes * MINUTE)
    window = [c for c in rows if c.minute >= window_from]
    x = sum(c.successes for c in window)
    n = sum(c.trials for c in window)
    observed = x / n if n else None
    expected = expected_rate(design.center_p0 if design.center_p0 is not None else design.p0, window,
                             getattr(baseline, "rate_profile", None))
    interval = expected_interval(expected, window, design.hour_sd)
    if design.hour_sd > 0:
        own = getattr(baseline, "hour_sd", None)
        source = (f"estimated from {baseline.hour_sd_hours} hours of the baseline" if own is not None
                  else "prior: too little baseline history to estimate")
        dispersion_text = (
            f" Dispersion: hour-to-hour wobble of the rate, logit sd {design.hour_sd:.2f} ({source}); the "
            f"{design.direction}ward CUSUM judges against {design.p0:.2%} (the baseline moved "
            f"{design.tolerance_z:g} sd of that wobble) and its threshold holds one false alarm per "
            f"{spacing_text(design.arl0_target)} under that wobble."
        )
    else:
        dispersion_text = " Dispersion: binomial (no hour-to-hour wobble beyond sampling noise)."
    interval_text = (
        f" Observed {_pct(observed)} vs expected {expected:.2%}, in-control 95% interval "
        f"{interval[0]:.2%}-{interval[1]:.2%} over these {n} trials." if interval is not None and observed is not None
        else ""
    )
    what = _rate_text(signal)
    where = fmt_labels({k: v for k, v in labels.items() if k != "direction"})
    obs_text = f"{observed:.1%}" if observed is not None else "n/a"
    verb = "rose" if design.direction == "up" else "fell"
    if firing:
        summary = f"{what} {verb} to {obs_text} from {expected:.1%} ({where})"
        description = (
            f"The {design.direction}ward CUSUM of the {what} for {where} crossed its threshold "
            f"(S={st.s:.1f} >= h={design.h:.1f}) at {st.alarm_at:%Y-%m-%d %H:%M} UTC. The change most likely "
            f"began at {since:%Y-%m-%d %H:%M} UTC; since then {x} of {n} ({obs_text}) against a baseline of "
            f"{expected:.2%} (baseline {baseline.version}, learned from "
            f"{window_text(baseline.window_start, baseline.window_end)}). Threshold sized for "
            f"{threshold_text(design.arl0_target, config.budget)} at {design.trials:.0f} trials/min."
            + interval_text + dispersion_text
            if since is not None else f"{what} {verb} for {where}"
        )
    else:
        summary = f"{what} {obs_text} vs baseline {expected:.1%}: no {design.direction}ward shift ({where})"
        description = (
            f"{design.direction}ward CUSUM S={st.s:.2f} below h={design.h:.2f}; observed {obs_text} over "
            f"{n} trials since {window_from:%Y-%m-%d %H:%M} UTC." + interval_text + dispersion_text
        )
    description += held_text(trace.held)
    if design.baseline_p0 is not None:
        description += (
            f" The baseline rate {design.baseline_p0:.3g} is within {RATE_EPS:g} of 0 or 1 and was judged as "
            f"{design.p0:.10g}."
        )
    return Verdict(
        signal=signal,
        labels=labels,
        status=Status.OK,
        firing=firing,
        severity=config.severity,
        statistic=st.s,
        threshold=design.h,
        baseline_value=expected,
        observed_value=observed,
        magnitude=None if observed is None else observed - expected,
        change_start=since,
        evaluated_at=now,
        baseline_version=baseline.version,
        baseline_window=(baseline.window_start, baseline.window_end),
        summary=summary,
        description=description,
        extra={
            "p1": design.p1,
            "arl0_target": design.arl0_target,
            "arl0": design.arl0 if math.isfinite(design.arl0) else None,  # inf: no false alarm possible
            "design_trials_per_minute": design.trials,
            "alarm_at": st.alarm_at.isoformat() if st.alarm_at else None,
            "run_start": st.run_start.isoformat() if st.run_start else None,
            "window_trials": n,
            "window_successes": x,
            "alarms_in_call": [a.at.isoformat() for a in trace.alarms],
            "dispersion": baseline.dispersion,
            "hour_sd": design.hour_sd,
            "hour_sd_source": (None if design.hour_sd == 0 else
                               "baseline" if getattr(baseline, "hour_sd", None) is not None else "prior"),
            "hour_sd_hours": getattr(baseline, "hour_sd_hours", None),
            "expected_rate": expected,
            "expected_interval": list(interval) if interval is not None else None,
            "tolerance_rate": design.p0 if design.hour_sd > 0 else None,
            "tolerance_z": design.tolerance_z,
            "rate_clamped_from": design.baseline_p0,
            "held_alarms": [hd.as_dict() for hd in trace.held],
        },
        state=st.model_dump(mode="json"),
    )


def detect_escalation_drift(
    baseline: Baseline | None,
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    config: DriftConfig = DriftConfig(),
    labels: Mapping[str, str] | None = None,
    states: Mapping[str, CusumState | Mapping[str, Any]] | None = None,
) -> list[Verdict]:
    """Escalation rate of one (router, tier, category) drifting up or down: :func:`detect_rate_drift`.

    ``counts``: successes = escalated attempts, trials = accepted + escalated
    attempts at the tier (shadow and failed attempts excluded, docs/design-notes.md section 2).
    """
    return detect_rate_drift(baseline, counts, now=now, config=config, signal=Signal.ESCALATION_DRIFT,
                             labels=labels, states=states)
