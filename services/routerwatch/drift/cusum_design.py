"""Design of a Bernoulli CUSUM: its threshold from a false-alarm budget, by the run lengths of a Markov chain.

A one-sided CUSUM accumulates the log-likelihood ratio of "the rate moved from
``p0`` to ``p1``" against "it is still ``p0``", minute by minute::

    llr_t = x_t * log(p1 / p0) + (n_t - x_t) * log((1 - p1) / (1 - p0))
    S_t   = max(0, S_{t-1} + llr_t)            alarm when S_t >= h

for ``x_t`` successes of ``n_t`` trials. Two of them (``up``: p1 = p0 + delta,
``down``: p1 = p0 - delta) watch one series. This is the optimal detector of a
persistent shift of that size (Moustakides/Lorden), and unlike a fixed
threshold on the per-minute rate its sensitivity does not depend on volume.
This module sizes one (:class:`CusumDesign`); :mod:`routerwatch.drift.cusum_run`
folds minutes through it and :mod:`routerwatch.drift.rate_drift` turns the runs
into verdicts.

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
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from routerwatch.drift.counts import MINUTES_PER_MONTH
from routerwatch.drift.overdispersion import quantize_sd, tolerance_design
from routerwatch.drift.verdict import Status

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


def round_sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant digits: the cache key of a design input."""
    return float(f"{x:.{digits}g}")


def design_rate(p: float, eps: float = RATE_EPS) -> float:
    """``p`` clamped into ``[eps, 1 - eps]`` (see :data:`RATE_EPS`).

    Shifted rates use ``eps = RATE_EPS / 2``: :func:`alternative_rate` goes at
    most half-way to the bound, so a clamped baseline keeps its room to move.
    """
    return min(max(p, eps), 1.0 - eps)


def round_rate(p: float, digits: int = 4) -> float:
    """A rate rounded for a cache key, on its smaller side: ``1 - p`` is rounded when ``p > 0.5``.

    Rounding ``p`` itself sent 0.99995 to 1.0 (and 0.9999's shifted rate with it).
    """
    if p > 0.5:
        return 1.0 - round_sig(1.0 - p, digits)
    return round_sig(p, digits)


@lru_cache(maxsize=1024)
def binomial_pmf(n: int, p: float) -> tuple[int, tuple[float, ...]]:
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
        tlo, tp = binomial_pmf(n, p)
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
    return binomial_pmf(n_eff, design_rate(mean / n_eff))


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
def cached_threshold(terms: tuple[tuple[int, float], ...], r: float, target: float, states: int) -> tuple[float, float]:
    """``(h, achieved ARL0)`` for a design key (rounded ``terms``, odds ratio ``r``, ARL0 ``target``), cached.

    The one cache behind :func:`threshold_for_arl`, :func:`threshold_for_mix` and
    :func:`plan_cusum`: designs whose inputs round alike share one entry.
    """
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
        return round(round_sig(min(n, MAX_DESIGN_TRIALS)))

    if isinstance(trials, Mapping):
        out = tuple(sorted((volume(n), round_rate(p)) for n, p in trials.values() if volume(n) >= 1))
        if out:
            return out
        # Every category below one trial a minute: size the chain as one trial at the mean rate.
        total = sum(n for n, _ in trials.values())
        mean = sum(n * p for n, p in trials.values()) / total if total else 0.5
        return ((1, round_rate(mean)),)
    assert p0 is not None
    return ((max(1, volume(trials)), round_rate(p0)),)


def rounded_odds(p0: float, p1: float) -> float:
    """The odds ratio of ``p1`` to ``p0`` for a design's cache key (:func:`cached_threshold`)."""
    # Round the rates, not the ratio: nearby baselines then share one cached design.
    r0, r1 = round_rate(p0), round_rate(p1)
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
    return cached_threshold(_terms(volumes, None), round_sig(r, 6), round_sig(arl0), states)


def threshold_for_arl(p0: float, trials: float, p1: float, arl0: float, *, states: int = CHAIN_STATES) -> float:
    """The CUSUM threshold ``h`` whose in-control ARL is ``arl0`` minutes.

    ``p0`` baseline rate, ``trials`` expected trials per minute, ``p1`` the
    shifted rate the CUSUM is tuned to (above ``p0`` for an upward CUSUM, below
    for a downward one). Inputs are rounded to 3-4 significant digits and the
    result cached, so calling it for every series every minute is cheap.
    """
    return cached_threshold(_terms(trials, p0), rounded_odds(p0, p1), round_sig(arl0), states)[0]


def average_run_length(
    p0: float, trials: float, p1: float, h: float, *, p_true: float | None = None, states: int = CHAIN_STATES
) -> float:
    """Expected minutes from ``S = 0`` to an alarm when the real rate is ``p_true`` (default ``p0``).

    ``p_true = p0`` gives ARL0 (the false-alarm spacing), ``p_true = p1`` the
    zero-start detection delay of the shift the CUSUM is tuned for.
    """
    n = max(1, round(min(trials, MAX_DESIGN_TRIALS)))
    p0, p1 = design_rate(p0), design_rate(p1, RATE_EPS / 2)
    lo, probs = binomial_pmf(n, design_rate(p0 if p_true is None else p_true))
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
    designs: the design volume) caps a minute's evidence, see
    :func:`~routerwatch.drift.cusum_run.fold`.
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
    rate = design_rate(p0)
    p1 = alternative_rate(rate, direction, delta, ratio)
    if p1 is None or not 0 < p1 < 1 or p1 == rate:
        return DesignSkip(f"baseline rate {p0:.6g} leaves no room for a shift {direction} "
                          f"(delta {delta}, ratio {ratio})")
    n = min(float(trials), MAX_DESIGN_TRIALS)
    tau = quantize_sd(hour_sd)
    if tau > 0:
        return _plan_tolerance(p0, rate, n, direction, arl0, delta, ratio, tau)
    try:
        h, achieved = cached_threshold(_terms(n, rate), rounded_odds(rate, p1), round_sig(arl0), states)
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
    center = round_rate(rate, 3)
    volume = max(1, round(round_sig(min(n, MAX_DESIGN_TRIALS), 2)))
    try:
        d = tolerance_design(center, volume, direction, round_sig(arl0, 2), delta, ratio, tau)
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
    lo, probs = binomial_pmf(trials, p_true)
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
