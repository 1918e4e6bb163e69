"""An incident inside a baseline's learning window is found and left out of p0 and hour_sd (drift.robust).

Simulated weeks: 168 clock hours of 100 trials a minute at p = 0.30, the rate of
each hour ``expit(logit(0.30) + b_h)`` with ``b_h ~ N(0, 0.1)`` (the hour-level
wobble production traffic shows), successes binomial per minute; an incident
moves the rate of some hours. All seeded; the numbers in the comments were
measured with this file's generator (numpy default_rng) over the seeds named.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from routerwatch.drift import Baseline, MinuteCount, learn_baseline
from routerwatch.drift.baseline import MIN_HOUR_TRIALS, ExcludedStretch, hour_effect_sd
from routerwatch.drift.robust import (
    MAX_INCIDENTS,
    MIN_HOURS,
    SCAN_THRESHOLD,
    HourCount,
    Incident,
    incident_hours,
    robust_wobble,
)

END = datetime(2026, 3, 8, tzinfo=UTC)
HOUR = timedelta(hours=1)
MIN = timedelta(minutes=1)
WEEK_HOURS = 168
START = END - WEEK_HOURS * HOUR
P = 0.30
SD = 0.1
PER_MINUTE = 100
WEEK_MINUTES = WEEK_HOURS * 60

# The two-day incident of (a), (b) and the downward case: hours [60, 108) of the week.
TWO_DAYS = range(60, 108)
# The tenant batch of (c): two hours at twice the volume.
BATCH = range(100, 102)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def week(
    seed: int, *, sd: float = SD, p: float = P, hours: range = range(0), points: float = 0.0,
    logit_shift: float = 0.0, volume_factor: int = 1,
) -> list[MinuteCount]:
    """A week of minute counts; in ``hours`` the rate is ``p + points`` (then ``+ logit_shift``) at
    ``volume_factor`` times the volume."""
    rng = np.random.default_rng(seed)
    b = rng.normal(0.0, sd, WEEK_HOURS) if sd else np.zeros(WEEK_HOURS)
    lp = _logit(p) + b
    n = np.full(WEEK_HOURS, PER_MINUTE)
    for h in hours:
        lp[h] = _logit(p + points) + b[h] + logit_shift
        n[h] = PER_MINUTE * volume_factor
    trials = np.repeat(n, 60)
    successes = rng.binomial(trials, np.repeat(_expit(lp), 60))
    return [MinuteCount(START + i * MIN, int(x), int(t)) for i, (x, t) in enumerate(zip(successes, trials))]


def learn(rows: list[MinuteCount], **kw) -> Baseline:
    b = learn_baseline(rows, start=START, end=END, **kw)
    assert b is not None
    return b


def outside(rows: list[MinuteCount], hours: range) -> list[MinuteCount]:
    lo, hi = START + hours.start * HOUR, START + hours.stop * HOUR
    return [r for r in rows if not lo <= r.minute < hi]


def jeffreys(rows: list[MinuteCount]) -> float:
    """The p0 a baseline learned from exactly ``rows`` has."""
    return (sum(r.successes for r in rows) + 0.5) / (sum(r.trials for r in rows) + 1.0)


def clock_hours(rows: list[MinuteCount]) -> list[tuple[datetime, int, int]]:
    acc: dict[datetime, list[int]] = {}
    for r in rows:
        slot = acc.setdefault(r.minute.replace(minute=0), [0, 0])
        slot[0] += r.successes
        slot[1] += r.trials
    return [(h, x, n) for h, (x, n) in sorted(acc.items())]


def offset_hours(at: datetime) -> float:
    return (at - START) / HOUR


def check_excluded_counts(b: Baseline, full: Baseline, rows: list[MinuteCount]) -> None:
    """Each stretch's counts are its minutes'; the baseline's are the rest; volume still counts every trial."""
    for e in b.excluded:
        inside = [r for r in rows if e.start <= r.minute < e.end]
        assert (e.successes, e.trials) == (sum(r.successes for r in inside), sum(r.trials for r in inside))
        assert e.statistic >= SCAN_THRESHOLD
    assert b.trials + sum(e.trials for e in b.excluded) == full.trials
    assert b.successes + sum(e.successes for e in b.excluded) == full.successes
    all_trials = sum(r.trials for r in rows)
    assert full.trials == all_trials
    assert b.observed_minutes == full.observed_minutes == WEEK_MINUTES
    assert b.volume == pytest.approx(all_trials / WEEK_MINUTES, rel=1e-12)
    assert full.volume == pytest.approx(b.volume, rel=1e-12)


