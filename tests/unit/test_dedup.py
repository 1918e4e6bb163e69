"""The dedup lookup's time ranges (routerwatch.ingest.dedup.lookup_ranges): pure logic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from routerwatch.ingest.dedup import lookup_ranges

T0 = datetime(2026, 11, 22, 10, 0, 0, 123_456, tzinfo=UTC)
W = timedelta(minutes=5)
MS = timedelta(milliseconds=1)


def covered(ranges, t):
    return any(start <= t <= end for start, end in ranges)


def test_close_events_share_one_range_widened_by_the_window_and_a_millisecond():
    times = [T0 + timedelta(seconds=s) for s in (3, 0, 1, 2)]
    assert lookup_ranges(times, W) == [(T0 - W - MS, T0 + timedelta(seconds=3) + W + MS)]


def test_a_straggler_gets_its_own_range_and_the_gap_between_is_not_read():
    straggler = T0 - timedelta(days=1)
    ranges = lookup_ranges([T0, straggler, T0 + timedelta(seconds=1)], W)
    assert ranges == [(straggler - W - MS, straggler + W + MS), (T0 - W - MS, T0 + timedelta(seconds=1) + W + MS)]
    assert not covered(ranges, T0 - timedelta(hours=12))


def test_gaps_within_twice_the_window_are_bridged():
    # Two events 10 minutes apart: their windows touch, one range.
    assert len(lookup_ranges([T0, T0 + 2 * W], W)) == 1
    assert len(lookup_ranges([T0, T0 + 2 * W + 3 * MS], W)) == 2


def test_gaps_within_two_minutes_are_bridged_whatever_the_window():
    # The sorting key's unit is a minute: a split inside two minutes would skip no granule.
    exact = timedelta(0)
    assert len(lookup_ranges([T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=119)], exact)) == 1
    assert lookup_ranges([T0, T0 + timedelta(seconds=121)], exact) == [
        (T0 - MS, T0 + MS), (T0 + timedelta(seconds=121) - MS, T0 + timedelta(seconds=121) + MS)]


def test_beyond_the_range_budget_the_smallest_gaps_are_bridged_and_every_time_stays_covered():
    times = [T0 + timedelta(hours=h * h) for h in range(12)]  # gaps grow: 1 h, 3 h, 5 h, ...
    ranges = lookup_ranges(times, W, most=4)
    assert len(ranges) == 4
    # The three widest gaps (the last three) are the splits; the first nine times share a range.
    assert ranges[0] == (times[0] - W - MS, times[8] + W + MS)
    assert [start for start, _ in ranges[1:]] == [t - W - MS for t in times[9:]]
    for t in times:
        assert covered(ranges, t - W) and covered(ranges, t + W)


def test_a_zero_window_still_finds_the_same_millisecond():
    ranges = lookup_ranges([T0], timedelta(0))
    assert ranges == [(T0 - MS, T0 + MS)]


@pytest.mark.parametrize("times, most, message", [([], 8, "at least one event time"), ([T0], 0, "most must be at least 1")])
def test_bad_arguments_say_what_is_wrong(times, most, message):
    with pytest.raises(ValueError, match=message):
        lookup_ranges(times, W, most=most)
