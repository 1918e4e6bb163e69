"""BatchProcessor logic with plain fakes for the sink and the dead-letter sender.

The same class runs against real Kafka and ClickHouse in tests/integration;
here the fakes let each failure happen exactly when the test wants it.
"""

from __future__ import annotations

import asyncio

from pydantic_core import to_json

from routerwatch.ingest.processor import BatchProcessor, DeadLetter, RawMessage
from routerwatch.ingest.sink import StoreReport
from routerwatch.simulate import Profile, events
from routerwatch.storage.errors import StoreUnavailable


class FakeSink:
    """Fails the first ``failures`` calls with StoreUnavailable, then records what it is given."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.stored: list = []
        self.dead: list = []

    def store_dead_letters(self, letters):
        self.dead.extend(letters)

    def store_batch(self, kind, items):
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("connection refused")
        self.stored.extend(items)
        return StoreReport(inserted={"decisions": len(items)})


class FlakyDeadLetters:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts = 0
        self.sent: list[DeadLetter] = []

    async def __call__(self, letter: DeadLetter) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("broker unreachable")
        self.sent.append(letter)


def messages(n: int, bad: list[bytes | None]) -> list[RawMessage]:
    good = [to_json(e) for e in events(Profile(), n, seed=21)]
    raw = good + bad
    return [RawMessage("decisions", 1, offset, b"k", value) for offset, value in enumerate(raw)]


def test_valid_events_are_stored_and_bad_ones_dead_lettered_with_origin():
    sink, dlq = FakeSink(), FlakyDeadLetters()
    processor = BatchProcessor("decision", sink, dlq)
    batch = messages(5, [b"\xff\xfe", b'{"event_id": 1', None])
    asyncio.run(processor.process(batch))
    assert [item.offset for item in sink.stored] == [0, 1, 2, 3, 4]
    assert [letter.reason for letter in dlq.sent] == ["undecodable", "invalid_json", "undecodable"]
    headers = dict(dlq.sent[1].headers())
    assert headers["routerwatch.topic"] == b"decisions"
    assert headers["routerwatch.partition"] == b"1"
    assert headers["routerwatch.offset"] == b"6"
    assert dlq.sent[1].message.value == b'{"event_id": 1', "the raw bytes travel unchanged"
    assert b"tombstone" in dict(dlq.sent[2].headers())["routerwatch.detail"]
    assert [d.reason for d in sink.dead] == ["undecodable", "invalid_json", "undecodable"], "recorded in the store too"


def test_store_failures_are_retried_until_the_batch_is_stored():
    sink = FakeSink(failures=3)
    processor = BatchProcessor("decision", sink, FlakyDeadLetters(), retry_initial_s=0.01, retry_max_s=0.02)
    asyncio.run(processor.process(messages(4, [])))
    assert sink.calls == 4
    assert len(sink.stored) == 4
    assert processor.last_error is None


def test_dead_letter_failures_are_retried_and_nothing_is_skipped():
    dlq = FlakyDeadLetters(failures=2)
    processor = BatchProcessor("decision", FakeSink(), dlq, retry_initial_s=0.01, retry_max_s=0.02)
    asyncio.run(processor.process(messages(1, [b"not json"])))
    assert dlq.attempts == 3
    assert len(dlq.sent) == 1


def test_a_bug_in_the_sink_is_not_retried_forever():
    class BrokenSink(FakeSink):
        def store_batch(self, kind, items):
            raise KeyError("programming error")

    processor = BatchProcessor("decision", BrokenSink(), FlakyDeadLetters(), retry_initial_s=0.01)
    try:
        asyncio.run(processor.process(messages(1, [])))
    except KeyError:
        pass
    else:
        raise AssertionError("an unexpected error must surface (and crash the agent), not loop silently")