# --- (a) +10 points for two days ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_days_at_plus_10_points_are_left_out_of_p0_and_hour_sd(seed):
    # Over seeds 100-159: one stretch in 60 of 60, both ends within an hour of the truth in 60
    # (exact in 57), statistic 11.1-19.0; |p0 - 0.30| at most 0.0051 (the hour effects' own noise,
    # sd about 0.002); hour_sd 0.086-0.118. Without the exclusion p0 is 0.324-0.333 and hour_sd
    # 0.206-0.246. Seeds 0-7: exact ends in 8 of 8, statistic 13.1-18.2.
    rows = week(seed, hours=TWO_DAYS, points=0.10)
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    assert full.excluded == []
    assert len(b.excluded) == 1
    e = b.excluded[0]
    assert abs(offset_hours(e.start) - TWO_DAYS.start) <= 1 and abs(offset_hours(e.end) - TWO_DAYS.stop) <= 1
    assert e.direction == "up" and e.hours == offset_hours(e.end) - offset_hours(e.start)
    assert e.statistic > 10  # far above the threshold (measured above)
    check_excluded_counts(b, full, rows)

    assert abs(b.p0 - P) < 0.006
    assert abs(full.p0 - P) > 0.02  # the incident's bias: 48/168 of +10 points, about 0.029
    assert abs(b.p0 - P) < abs(full.p0 - P) / 4
    # What is left is the clean hours, up to an hour at either end.
    assert b.p0 == pytest.approx(jeffreys(outside(rows, TWO_DAYS)), abs=0.0015)

    assert b.hour_sd == pytest.approx(SD, abs=0.03)
    assert full.hour_sd > 0.18
    assert b.hour_sd_hours == WEEK_HOURS - e.hours and full.hour_sd_hours == WEEK_HOURS


# --- (b) +3 points for two days -----------------------------------------------------------------


def test_two_days_at_plus_3_points_are_mostly_found_and_p0_moves_towards_the_truth():
    # +3 points is about 1.4 hour-level sds (logit 0.139 against b_h sd 0.1): the stretch's
    # statistic is 5.0-8.2 (threshold 5; the module docstring's "about 9" would hold without the
    # estimated centre and wobble), so it is missed in some weeks and its ends wander with the
    # wobble of the hours next to them; "within an hour of the truth" holds in a minority of weeks.
    # Seeds 0-11 (asserted): found in 12 of 12; worse end off by 0,0,0,0,1,2,3,4,4,4,6,9 hours;
    # mean |p0 - 0.30| 0.0013 against 0.0081 without exclusion.
    # Seeds 12-99: found in 82 of 88; worse end within 1 hour in 29, within 3 in 54, at most 17;
    # when found, |p0 - 0.30| at most 0.0051, always closer than without, one stretch, always "up".
    seeds = range(12)
    errors, gaps_robust, gaps_full = [], [], []
    for seed in seeds:
        rows = week(seed, hours=TWO_DAYS, points=0.03)
        b, full = learn(rows), learn(rows, exclude_incidents=False)
        check_excluded_counts(b, full, rows)
        gaps_robust.append(abs(b.p0 - P))
        gaps_full.append(abs(full.p0 - P))
        if not b.excluded:
            assert b.p0 == full.p0 and b.version == full.version
            continue
        assert len(b.excluded) == 1
        e = b.excluded[0]
        lo, hi = offset_hours(e.start), offset_hours(e.end)
        assert e.direction == "up"
        # Mostly the incident: at least 3/4 of the stretch lies inside it, and it holds at least 24 of its hours.
        overlap = min(hi, TWO_DAYS.stop) - max(lo, TWO_DAYS.start)
        assert overlap >= 0.75 * (hi - lo) and overlap >= 24
        errors.append(max(abs(lo - TWO_DAYS.start), abs(hi - TWO_DAYS.stop)))
        # Leaving it out brings p0 towards the truth (the non-robust bias is 48/168 of 3 points, about 0.0086).
        assert abs(b.p0 - P) < abs(full.p0 - P)
        assert abs(b.p0 - P) < 0.006
        assert b.hour_sd == pytest.approx(SD, abs=0.03) and b.hour_sd < full.hour_sd
    assert len(errors) >= 9
    assert sum(err <= 1 for err in errors) >= 3
    assert statistics.median(errors) <= 4 and max(errors) <= 20
    assert statistics.mean(gaps_robust) < statistics.mean(gaps_full) / 2


