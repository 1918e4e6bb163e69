"""Which stored rows the ingest dedup lookup reads: time ranges around a batch's events.

A stored copy of an incoming event is one of two things:

- the same message again (a Kafka redelivery after a crash, a replay from an earlier offset, a
  router re-sending what it recorded): it carries the same ``occurred_at``, at any age;
- the router recording the request again under the same ``event_id``: a new ``occurred_at``,
  normally seconds after the original.

So every stored copy lies within ``window`` of some event time in the batch, and the lookup reads
only those time ranges. The raw tables' sorting key starts with the event's minute (migration
0012), so the engine skips every part and granule outside them: the lookup costs what the window
holds (about rate x 2 x window rows), not what the store holds. A re-recording more than
``window`` away from the original is not recognised and is stored a second time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

# Stored times have millisecond precision; the bounds are widened by one so that a copy stored
# with a rounded time is still inside them.
_STORED_PRECISION = timedelta(milliseconds=1)
# The sorting key's time unit (migration 0012): splitting at a narrower gap skips no granule and only
# adds a condition the engine evaluates on every row it reads.
_KEY_UNIT = timedelta(minutes=1)


def lookup_ranges(times: Iterable[datetime], window: timedelta, most: int = 8) -> list[tuple[datetime, datetime]]:
    """Disjoint ``(start, end)`` ranges, inclusive, that hold every time within ``window`` of ``times``.

    Events close in time share one range; a gap of more than twice ``window`` and more than two
    minutes (a straggler from yesterday among today's events) starts another, so the lookup does
    not read the day between.
    At most ``most`` ranges: beyond that the smallest gaps are bridged (the ranges then read more
    rows, never fewer). Raises ``ValueError`` when ``times`` is empty or ``most`` < 1.
    """
    if most < 1:
        raise ValueError(f"most must be at least 1, got {most}")
    ordered = sorted(set(times))
    if not ordered:
        raise ValueError("lookup_ranges needs at least one event time")
    reach = window + _STORED_PRECISION
    split_above = max(2 * reach, 2 * _KEY_UNIT)
    # The gaps wide enough to split at, the widest first, as many as the range budget allows.
    gaps = sorted(
        ((ordered[i + 1] - ordered[i], i) for i in range(len(ordered) - 1) if ordered[i + 1] - ordered[i] > split_above),
        reverse=True,
    )
    splits = sorted(i for _, i in gaps[: most - 1])
    ranges = []
    first = 0
    for i in [*splits, len(ordered) - 1]:
        ranges.append((ordered[first] - reach, ordered[i] + reach))
        first = i + 1
    return ranges
