"""Per-minute count series: the input shape of every rate detector.

A series is a sequence of :class:`MinuteCount` ``(minute, successes, trials)``:
``successes`` counts the event the detector watches (an escalation, a failure of
one mode, a passing shadow grade, a request under the latency target) and
``trials`` the attempts it is a share of. This is one row of the per-minute
rollups (``attempt_minute`` summed over the other columns). Minutes with no
traffic may simply be absent: detectors treat a missing minute as zero trials.

Datetimes are timezone-aware UTC (ClickHouse ``DateTime('UTC')``) and name the
*start* of the minute; mixing naive and aware datetimes raises ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

MINUTE = timedelta(minutes=1)

#: Mean minutes per month (365.25 days / 12): the unit of "false pages per month".
MINUTES_PER_MONTH = 43_830.0


class MinuteCount(NamedTuple):
    """``successes`` of ``trials`` in the minute starting at ``minute``."""

    minute: datetime
    successes: int
    trials: int


def floor_minute(at: datetime) -> datetime:
    """The start of the minute holding ``at``."""
    return at.replace(second=0, microsecond=0)


def totals(counts: Iterable[MinuteCount]) -> tuple[int, int]:
    """``(successes, trials)`` summed."""
    s = n = 0
    for c in counts:
        s += c.successes
        n += c.trials
    return s, n


def merge_by_minute(counts: Iterable[MinuteCount]) -> list[MinuteCount]:
    """Sum counts that share a minute (rollup rows split by other columns), sorted by minute."""
    acc: dict[datetime, list[int]] = {}
    for c in counts:
        slot = acc.setdefault(c.minute, [0, 0])
        slot[0] += c.successes
        slot[1] += c.trials
    return [MinuteCount(m, s, n) for m, (s, n) in sorted(acc.items())]


def check_counts(counts: Sequence[MinuteCount]) -> None:
    """Raise ``ValueError`` on counts no rollup can produce (negative, successes > trials)."""
    for c in counts:
        if c.trials < 0 or c.successes < 0 or c.successes > c.trials:
            raise ValueError(f"impossible count at {c.minute}: {c.successes} of {c.trials}")