# --- (c) a two-hour tenant batch ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_two_hour_tenant_batch_is_left_out_exactly(seed):
    # Over seeds 100-159 found in 58 of 60, always exactly hours [100, 102), statistic 5.3-9.9.
    # Seeds 0-7: found in 8 of 8, statistic 5.9-8.9.
    rows = week(seed, hours=BATCH, logit_shift=0.5, volume_factor=2)
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    assert [(offset_hours(e.start), offset_hours(e.end), e.hours, e.direction) for e in b.excluded] == [
        (BATCH.start, BATCH.stop, 2, "up")]
    check_excluded_counts(b, full, rows)
    assert b.excluded[0].trials == 2 * 60 * 2 * PER_MINUTE
    assert b.volume == pytest.approx((WEEK_HOURS + 2) * 60 * PER_MINUTE / WEEK_MINUTES)

    clean = outside(rows, BATCH)
    assert b.p0 == pytest.approx(jeffreys(clean), rel=1e-12)
    assert b.hour_sd == pytest.approx(hour_effect_sd((x, n) for _, x, n in clock_hours(clean))[0], rel=1e-12)
    assert abs(b.p0 - P) < 0.006
    # The batch pushes the pooled rate up by about 24,000 x 0.11 / 1,020,000 = 0.0027 (seeds 0-7: 0.0021-0.0032).
    assert full.p0 - b.p0 > 0.0015
    assert b.hour_sd == pytest.approx(SD, abs=0.03)
    assert full.hour_sd > b.hour_sd + 0.01  # seeds 0-7: 0.113-0.136 against 0.086-0.109 (gap at least 0.019)


# --- direction -----------------------------------------------------------------------------------


def test_a_downward_incident_is_excluded_with_direction_down():
    # Seeds 0-3: exactly [60, 108), statistic 17.8-21.5; p0 0.298-0.301 against 0.270-0.272 without.
    rows = week(0, hours=TWO_DAYS, points=-0.10)
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    assert len(b.excluded) == 1 and b.excluded[0].direction == "down"
    e = b.excluded[0]
    assert abs(offset_hours(e.start) - TWO_DAYS.start) <= 1 and abs(offset_hours(e.end) - TWO_DAYS.stop) <= 1
    check_excluded_counts(b, full, rows)
    assert abs(b.p0 - P) < 0.006 and full.p0 < P - 0.02
    assert b.hour_sd == pytest.approx(SD, abs=0.03) and full.hour_sd > 0.18


# --- a level change is the new normal when it holds the majority of the hours ------------------


def test_a_change_holding_most_of_the_week_is_the_new_normal():
    # The rate went from 0.30 to 0.40 three days into the week and stayed (96 of 168 hours at
    # 0.40). The robust centre sits at the new level, so the old level's 72 hours are the
    # minority stretch: they are what is left out (direction "down"), and p0 is the new level.
    # Seeds 0-3: excluded [0, 72) (once [1, 72)), p0 0.398-0.401; without exclusion 0.355-0.357.
    new = range(72, WEEK_HOURS)
    rows = week(0, hours=new, points=0.10)
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    usable = WEEK_HOURS
    assert b.excluded and all(2 * e.hours < usable for e in b.excluded)
    assert all(e.direction == "down" and offset_hours(e.end) <= new.start for e in b.excluded)
    assert sum(e.hours for e in b.excluded) >= 70
    check_excluded_counts(b, full, rows)
    assert b.p0 == pytest.approx(0.40, abs=0.006)
    assert b.p0 == pytest.approx(jeffreys([r for r in rows if r.minute >= START + new.start * HOUR]), abs=0.0015)
    assert full.p0 < 0.37


