"""The cheap tier going stale: its would-be quality on the shadow slice falling.

Served traffic hides a cheap tier's decline: the gate escalates more, or worse,
false-accepts more, and the escalation rate alone cannot tell which. The shadow
slice forces the cheap tier on a random sample of requests and grades its
answers, so its pass rate measures the cheap tier on the full distribution.
This is a one-sided (downward) Bernoulli CUSUM on that pass rate: successes =
shadow answers graded correct, trials = shadow answers graded, per minute of the
*request* (grades arrive later; pass ``now`` late enough that the minutes folded
are fully graded, or the fresh minutes look worse than they are).

Shadow volumes are small, so low-volume minutes are pooled (``min_trials``)
and the default shift is -5 points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from routerwatch.drift.baseline import Baseline
from routerwatch.drift.counts import MinuteCount
from routerwatch.drift.cusum_design import arl0_for_budget
from routerwatch.drift.cusum_run import CusumState
from routerwatch.drift.rate_drift import DriftConfig, detect_rate_drift
from routerwatch.drift.verdict import Severity, Signal, Verdict

#: Default: downward only, -5 points, minutes pooled to 20 grades, one false ticket a month.
SHADOW_CONFIG = DriftConfig(
    delta=0.05,
    directions=("down",),
    arl0_minutes=arl0_for_budget(1.0, 1, 1),
    min_trials=20,
    min_volume=0.05,
    severity=Severity.WARNING,
)


def detect_shadow_quality(
    baseline: Baseline | None,
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    config: DriftConfig = SHADOW_CONFIG,
    labels: Mapping[str, str] | None = None,
    state: CusumState | Mapping[str, Any] | None = None,
) -> Verdict:
    """Shadow pass rate of one (router, tier[, category]) falling below its baseline."""
    if config.directions != ("down",):
        config = replace(config, directions=("down",))
    return detect_rate_drift(
        baseline,
        counts,
        now=now,
        config=config,
        signal=Signal.SHADOW_QUALITY,
        labels=labels,
        states={"down": state} if state is not None else None,
    )[0]
