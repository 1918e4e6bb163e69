"""The tenant split charges trials what the CUSUM charged them (clock profiles included).

A surge CUSUM whose rate follows an hour-of-day profile charges each minute's trials at that
hour's rate; the split of a crossing between tenants must use the same charge, or the whole
window's evidence can come out negative and a batch that obviously carried the crossing was paged
(13 false surge pages a month with tenant batches in the realistic replay before this).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from routerwatch.drift.attribution import hold_check, tenant_hold
from routerwatch.drift.cusum_run import fold

T0 = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def test_fold_passes_the_runs_own_compensator_per_trial_to_the_hold():
    seen = []

    def hold(since, at, second_look, run_per_trial):
        seen.append((since, at, run_per_trial))
        return None

    # Compensator per trial 0.2 then 0.4 (a clock profile moving the rate), llr = x - comp.
    steps = [(T0, 0.0, 0.0, 10), (T0 + MIN, 30.0, 10 * 0.2, 10), (T0 + 2 * MIN, 30.0, 10 * 0.4, 10)]
    trace = fold(steps, log_odds=1.0, h=40.0, hold=hold)
    assert trace.alarms, "crossed at the third minute"
    assert seen == [(T0 + MIN, T0 + 2 * MIN, (2.0 + 4.0) / 20)]


def test_a_batch_is_held_with_the_runs_charge_and_not_with_a_wrong_flat_one():
    # Ordinary tenants escalate at exactly the charged rate 0.45; the batch at 0.9.
    counts = {f"t{i}": {"c": (45, 100)} for i in range(30)} | {"batch": {"c": (450, 500)}}
    check = hold_check(lambda since, until: counts, log_odds=1.0, per_trial={}, default_per_trial=0.30)
    held = check(T0, T0 + 30 * MIN, False, 0.45)
    assert held is not None and held.tenant == "batch" and not held.provisional
    # Charged a flat 0.30 the ordinary tenants look like a shift too and the crossing stands.
    assert check(T0, T0 + 30 * MIN, False, None) is None
    assert tenant_hold(counts, log_odds=1.0, per_trial={}, default_per_trial=0.30, at=T0, since=T0) is None


def test_per_category_charges_may_follow_the_alarms_hour():
    counts = {f"t{i}": {"a": (20, 100), "b": (50, 100)} for i in range(10)} | {"batch": {"a": (90, 100)}}
    at_ten = hold_check(lambda s, u: counts, log_odds=1.0, default_per_trial=0.0,
                        per_trial=lambda at: {"a": 0.2 if at.hour == 10 else 0.5, "b": 0.5})
    assert at_ten(T0, T0 + 5 * MIN, False, None).tenant == "batch"