def test_a_change_holding_a_minority_of_the_week_is_excluded_even_at_the_windows_end():
    # The same change four days into the week: the new level holds 72 of 168 hours, under half,
    # so it is an incident by the rule (a majority is the new normal, a minority is not), although
    # it still runs at the window's end. The baseline keeps the old level; the detector then judges
    # the new level against 0.30. Seeds 0-3: excluded [96, 168) "up", p0 0.297-0.302.
    new = range(96, WEEK_HOURS)
    rows = week(0, hours=new, points=0.10)
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    assert [(offset_hours(e.start), offset_hours(e.end), e.direction) for e in b.excluded] == [
        (new.start, new.stop, "up")]
    check_excluded_counts(b, full, rows)
    assert b.p0 == pytest.approx(P, abs=0.006) and full.p0 > 0.33


def hour(i: int, rate: float, trials: int = 6000) -> HourCount:
    return HourCount(START + i * HOUR, round(rate * trials), trials)


def test_a_stretch_of_half_the_usable_hours_is_never_an_incident():
    # 24 hours at 0.30 and 24 at 0.40: the best stretch (statistic 6.6) is exactly half the hours,
    # so nothing is left out. One hour fewer at 0.30 and that level (23 of 48 hours) is the incident.
    half = [hour(i, 0.30) for i in range(24)] + [hour(i, 0.40) for i in range(24, 48)]
    assert incident_hours(half) == []
    assert incident_hours(half, threshold=1.0) == []
    minority = [hour(i, 0.30) for i in range(23)] + [hour(i, 0.40) for i in range(23, 48)]
    found = incident_hours(minority)
    assert [(offset_hours(i.start), offset_hours(i.end), i.hours, i.direction) for i in found] == [(0, 23, 23, "down")]
    # And a stretch of more than half is never removed, whichever level it is at.
    majority_high = [hour(i, 0.30) for i in range(20)] + [hour(i, 0.40) for i in range(20, 48)]
    assert [(i.hours, i.direction) for i in incident_hours(majority_high)] == [(20, "down")]


# --- no false exclusions on clean data -------------------------------------------------------------


def test_clean_weeks_rarely_lose_any_hours():
    # Measured: 0 of these 40 weeks (20 binomial, 20 with the 0.1 hour wobble) get an exclusion;
    # 0 of 40 more of each kind either (seeds 1000-1039). The bound of 2 leaves room for a seed or
    # numpy change; the hour-level rate is about 1 in 300-1,000 weeks (next test).
    weeks = [(seed, 0.0) for seed in range(500, 520)] + [(seed, SD) for seed in range(520, 540)]
    with_exclusion = []
    for k, (seed, sd) in enumerate(weeks):
        rows = week(seed, sd=sd)
        b = learn(rows)
        if b.excluded:
            with_exclusion.append(seed)
        elif k % 10 == 0:
            # Nothing left out: the very baseline the non-robust learner gives.
            assert b == learn(rows, exclude_incidents=False)
    assert len(with_exclusion) <= 2, with_exclusion


def test_clean_hours_rarely_hold_an_incident():
    # The scan on hourly counts directly (an hour of 60 binomial minutes at one rate is binomial(6000)).
    # Measured: 1 of these 300 wobbly weeks; 1 of 1,000 (and 0 of 1,000 binomial weeks, 1 of 1,000
    # at a wobble of 0.2) with per-week seeds 50000-50999.
    rng = np.random.default_rng(2026)
    hits = 0
    for _ in range(300):
        p = _expit(_logit(P) + rng.normal(0.0, SD, WEEK_HOURS))
        x = rng.binomial(60 * PER_MINUTE, p)
        week_hours = [HourCount(START + i * HOUR, int(x[i]), 60 * PER_MINUTE) for i in range(WEEK_HOURS)]
        hits += bool(incident_hours(week_hours))
    assert hits <= 3


# --- too little to go on ----------------------------------------------------------------------------


