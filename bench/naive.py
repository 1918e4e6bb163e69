"""Naive drift detectors the replay benchmark compares routerwatch with, on the same streams.

Each is evaluated at the end of every minute over a trailing window that
includes that minute, against the same frozen baseline window routerwatch
learns from, and says "firing" or not for that minute:

- ``naive.fixed5``: the 5-minute rate exceeds the baseline rate + 5 points.
- ``naive.z60``: one-sided binomial z-test over the last 60 minutes, ``z > 3``.
- ``naive.psi60``: population stability index of the last 60 per-minute
  rates against the baseline's per-minute rates, 10 bins at the baseline's
  deciles, ``PSI > 0.2`` (the usual "significant shift" rule). Empty bins are
  floored at half a count (a kinder floor than the common 1e-4, which turns
  every empty bin into a PSI of about 0.7 at this sample size).
- ``naive.chi2_60``: chi-square test of the 2x2 table (escalated / not,
  window / baseline) over the last 60 minutes, ``p < 0.05`` (statistic > 3.841).
  Two-sided, as the test is usually run.

They are written for speed (prefix sums, a rolling histogram): one pass over
the stream, a few microseconds a minute.
"""

from __future__ import annotations

import math
from bisect import bisect_right

NAIVE = ("naive.fixed5", "naive.z60", "naive.psi60", "naive.chi2_60")

FIXED_POINTS = 0.05
Z_LIMIT = 3.0
PSI_LIMIT = 0.2
CHI2_LIMIT = 3.841458820694124  # chi-square 1 df, p = 0.05
PSI_BINS = 10


def _quantile_edges(rates: list[float], bins: int) -> list[float]:
    s = sorted(rates)
    edges = []
    for k in range(1, bins):
        v = s[min(len(s) - 1, int(k * len(s) / bins))]
        if not edges or v > edges[-1]:
            edges.append(v)
    return edges


def naive_firing(xs: list[int], ns: list[int], *, base_start: int, base_end: int, start: int,
                 stop: int | None = None) -> dict[str, bytearray]:
    """Per-minute firing flags of every naive detector over minutes ``[start, stop)``.

    ``xs``/``ns``: successes/trials per minute from minute 0; the baseline is
    minutes ``[base_start, base_end)``. ``out[name][i - start]`` is 1 when
    ``name`` fires at the end of minute ``i``.
    """
    stop = len(xs) if stop is None else stop
    bx = sum(xs[base_start:base_end])
    bn = sum(ns[base_start:base_end])
    p0 = bx / bn
    sd1 = math.sqrt(p0 * (1 - p0))
    # PSI bins from the baseline's per-minute rates.
    base_rates = [x / n for x, n in zip(xs[base_start:base_end], ns[base_start:base_end]) if n > 0]
    edges = _quantile_edges(base_rates, PSI_BINS)
    nb = len(edges) + 1
    base_hist = [0] * nb
    for r in base_rates:
        base_hist[bisect_right(edges, r)] += 1
    floor_b = 0.5 / len(base_rates)
    base_p = [max(c / len(base_rates), floor_b) for c in base_hist]
    bins = [bisect_right(edges, x / n) if n > 0 else -1 for x, n in zip(xs, ns)]

    px = [0] * (len(xs) + 1)
    pn = [0] * (len(xs) + 1)
    acc_x = acc_n = 0
    for i, (x, n) in enumerate(zip(xs, ns)):
        acc_x += x
        acc_n += n
        px[i + 1] = acc_x
        pn[i + 1] = acc_n

    length = stop - start
    fixed, zt, psi, chi = bytearray(length), bytearray(length), bytearray(length), bytearray(length)
    limit5 = p0 + FIXED_POINTS
    c_, d_ = bx, bn - bx
    # Rolling histogram of the 60 per-minute rates ending at minute i.
    hist = [0] * nb
    first = max(0, start - 59)
    for j in range(first, start):
        if bins[j] >= 0:
            hist[bins[j]] += 1
    log = math.log
    # PSI term of each bin for each count 0..60 in a full 60-minute window.
    terms60 = [[((c / 60 if c else 0.5 / 60) - q) * log((c / 60 if c else 0.5 / 60) / q) for c in range(61)]
               for q in base_p]
    for i in range(start, stop):
        b = bins[i]
        if b >= 0:
            hist[b] += 1
        old = i - 60
        if old >= first and bins[old] >= 0:
            hist[bins[old]] -= 1
        k = i - start
        lo5 = max(0, i - 4)
        n5 = pn[i + 1] - pn[lo5]
        if n5 > 0 and (px[i + 1] - px[lo5]) / n5 > limit5:
            fixed[k] = 1
        lo60 = max(0, i - 59)
        n60 = pn[i + 1] - pn[lo60]
        if n60 > 0:
            x60 = px[i + 1] - px[lo60]
            if (x60 - n60 * p0) / (sd1 * math.sqrt(n60)) > Z_LIMIT:
                zt[k] = 1
            a_, b_ = x60, n60 - x60
            den = (a_ + b_) * (c_ + d_) * (a_ + c_) * (b_ + d_)
            if den > 0:
                num = a_ * d_ - b_ * c_
                if (a_ + b_ + c_ + d_) * num * num / den > CHI2_LIMIT:
                    chi[k] = 1
        m = sum(hist)
        if m == 60:  # the usual case: a full window, every bin's PSI term from the table
            value = 0.0
            for b_, c in enumerate(hist):
                value += terms60[b_][c]
            if value > PSI_LIMIT:
                psi[k] = 1
        elif m >= 10:
            floor_w = 0.5 / m
            value = 0.0
            for c, q in zip(hist, base_p):
                w = c / m if c else floor_w
                value += (w - q) * log(w / q)
            if value > PSI_LIMIT:
                psi[k] = 1
    return {"naive.fixed5": fixed, "naive.z60": zt, "naive.psi60": psi, "naive.chi2_60": chi}
