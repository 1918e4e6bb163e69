"""A fixed-seed simulation replays byte for byte at any later wall-clock time.

Ingest recognises a copy of an event by its event_id within the re-emission window around its
occurred_at (or as an exact copy at any age). A re-run that re-sends the same event ids at new
times is stored again once it is more than the window away: `make demo` run twice, 13 minutes
apart, stored 5998 requests instead of 5000. So: with the same seed and anchor every byte is the
same, whenever it runs; without an anchor a later run uses other event ids, never the same ones at
other times.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from pydantic_core import to_json

from routerwatch.simulate import Profile, emit, events, plan, timeline

T0 = 1_796_670_000.0  # a wall-clock time in Dec 2026
LATER = (0.0, 13 * 60.0, 3 * 86_400.0 + 17.25, 400 * 86_400.0)  # 13 min (the report), days, a year
ANCHOR = datetime.fromisoformat("2026-12-07T18:00:00+00:00").timestamp()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """Set the wall clock (``time.time`` everywhere) to a given epoch."""

    def set_clock(at: float) -> None:
        monkeypatch.setattr(time, "time", lambda: at)

    return set_clock


def _sent(rw: Any) -> list[tuple[str, bytes | None, bytes]]:
    """Everything the SDK was handed, serialized: (topic, key, value)."""
    out = []
    for topic, key, payload in rw._queue:
        if isinstance(payload, bytes):
            value = payload
        elif isinstance(payload, dict):
            value = to_json(payload)
        else:
            value = to_json(payload.to_event())
        out.append((topic, key, value))
    return out


def test_same_seed_and_anchor_give_byte_identical_events_at_any_wall_clock_time(clock) -> None:
    runs = []
    for later in LATER:
        clock(T0 + later)
        runs.append([to_json(e) for e in events(Profile(), 300, seed=7, start=ANCHOR)])
    assert all(run == runs[0] for run in runs[1:])
    first = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp() for e in events(Profile(), 300, 7, start=ANCHOR)]
    assert ANCHOR <= min(first) and max(first) < ANCHOR + Profile().minutes * 60


def test_emit_with_the_same_anchor_sends_the_same_bytes_duplicates_and_invalid_messages_included(make_rw, clock) -> None:
    sent = []
    for later in LATER[:3]:
        clock(T0 + later)
        rw = make_rw(max_queue=100_000)
        summary = emit(rw, Profile(), 200, seed=7, invalid=12, duplicates=20, start=ANCHOR)
        sent.append(_sent(rw))
        assert summary["start"] == "2026-12-07T18:00:00.000Z" and summary["end"] == "2026-12-07T19:00:00.000Z"
    assert len(sent[0]) == 200 + summary["feedback"] + 12 + 20
    assert sent[1] == sent[0] and sent[2] == sent[0]


def test_an_unanchored_run_is_replayed_exactly_from_its_summary(make_rw, clock) -> None:
    clock(T0 + 0.123456)  # sub-millisecond wall clock: the summary's ISO anchor must still replay exactly
    first = make_rw(max_queue=100_000)
    summary = emit(first, Profile(), 200, seed=7, invalid=6, duplicates=10)
    clock(T0 + 13 * 60)
    again = make_rw(max_queue=100_000)
    start = datetime.fromisoformat(summary["start"].replace("Z", "+00:00")).timestamp()
    replay = emit(again, Profile(), 200, seed=7, invalid=6, duplicates=10, start=start)
    assert replay["start"] == summary["start"]
    assert _sent(again) == _sent(first)


def test_an_unanchored_rerun_later_never_resends_an_event_id_at_another_time(clock) -> None:
    times: dict[str, set[str]] = {}
    for later in LATER:
        clock(T0 + later)
        for e in events(Profile(), 300, seed=7):
            times.setdefault(e["event_id"], set()).add(e["occurred_at"])
    assert all(len(at) == 1 for at in times.values())
    assert len(times) == 300 * len(LATER)  # every run is traffic of its own


@pytest.mark.parametrize(
    "change",
    [
        {"requests": 301},  # another spacing of the same hour
        {"profile": Profile(minutes=30)},  # another length
        {"profile": Profile(shadow_share=0.2)},  # another traffic shape
        {"start": ANCHOR + 0.001},  # another anchor, by a millisecond
    ],
    ids=["requests", "minutes", "profile", "anchor"],
)
def test_another_timeline_with_the_same_seed_uses_other_event_ids(change: dict[str, Any]) -> None:
    base = {"profile": Profile(), "requests": 300, "seed": 7, "start": ANCHOR}
    ids = {p.event_id for p in plan(**base)}
    other = {p.event_id for p in plan(**(base | change))}
    assert not ids & other


def test_anchor_by_start_or_by_end_is_the_same_timeline() -> None:
    end = ANCHOR + Profile().minutes * 60
    assert timeline(Profile(), start=ANCHOR) == timeline(Profile(), now=end) == (ANCHOR, end)
    assert [to_json(e) for e in events(Profile(), 50, 3, start=ANCHOR)] == [to_json(e) for e in events(Profile(), 50, 3, now=end)]
    with pytest.raises(ValueError, match="not both"):
        plan(Profile(), 10, 1, now=end, start=ANCHOR)