def test_fewer_than_min_hours_usable_hours_exclude_nothing():
    assert MIN_HOURS == 12
    spike = hour(MIN_HOURS - 1, 0.60)
    enough = [hour(i, 0.30) for i in range(MIN_HOURS - 1)] + [spike]
    assert [(i.start, i.hours, i.direction) for i in incident_hours(enough)] == [(spike.hour, 1, "up")]
    too_few = [hour(i, 0.30) for i in range(MIN_HOURS - 2)] + [spike]
    assert incident_hours(too_few) == []
    # Hours under min_trials do not count towards the twelve.
    sparse = [HourCount(START + (20 + i) * HOUR, 29, 29) for i in range(5)]
    assert incident_hours(too_few + sparse) == []
    assert incident_hours(too_few + sparse, min_trials=29) != []
    assert incident_hours([]) == []


def test_a_short_history_in_learn_baseline_excludes_nothing():
    # Eleven hours of traffic in a week's window, the last at 0.60: too few hours to tell an incident.
    def rows_for(n_hours: int) -> list[MinuteCount]:
        first = END - n_hours * HOUR
        return [MinuteCount(first + i * MIN, (60 if i >= (n_hours - 1) * 60 else 30), 100) for i in range(n_hours * 60)]

    short = learn(rows_for(MIN_HOURS - 1))
    assert short.excluded == [] and short.p0 == pytest.approx(jeffreys(rows_for(MIN_HOURS - 1)))
    longer = learn(rows_for(MIN_HOURS))
    assert [(e.start, e.end, e.direction) for e in longer.excluded] == [(END - HOUR, END, "up")]
    assert longer.p0 == pytest.approx(0.30, abs=1e-4)
    assert longer.volume == pytest.approx(100.0)


def test_hours_below_min_trials_are_ignored():
    # Ten quiet hours in a clean week, 20 trials each, all successes: counted, they would be a
    # ten-hour incident (the scan with min_trials=10 finds them); under MIN_HOUR_TRIALS they are ignored.
    assert MIN_HOUR_TRIALS == 30
    quiet = range(30, 40)
    rows = [r for r in week(3) if not START + quiet.start * HOUR <= r.minute < START + quiet.stop * HOUR]
    rows += [MinuteCount(START + h * HOUR, 20, 20) for h in quiet]
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    assert b.excluded == []
    assert b == full
    hours = [HourCount(h, x, n) for h, x, n in clock_hours(rows)]
    loose = incident_hours(hours, min_trials=10)
    assert [(offset_hours(i.start), offset_hours(i.end), i.direction) for i in loose] == [(30, 40, "up")]


def test_a_quiet_hour_inside_an_incident_is_left_out_with_it():
    # The stretch runs from its first usable hour to one past its last; a quiet hour inside is
    # covered by [start, end) but not counted in ``hours`` (the usable hours the scan saw).
    quiet = START + 80 * HOUR
    rows = [r for r in week(0, hours=TWO_DAYS, points=0.10) if not quiet <= r.minute < quiet + HOUR]
    rows.append(MinuteCount(quiet, 3, 10))
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    assert len(b.excluded) == 1
    e = b.excluded[0]
    assert e.start < quiet < e.end and e.hours == offset_hours(e.end) - offset_hours(e.start) - 1
    check_excluded_counts(b, full, rows)


def test_at_most_max_incidents_are_removed_largest_first():
    spikes = {5: 0.36, 15: 0.40, 25: 0.44, 35: 0.48}
    hours = [hour(i, spikes.get(i, 0.30)) for i in range(48)]
    found = incident_hours(hours)
    assert MAX_INCIDENTS == 3 and len(found) == 3
    assert [offset_hours(i.start) for i in found] == [15, 25, 35]  # in time order; the smallest spike stays
    assert all(isinstance(i, Incident) and i.hours == 1 and i.direction == "up" for i in found)
    assert len(incident_hours(hours, max_incidents=4)) == 4


# --- robust_wobble ------------------------------------------------------------------------------


