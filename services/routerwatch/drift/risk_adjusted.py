"""Tier-level escalation drift that a change of category mix alone cannot trigger.

A tier's pooled escalation rate moves when the *mix* of categories it serves
moves (more hard "code" requests, fewer easy "billing" ones) even when every
category escalates exactly as before. Paging on that is paging on traffic, not
on the router. The risk-adjusted CUSUM (Steiner, Cook, Farewell & Treasure
2000) judges each minute against the escalations *expected for that minute's
mix*: expected = sum over categories of ``trials_c * p0_c`` from the category
baselines. With an alternative odds ratio ``R`` the per-minute log-likelihood
ratio is::

    llr_t = X_t * log R  -  sum_c n_c,t * log(1 - p0_c + R * p0_c)

(``X_t`` the tier's escalations). Under "every category at its baseline" its
expectation is negative whatever the mix, so a pure mix shift does not move it;
a within-category rise (the odds of escalating rising across categories) does.
``R`` is the odds ratio of a ``delta`` shift at the tier's pooled baseline
rate, and ``h`` comes from the same Markov-chain ARL computation as the plain
CUSUM, with the tier's total escalations a sum of category binomials.

:func:`kitagawa` splits a pooled rate change into its mix and within-category
parts for the alert text (Kitagawa 1955, the symmetric form Das Gupta uses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from routerwatch.drift.baseline import Baseline, baseline_problem
from routerwatch.drift.counts import MINUTE, MinuteCount, check_counts, merge_by_minute
from routerwatch.drift.cusum import (
    CusumState,
    DriftConfig,
    _coerce_state,
    _design_rate,
    _rounded_odds,
    alternative_rate,
    fold,
    threshold_for_mix,
)
from routerwatch.drift.verdict import Signal, Status, Verdict, fmt_labels, silent


class KitagawaSplit(NamedTuple):
    """``total = mix + within`` (exactly, up to float rounding)."""

    total: float
    mix: float
    within: float


def kitagawa(
    rate_before: Mapping[str, float],
    weight_before: Mapping[str, float],
    rate_after: Mapping[str, float],
    weight_after: Mapping[str, float],
) -> KitagawaSplit:
    """Split the change of a weighted rate into a mix effect and a within-category effect.

    Weights are category volumes (trials or requests) or shares; each side is
    normalised to shares. With shares ``w`` and rates ``r``::

        total  = sum w_a r_a - sum w_b r_b
        mix    = sum (w_a - w_b) * (r_a + r_b) / 2      (categories re-weighted at average rates)
        within = sum (r_a - r_b) * (w_a + w_b) / 2      (rates changed at average weights)

    and ``mix + within == total`` term by term. A category present on one side
    only takes the same rate on both sides (it has none on the side where its
    weight is zero), so its appearance or disappearance counts as mix.
    Raises ``ValueError`` when a side has no weight.
    """
    cats = sorted(set(weight_before) | set(weight_after))
    tb = sum(max(0.0, weight_before.get(c, 0.0)) for c in cats)
    ta = sum(max(0.0, weight_after.get(c, 0.0)) for c in cats)
    if tb <= 0 or ta <= 0:
        raise ValueError("both sides need a positive total weight")
    total = mix = within = 0.0
    for c in cats:
        wb = max(0.0, weight_before.get(c, 0.0)) / tb
        wa = max(0.0, weight_after.get(c, 0.0)) / ta
        rb = rate_before.get(c) if wb > 0 else None
        ra = rate_after.get(c) if wa > 0 else None
        if rb is None and ra is None:
            continue
        if rb is None:
            rb = ra
        if ra is None:
            ra = rb
        assert ra is not None and rb is not None
        total += wa * ra - wb * rb
        mix += (wa - wb) * (ra + rb) / 2
        within += (ra - rb) * (wa + wb) / 2
    return KitagawaSplit(total, mix, within)


def _tier_rate(baselines: Mapping[str, Baseline]) -> float:
    s = sum(b.successes for b in baselines.values())
    n = sum(b.trials for b in baselines.values())
    return (s + 0.5) / (n + 1.0)


def detect_tier_drift(
    baselines: Mapping[str, Baseline | None],
    counts: Mapping[str, Sequence[MinuteCount]],
    *,
    now: datetime,
    labels: Mapping[str, str],
    config: DriftConfig = DriftConfig(),
    states: Mapping[str, CusumState | Mapping[str, Any]] | None = None,
) -> list[Verdict]:
    """Risk-adjusted escalation drift of one tier: one verdict per direction.

    ``baselines`` and ``counts`` are keyed by category (successes = escalated
    attempts, trials = accepted + escalated, per minute). ``labels`` name the
    tier (router, tier...); verdicts add ``scope=tier`` and ``direction``; the
    signal is ``escalation_drift`` like the per-category detector's.

    Categories with traffic but no baseline (new ones) are judged at the tier's
    pooled baseline rate; ``extra["unbaselined_trials"]`` says how much traffic
    that covered. No category baseline at all -> ``no_baseline``; a tier
    volume below ``config.min_volume`` -> ``insufficient_volume``.
    ``extra["kitagawa"]`` splits the pooled change between the baseline and the
    observed window (since the change start when firing) into mix and within.

    A category baseline that cannot be judged against (see
    :func:`~routerwatch.drift.baseline.baseline_problem`) is treated as absent,
    its traffic judged at the pooled rate; ``extra["degenerate_baselines"]``
    names it and why. Rates within ``RATE_EPS`` of 0 or 1 are clamped as in
    :func:`~routerwatch.drift.cusum.plan_cusum`. A threshold search that fails
    (a last guard; never seen in tests) gives ``degenerate`` verdicts saying so.
    """
    degenerate = {c: why for c, b in baselines.items() if b is not None and (why := baseline_problem(b))}
    known = {c: b for c, b in baselines.items() if b is not None and c not in degenerate}
    base_labels = {**labels, "scope": "tier"}
    signal = Signal.ESCALATION_DRIFT
    version = "+".join(sorted(b.version for b in known.values())) or None
    if not known:
        return [
            silent(signal, Status.NO_BASELINE, now=now, labels={**base_labels, "direction": d},
                   severity=config.severity, reason="no category of this tier has a baseline yet: not evaluated")
            for d in config.directions
        ]
    volume = sum(b.volume for b in known.values())
    if volume < config.min_volume:
        return [
            silent(signal, Status.INSUFFICIENT_VOLUME, now=now, labels={**base_labels, "direction": d},
                   severity=config.severity, baseline_version=version,
                   reason=f"tier baseline volume {volume:.2f} trials/min is below the floor {config.min_volume}")
            for d in config.directions
        ]
    pooled = _design_rate(_tier_rate(known))
    start = max(b.window_end for b in known.values())
    # Per minute: escalations and the compensator sum_c n_c*log(1 - p0_c + R*p0_c), which
    # depends on R, so the steps are built per direction below from these per-category rows.
    per_minute: dict[datetime, dict[str, tuple[int, int]]] = {}
    for cat, rows in counts.items():
        merged = merge_by_minute(rows)
        check_counts(merged)
        for c in merged:
            if start <= c.minute < now and c.trials > 0:
                per_minute.setdefault(c.minute, {})[cat] = (c.successes, c.trials)
    minutes = sorted(per_minute)
    rate_of = {c: _design_rate(b.p0) for c, b in known.items()}
    out = []
    for direction in config.directions:
        lab = {**base_labels, "direction": direction}
        p1 = alternative_rate(pooled, direction, config.delta, config.ratio)
        if p1 is None or not 0 < p1 < 1 or p1 == pooled:
            out.append(silent(signal, Status.DEGENERATE, now=now, labels=lab, severity=config.severity,
                              baseline_version=version,
                              reason=f"skipped: pooled rate {pooled:.6g} leaves no room for a shift {direction}"))
            continue
        r = _rounded_odds(pooled, p1)
        terms = {c: (b.volume, rate_of[c]) for c, b in known.items()}
        try:
            h, achieved = threshold_for_mix(terms, r, config.arl0_minutes)
        except (ArithmeticError, ValueError, IndexError) as exc:
            h, achieved, failure = math.nan, math.nan, f"{type(exc).__name__}: {exc}"
        else:
            failure = None if math.isfinite(h) and h > 0 else f"h={h}"
        if failure is not None:
            out.append(silent(signal, Status.DEGENERATE, now=now, labels=lab, severity=config.severity,
                              baseline_version=version,
                              reason=f"skipped: threshold search failed at pooled rate {pooled:.6g} ({failure})"))
            continue
        log_r = math.log(r)
        g = {c: math.log1p(p * (r - 1)) for c, p in rate_of.items()}
        g_pooled = math.log1p(pooled * (r - 1))
        steps = []
        for m in minutes:
            x = n = 0
            comp = 0.0
            for cat, (s, t) in per_minute[m].items():
                x += s
                n += t
                comp += t * g.get(cat, g_pooled)
            steps.append((m, float(x), comp, n))
        prior = _coerce_state((states or {}).get(direction))
        trace = fold(steps, log_odds=log_r, h=h, state=prior, min_trials=config.min_trials,
                     cap_factor=config.cap_factor, clear_factor=config.clear_factor)
        st = trace.state
        firing = st.alarm_at is not None
        since = st.change_start if firing else None
        # Not firing: a fixed recent window (the current excursion is biased by construction).
        window_from = since or (now - config.observe_minutes * MINUTE)
        obs_x: dict[str, int] = {}
        obs_n: dict[str, int] = {}
        for m in minutes:
            if m >= window_from:
                for cat, (s, t) in per_minute[m].items():
                    obs_x[cat] = obs_x.get(cat, 0) + s
                    obs_n[cat] = obs_n.get(cat, 0) + t
        n_tot = sum(obs_n.values())
        x_tot = sum(obs_x.values())
        expected = sum(t * rate_of.get(c, pooled) for c, t in obs_n.items())
        observed = x_tot / n_tot if n_tot else None
        expected_rate = expected / n_tot if n_tot else None
        unbaselined = sum(t for c, t in obs_n.items() if c not in known)
        split = None
        if n_tot:
            split = kitagawa(
                {c: b.observed_rate for c, b in known.items()},
                {c: b.trials for c, b in known.items()},
                {c: obs_x[c] / obs_n[c] for c in obs_n},
                obs_n,
            )
        where = fmt_labels(labels)
        obs_text = f"{observed:.1%}" if observed is not None else "n/a"
        exp_text = f"{expected_rate:.1%}" if expected_rate is not None else "n/a"
        split_text = (
            f" Of the pooled change {split.total:+.1%} since the baseline, category mix explains {split.mix:+.1%} "
            f"and within-category rates {split.within:+.1%}."
            if split else ""
        )
        if firing and since is not None:
            summary = f"tier escalation rate {obs_text} vs {exp_text} expected for its category mix ({where})"
            description = (
                f"The risk-adjusted {direction}ward CUSUM of {where} crossed h={h:.1f} at "
                f"{st.alarm_at:%Y-%m-%d %H:%M} UTC; the change most likely began at {since:%Y-%m-%d %H:%M} UTC. "
                f"Since then {x_tot} escalations of {n_tot} ({obs_text}) where the baseline rates of the categories "
                f"served predict {expected:.0f} ({exp_text}).{split_text}"
            )
        else:
            summary = (
                f"tier escalation rate {obs_text} vs {exp_text} expected for its mix: no {direction}ward shift ({where})"
            )
            description = f"risk-adjusted {direction}ward CUSUM S={st.s:.2f} below h={h:.2f}.{split_text}"
        out.append(
            Verdict(
                signal=signal,
                labels=lab,
                status=Status.OK,
                firing=firing,
                severity=config.severity,
                statistic=st.s,
                threshold=h,
                baseline_value=expected_rate,
                observed_value=observed,
                magnitude=None if observed is None or expected_rate is None else observed - expected_rate,
                change_start=since,
                evaluated_at=now,
                baseline_version=version,
                summary=summary,
                description=description,
                extra={
                    "pooled_baseline_rate": pooled,
                    "odds_ratio": r,
                    "arl0_target": config.arl0_minutes,
                    "arl0": achieved if math.isfinite(achieved) else None,
                    "window_trials": n_tot,
                    "window_successes": x_tot,
                    "expected_successes": expected,
                    "unbaselined_trials": unbaselined,
                    "kitagawa": split._asdict() if split else None,
                    "alarm_at": st.alarm_at.isoformat() if st.alarm_at else None,
                    "alarms_in_call": [a.at.isoformat() for a in trace.alarms],
                    "degenerate_baselines": degenerate,
                },
                state=st.model_dump(mode="json"),
            )
        )
    return out
