"""A tier's failure mode becoming more frequent (timeouts, rate limits, truncation...).

Failure modes are judged per (tier x failure mode), never pooled into one error
rate: a cheap tier that starts truncating and a strong tier hitting rate limits
are different incidents with different owners (docs/design-notes.md section 2). Each series
is a one-sided (upward) Bernoulli CUSUM from :mod:`routerwatch.drift.cusum_run`:
successes = attempts at the tier that failed with this mode, trials = all
non-shadow attempts at the tier.

Most modes are rare, so the alternative is relative: twice the baseline rate or
+1 point, whichever is larger (``ratio=2, delta=0.01``); an absolute +3 points
would never fire on a 0.2 % mode, and would fire on noise for a 40 % one.
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

#: Default: upward only, 2x or +1 point, one false ticket a month for one series.
FAILURE_SHIFT_CONFIG = DriftConfig(
    delta=0.01,
    ratio=2.0,
    directions=("up",),
    arl0_minutes=arl0_for_budget(1.0, 1, 1),
    severity=Severity.WARNING,
)


def detect_failure_shift(
    baseline: Baseline | None,
    counts: Sequence[MinuteCount],
    *,
    now: datetime,
    config: DriftConfig = FAILURE_SHIFT_CONFIG,
    labels: Mapping[str, str] | None = None,
    state: CusumState | Mapping[str, Any] | None = None,
) -> Verdict:
    """Failure-mode rate of one (router, tier, failure_mode) rising above its baseline.

    Labels default to the baseline's (which should carry ``tier`` and
    ``failure_mode``). Pass ``config`` with ``arl0_minutes`` from
    :func:`~routerwatch.drift.cusum_design.arl0_for_budget` over all tier x mode series.
    """
    if config.directions != ("up",):
        config = replace(config, directions=("up",))
    return detect_rate_drift(
        baseline,
        counts,
        now=now,
        config=config,
        signal=Signal.FAILURE_SHIFT,
        labels=labels,
        states={"up": state} if state is not None else None,
    )[0]