def test_robust_wobble_is_zero_when_sampling_explains_the_spread():
    var = [0.001 * (1 + i % 3) for i in range(101)]
    # Every deviation under 0.6745 of its own sampling sd: nothing left for an hour effect.
    assert robust_wobble([0.6 * math.sqrt(v) * (-1) ** i for i, v in enumerate(var)], var) == 0.0
    assert robust_wobble([], []) == 0.0
    # Pure sampling noise: the median of |z| lands either side of 0.6745, so tau is 0 or tiny.
    # Measured over seeds 10000-10199: 0 in 99 of 200, at most 0.016 (sampling sd about 0.035).
    rng = np.random.default_rng(11)
    v = rng.uniform(0.0005, 0.002, 1000)
    tau = robust_wobble(list(rng.normal(0.0, np.sqrt(v))), list(v))
    assert 0.0 <= tau < 0.02


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_robust_wobble_recovers_a_known_tau(seed):
    # Deviations N(0, v_i + 0.2^2) with v_i the sampling variance of an hour of 500-2,000 trials.
    # Measured over seeds 0-199: 0.181-0.219; seeds 1-3: 0.208, 0.194, 0.210.
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.0005, 0.002, 1000)
    dev = rng.normal(0.0, np.sqrt(v + 0.2**2))
    assert robust_wobble(list(dev), list(v)) == pytest.approx(0.2, rel=0.2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_robust_wobble_shrugs_off_a_fifth_of_gross_outliers(seed):
    # 200 of 1,000 deviations moved by 2-4 on the logit scale (an incident's hours). The median of
    # |z| is then the 0.8125 quantile of |N| for the clean 800, so the estimate rises by at most
    # 0.887 / 0.6745 = 1.31 (seeds 0-199: 0.238-0.290, mean 0.265; seeds 1-3: 0.276, 0.255, 0.266);
    # a plain standard deviation goes from 0.2 to above 1.3.
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.0005, 0.002, 1000)
    dev = rng.normal(0.0, np.sqrt(v + 0.2**2))
    idx = rng.choice(1000, size=200, replace=False)
    dev[idx] += rng.choice([-1.0, 1.0], size=200) * rng.uniform(2.0, 4.0, size=200)
    tau = robust_wobble(list(dev), list(v))
    plain = math.sqrt(max(0.0, float(np.var(dev)) - float(v.mean())))
    assert 0.2 <= tau < 0.2 * 1.5
    assert plain > 1.0


# --- version ----------------------------------------------------------------------------------------


def test_version_is_unchanged_when_nothing_is_excluded():
    rows = week(7)
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    assert b.excluded == [] and b.version == full.version
    assert learn(list(reversed(rows))).version == b.version


def test_a_clean_window_keeps_the_version_it_had_before_exclusions_existed():
    # A fixed week (no random draws) whose version was computed by learn_baseline as it stood
    # before incidents were excluded: baselines stored then keep their version now.
    rows = [MinuteCount(START + i * MIN, 25 + (i * 7) % 11, 100) for i in range(WEEK_MINUTES)]
    b = learn(rows)
    assert b.excluded == []
    assert b.version == learn(rows, exclude_incidents=False).version == "b1-1df6f25073ad60e3"


def test_version_names_the_exclusion():
    rows = week(0, hours=TWO_DAYS, points=0.10)
    b, full = learn(rows), learn(rows, exclude_incidents=False)
    assert b.excluded
    assert b.version != full.version and b.version.startswith("b1-")
    assert learn(rows).version == b.version


# --- JSON -----------------------------------------------------------------------------------------


def test_a_baseline_with_exclusions_round_trips_through_json():
    b = learn(week(0, hours=BATCH, logit_shift=0.5, volume_factor=2))
    assert b.excluded
    stored = b.model_dump(mode="json")
    assert stored["excluded"][0]["direction"] == "up"
    again = Baseline.model_validate(stored)
    assert again == b
    assert isinstance(again.excluded[0], ExcludedStretch) and again.excluded[0].start.tzinfo is not None


def test_a_baseline_stored_before_exclusions_existed_still_loads():
    b = learn(week(7))
    old = b.model_dump(mode="json")
    del old["excluded"]
    loaded = Baseline.model_validate(old)
    assert loaded.excluded == [] and loaded == b
