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

Overdispersed traffic (``DriftConfig(overdispersion=True)``)
-----------------------------------------------------------

Every category's rate wobbles from clock hour to clock hour (``Baseline.hour_sd``,
:mod:`routerwatch.drift.overdispersion`), and the tier's risk-adjusted statistic
wobbles with them: on an iid design a wobbly tier paged a thousand times a month
(logit sd 0.1, 15 tiers). The tier is then judged like a category series, with a
tolerance: the in-control odds ratio is not 1 but ``R_ref = exp(+-z tau)`` (every
category's odds moved ``z`` sd of the tier's wobble), the alternative
``R1 = R_ref * R_delta``, and the per-minute increment::

    llr_t = X_t * log(R1 / R_ref)  -  sum_c n_c,t * log((1 - p0_c + R1 p0_c) / (1 - p0_c + R_ref p0_c))

still mix-proof (its expectation at "every category at its baseline" is negative
whatever the mix). ``tau`` is the tier's wobble: the categories' hour-level sds
averaged with weights ``n_c p0_c (1 - p0_c)`` (each category's share of the
tier's binomial variance). That is the sd of the tier's pooled logit when the
categories wobble together, the upper bound over every correlation between them
(independent wobbles would give about ``1 / sqrt(k)`` of it), so the design errs
on the quiet side when nothing says how the categories move together. ``z``,
``h`` and the computed delays come from
:func:`~routerwatch.drift.overdispersion.tolerance_design` for the tier's pooled
rate and volume: the tier's escalations are a sum of category binomials whose
variance is at most the pooled binomial's, so the pooled design's ARL is a lower
bound. A minute's evidence is capped at the design volume as for the categories
(:func:`~routerwatch.drift.cusum_run.fold`'s ``evidence_trials``).
"""

from __future__ import annotations

import functools

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from routerwatch.drift.attribution import TenantBreakdown, hold_check
from routerwatch.drift.baseline import Baseline, baseline_problem
from routerwatch.drift.counts import MINUTE, MinuteCount, check_counts, merge_by_minute
from routerwatch.drift.cusum_design import (
    MAX_DESIGN_TRIALS,
    alternative_rate,
    design_rate,
    odds_ratio,
    round_rate,
    round_sig,
    rounded_odds,
    threshold_for_mix,
)
from routerwatch.drift.cusum_run import CusumState, coerce_state, fold
from routerwatch.drift.overdispersion import quantize_sd, shift_logit, tolerance_design
from routerwatch.drift.rate_drift import (
    DriftConfig,
    expected_interval,
    held_text,
    series_hour_sd,
    spacing_text,
    threshold_text,
)
from routerwatch.drift.verdict import Signal, Status, Verdict, fmt_labels, silent, window_text


class KitagawaSplit(NamedTuple):
    """``total = mix + within`` (exactly, up to float rounding)."""

    total: float
    mix: float
    within: float


def _per_trial_at(g: Mapping[str, float], g_hour: Mapping[str, Sequence[float]], at: datetime) -> dict[str, float]:
    """Per category, the LLR compensator per trial at minute ``at``: its clock hour's where the
    baseline has an hour profile, the flat one otherwise."""
    return {c: g_hour[c][at.hour] if c in g_hour else v for c, v in g.items()}


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


def tier_hour_sd(baselines: Mapping[str, Baseline], config: DriftConfig) -> float:
    """The hour-level logit sd a tier is designed for (module docstring); 0 without ``config.overdispersion``.

    The categories' own sds (or ``config.hour_sd_prior`` where a baseline has
    none) averaged with weights ``volume * p0 * (1 - p0)``.
    """
    if not config.overdispersion or not baselines:
        return 0.0
    weights = {c: b.volume * b.p0 * (1 - b.p0) for c, b in baselines.items()}
    total = sum(weights.values())
    if not total > 0:
        return 0.0
    return sum(w * series_hour_sd(baselines[c], config) for c, w in weights.items()) / total


class _TierDesign(NamedTuple):
    """One direction's risk-adjusted design: reference and alternative odds ratios, threshold."""

    r_ref: float
    r1: float
    h: float
    arl0: float
    tau: float
    z: float | None
    trials: float | None  # the design volume that caps a minute's evidence (overdispersed designs)


def _tier_design(
    known: Mapping[str, Baseline], pooled: float, volume: float, direction: str, config: DriftConfig
) -> _TierDesign | str:
    """The design of one direction, or why there is none (a reason for a ``degenerate`` verdict)."""
    p1 = alternative_rate(pooled, direction, config.delta, config.ratio)  # type: ignore[arg-type]
    if p1 is None or not 0 < p1 < 1 or p1 == pooled:
        return f"skipped: pooled rate {pooled:.6g} leaves no room for a shift {direction}"
    tau = quantize_sd(tier_hour_sd(known, config))
    try:
        if tau > 0:
            center = round_rate(pooled, 3)
            n = max(1, round(round_sig(min(volume, MAX_DESIGN_TRIALS), 2)))
            d = tolerance_design(center, n, direction, round_sig(config.arl0_minutes, 2), config.delta, config.ratio,
                                 tau)
            if d is None:
                return f"skipped: pooled rate {pooled:.6g} with hour sd {tau} leaves no room for a shift {direction}"
            h, achieved = d.h, d.arl0
            r_ref, r1 = odds_ratio(center, d.p_ref), odds_ratio(center, d.p1)
            design = _TierDesign(r_ref, r1, h, achieved, tau, d.z, float(n))
        else:
            r = rounded_odds(pooled, p1)
            terms = {c: (b.volume, design_rate(b.p0)) for c, b in known.items()}
            h, achieved = threshold_for_mix(terms, r, config.arl0_minutes)
            design = _TierDesign(1.0, r, h, achieved, 0.0, None, None)
    except (ArithmeticError, ValueError, IndexError) as exc:
        return f"skipped: threshold search failed at pooled rate {pooled:.6g} ({type(exc).__name__}: {exc})"
    if not (math.isfinite(design.h) and design.h > 0):
        return f"skipped: threshold search failed at pooled rate {pooled:.6g} (h={design.h})"
    return design


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
    tenants: TenantBreakdown | None = None,
) -> list[Verdict]:
    """Risk-adjusted escalation drift of one tier: one verdict per direction.

    ``tenants`` reads the tier's counts by tenant and category for an alarm's
    window: an alarm carried by one tenant's batch is held, not paged
    (:mod:`routerwatch.drift.attribution`; ``extra["held_alarms"]``).

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
    :func:`~routerwatch.drift.cusum_design.plan_cusum`. A threshold search that fails
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
    pooled = design_rate(_tier_rate(known))
    start = max(b.window_end for b in known.values())
    # The history the categories' baselines span: from the earliest start to the latest end.
    baseline_window = (min(b.window_start for b in known.values()), start)
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
    rate_of = {c: design_rate(b.p0) for c, b in known.items()}
    rate_at = {c: [design_rate(shift_logit(rate_of[c], a)) for a in prof]
               for c, b in known.items() if (prof := getattr(b, "rate_profile", None)) and any(prof)}
    out = []
    for direction in config.directions:
        lab = {**base_labels, "direction": direction}
        design = _tier_design(known, pooled, volume, direction, config)
        if isinstance(design, str):
            out.append(silent(signal, Status.DEGENERATE, now=now, labels=lab, severity=config.severity,
                              baseline_version=version, reason=design))
            continue
        h, achieved = design.h, design.arl0
        log_r = math.log(design.r1 / design.r_ref)

        def comp_of(p: float) -> float:
            return math.log1p(p * (design.r1 - 1)) - math.log1p(p * (design.r_ref - 1))

        g = {c: comp_of(p) for c, p in rate_of.items()}
        g_pooled = comp_of(pooled)
        # Categories whose rate follows the clock (Baseline.rate_profile): their compensator by hour of day.
        g_hour = {c: [comp_of(rate_at[c][hh]) for hh in range(24)] for c in rate_at}
        steps = []
        for m in minutes:
            x = n = 0
            comp = 0.0
            for cat, (s_, t) in per_minute[m].items():
                x += s_
                n += t
                comp += t * (g_hour[cat][m.hour] if cat in g_hour else g.get(cat, g_pooled))
            steps.append((m, float(x), comp, n))
        prior = coerce_state((states or {}).get(direction))
        trace = fold(steps, log_odds=log_r, h=h, state=prior, min_trials=config.min_trials,
                     cap_factor=config.cap_factor, clear_factor=config.clear_factor,
                     evidence_trials=design.trials,
                     hold=hold_check(tenants, log_odds=log_r, default_per_trial=g_pooled,
                                     per_trial=functools.partial(_per_trial_at, g, g_hour)))
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
        expected = 0.0
        for m in minutes:
            if m >= window_from:
                for cat, (_, t) in per_minute[m].items():
                    expected += t * (rate_at[cat][m.hour] if cat in rate_at else rate_of.get(cat, pooled))
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
        window_rows = [MinuteCount(m, sum(x for x, _ in per_minute[m].values()),
                                   sum(t for _, t in per_minute[m].values()))
                       for m in minutes if m >= window_from]
        interval = expected_interval(expected_rate, window_rows, design.tau) if expected_rate is not None else None
        interval_text = (
            f" Observed {observed:.2%} vs expected {expected_rate:.2%} for this mix, in-control 95% interval "
            f"{interval[0]:.2%}-{interval[1]:.2%} over these {n_tot} trials."
            if interval is not None and observed is not None and expected_rate is not None else ""
        )
        if design.tau > 0:
            dispersion_text = (
                f" Dispersion: the tier's hour-to-hour wobble, logit sd {design.tau:.2f} (its categories' wobble, "
                f"taken as moving together); the CUSUM judges against every category's odds moved "
                f"{design.z:g} sd of it and its threshold holds one false alarm per "
                f"{spacing_text(config.arl0_minutes)} under that wobble."
            )
        else:
            dispersion_text = " Dispersion: binomial (no hour-to-hour wobble beyond sampling noise)."
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
                f"served predict {expected:.0f} ({exp_text}); their baselines ({version}) were learned from "
                f"{window_text(*baseline_window)}. Threshold sized for "
                f"{threshold_text(config.arl0_minutes, config.budget)}."
                f"{split_text}{interval_text}{dispersion_text}"
            ) + held_text(trace.held)
        else:
            summary = (
                f"tier escalation rate {obs_text} vs {exp_text} expected for its mix: no {direction}ward shift ({where})"
            )
            description = (f"risk-adjusted {direction}ward CUSUM S={st.s:.2f} below h={h:.2f}."
                           f"{split_text}{interval_text}{dispersion_text}") + held_text(trace.held)
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
                baseline_window=baseline_window,
                summary=summary,
                description=description,
                extra={
                    "pooled_baseline_rate": pooled,
                    "odds_ratio": design.r1,
                    "reference_odds_ratio": design.r_ref,
                    "hour_sd": design.tau,
                    "tolerance_z": design.z,
                    "design_trials_per_minute": design.trials,
                    "expected_interval": list(interval) if interval is not None else None,
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
                    "held_alarms": [hd.as_dict() for hd in trace.held],
                },
                state=st.model_dump(mode="json"),
            )
        )
    return out
