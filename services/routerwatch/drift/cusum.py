"""Bernoulli CUSUMs on per-minute binomial counts, with thresholds derived from a false-alarm budget.

The CUSUM's three jobs live in three modules:

- :mod:`routerwatch.drift.cusum_design`: the design, a threshold ``h`` for an
  in-control ARL from a false-alarm budget by the Brook-Evans Markov chain
  (:func:`arl0_for_budget`, :func:`~routerwatch.drift.cusum_design.plan_cusum`,
  :func:`threshold_for_mix`, :class:`CusumDesign`, :class:`DesignSkip`)
- :mod:`routerwatch.drift.cusum_run`: the run, per-minute counts folded into the
  statistic, its alarms and change-point (:class:`CusumState`, :func:`fold`,
  :func:`run_cusum`)
- :mod:`routerwatch.drift.rate_drift`: the rate-drift detector, runs turned into
  verdicts and their text (:class:`DriftConfig`, :func:`detect_rate_drift`,
  :class:`FalseAlarmBudget`, :func:`spacing_text`)

This module re-exports the names the other detectors and the scheduler import
from here; new code imports from the module that owns the name.
"""

from __future__ import annotations

from routerwatch.drift.cusum_design import (
    MAX_DESIGN_TRIALS,
    CusumDesign,
    DesignSkip,
    alternative_rate,
    arl0_for_budget,
    binomial_pmf,
    design_rate,
    odds_ratio,
    round_rate,
    round_sig,
    rounded_odds,
    threshold_for_mix,
)
from routerwatch.drift.cusum_run import CusumState, coerce_state, fold, run_cusum
from routerwatch.drift.rate_drift import (
    DriftConfig,
    FalseAlarmBudget,
    detect_rate_drift,
    drift_verdict,
    expected_interval,
    held_text,
    series_hour_sd,
    spacing_text,
    threshold_text,
)

__all__ = [
    "MAX_DESIGN_TRIALS",
    "CusumDesign",
    "CusumState",
    "DesignSkip",
    "DriftConfig",
    "FalseAlarmBudget",
    "alternative_rate",
    "arl0_for_budget",
    "detect_rate_drift",
    "expected_interval",
    "fold",
    "held_text",
    "odds_ratio",
    "run_cusum",
    "spacing_text",
    "threshold_for_mix",
    "threshold_text",
]

# The names these helpers had before they became public in their modules, still imported from here
# by routerwatch.drift.surge, routerwatch.drift.risk_adjusted and routerwatch.drift.overdispersion:
# drop each one once its importers use the public name.
_binomial_pmf = binomial_pmf
_coerce_state = coerce_state
_design_rate = design_rate
_drift_verdict = drift_verdict
_hour_sd = series_hour_sd
_rounded_odds = rounded_odds
_sig = round_sig
_sig_rate = round_rate
