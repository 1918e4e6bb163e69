"""The run of a one-sided Bernoulli CUSUM: per-minute counts folded into its statistic, alarms and change-point.

A :class:`~routerwatch.drift.cusum_design.CusumDesign` (the rates compared and
the threshold ``h``) adds each minute's log-likelihood ratio to the statistic,
``S_t = max(0, S_{t-1} + llr_t)``, and alarms when ``S_t >= h``. The same pure
fold (:func:`run_cusum`) serves the live scheduler (fold the minutes since the
last call, passing the previous :class:`CusumState`; or fold a long look-back
window from zero each time) and a benchmark replaying history (fold everything;
:attr:`CusumTrace.alarms` lists every page it would have sent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from routerwatch.drift.attribution import hold_check
from routerwatch.drift.counts import MinuteCount, check_counts, merge_by_minute
from routerwatch.drift.cusum_design import CusumDesign
from routerwatch.drift.overdispersion import shift_logit


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


def coerce_state(state: CusumState | Mapping[str, Any] | None) -> CusumState | None:
    """A state to resume from as a :class:`CusumState` (a verdict's ``state`` is its JSON form); None stays None.

    Raises pydantic's ``ValidationError`` (a ``ValueError``) for a mapping that is not a valid state.
    """
    if state is None or isinstance(state, CusumState):
        return state
    return CusumState.model_validate(state)
