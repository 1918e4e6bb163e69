"""Pure drift detectors: per-minute counts and frozen baselines in, :class:`Verdict` out.

No I/O and no clock reads: every detector takes ``now`` (the end of the last
complete minute) and the counts it should judge, so the scheduler can run
them live every minute and a benchmark can replay history through the very
same functions. The modules:

- :mod:`.baseline`: :class:`Baseline`, :func:`learn_baseline` (frozen, versioned, per series),
  :func:`baseline_problem`
- :mod:`.cusum_design`: Bernoulli CUSUMs with thresholds from a false-alarm budget;
  :func:`plan_cusum` (a design, or a :class:`DesignSkip` naming why not)
- :mod:`.cusum_run`: :func:`run_cusum` (counts folded into a CUSUM's statistic, alarms, change-point)
- :mod:`.rate_drift`: :func:`detect_escalation_drift`, :func:`detect_rate_drift` (runs turned into verdicts)
- :mod:`.risk_adjusted`: tier-level CUSUM blind to category mix; :func:`kitagawa`
- :mod:`.surge`: :func:`detect_surge` (broken verifier) with the dominant reason
- :mod:`.burn_rate`: :func:`evaluate_burn_rate` (latency SLO, multi-window)
- :mod:`.failure_shift`, :mod:`.shadow`, :mod:`.tenant`, :mod:`.confound`, :mod:`.pipeline`
- :mod:`.verdict`: :class:`Verdict`, :class:`Signal`, :class:`Severity`, :class:`Status`
"""

from routerwatch.drift.baseline import Baseline, baseline_problem, learn_baseline
from routerwatch.drift.burn_rate import DEFAULT_BURN_RULES, BurnRule, evaluate_burn_rate
from routerwatch.drift.confound import detect_experiment_confound
from routerwatch.drift.counts import MINUTES_PER_MONTH, MinuteCount
from routerwatch.drift.cusum_design import (
    CusumDesign,
    DesignSkip,
    arl0_for_budget,
    average_run_length,
    design_cusum,
    plan_cusum,
    simulate_run_lengths,
    threshold_for_arl,
)
from routerwatch.drift.cusum_run import CusumState, CusumTrace, run_cusum
from routerwatch.drift.failure_shift import FAILURE_SHIFT_CONFIG, detect_failure_shift
from routerwatch.drift.pipeline import check_dlq_rate, check_ingest_lag, check_sdk_drops, detect_silent_routers
from routerwatch.drift.rate_drift import DriftConfig, detect_escalation_drift, detect_rate_drift
from routerwatch.drift.risk_adjusted import KitagawaSplit, detect_tier_drift, kitagawa
from routerwatch.drift.shadow import SHADOW_CONFIG, detect_shadow_quality
from routerwatch.drift.surge import SurgeConfig, detect_surge, dominant_reason
from routerwatch.drift.tenant import TenantConfig, TenantCounts, detect_tenant_anomalies
from routerwatch.drift.verdict import ALERT_NAMES, Severity, Signal, Status, Verdict

__all__ = [
    "ALERT_NAMES",
    "DEFAULT_BURN_RULES",
    "FAILURE_SHIFT_CONFIG",
    "MINUTES_PER_MONTH",
    "SHADOW_CONFIG",
    "Baseline",
    "BurnRule",
    "CusumDesign",
    "CusumState",
    "CusumTrace",
    "DesignSkip",
    "DriftConfig",
    "KitagawaSplit",
    "MinuteCount",
    "Severity",
    "Signal",
    "Status",
    "SurgeConfig",
    "TenantConfig",
    "TenantCounts",
    "Verdict",
    "arl0_for_budget",
    "average_run_length",
    "baseline_problem",
    "check_dlq_rate",
    "check_ingest_lag",
    "check_sdk_drops",
    "design_cusum",
    "detect_escalation_drift",
    "detect_experiment_confound",
    "detect_failure_shift",
    "detect_rate_drift",
    "detect_shadow_quality",
    "detect_silent_routers",
    "detect_surge",
    "detect_tenant_anomalies",
    "detect_tier_drift",
    "dominant_reason",
    "evaluate_burn_rate",
    "kitagawa",
    "learn_baseline",
    "plan_cusum",
    "run_cusum",
    "simulate_run_lengths",
    "threshold_for_arl",
]
