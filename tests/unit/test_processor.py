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


def test_prepare_then_store_is_process_in_two_halves():
    sink, dlq = FakeSink(), FlakyDeadLetters()
    processor = BatchProcessor("decision", sink, dlq)
    prepared = processor.prepare(messages(3, [b"not json"]))
    assert [item.offset for item in prepared.valid] == [0, 1, 2]
    assert [letter.reason for letter in prepared.dead] == ["invalid_json"]
    assert sink.stored == [] and dlq.sent == [], "prepare validates only: no I/O"
    asyncio.run(processor.store(prepared))
    assert [item.offset for item in sink.stored] == [0, 1, 2]
    assert [letter.message.offset for letter in dlq.sent] == [3]


def test_gc_pause_nests_and_restores_the_collector_state():
    import gc

    from routerwatch.ingest.processor import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the outer pause still holds"
    assert gc.isenabled()
    gc.disable()  # e.g. ingest turned automatic collection off for the whole process
    try:
        with gc_paused():
            pass
        assert not gc.isenabled(), "a pause does not turn on a collector that was off"
    finally:
        gc.enable()


def test_messages_need_only_the_record_attributes():
    class Record:  # the shape of aiokafka's ConsumerRecord, no RawMessage
        def __init__(self, offset, value):
            self.topic, self.partition, self.offset, self.key, self.value = "decisions", 2, offset, None, value

    sink, dlq = FakeSink(), FlakyDeadLetters()
    good = [m.value for m in messages(2, [])]
    asyncio.run(BatchProcessor("decision", sink, dlq).process([Record(10, good[0]), Record(11, good[1]), Record(12, b"\xff")]))
    assert [(item.partition, item.offset) for item in sink.stored] == [(2, 10), (2, 11)]
    assert [letter.reason for letter in dlq.sent] == ["undecodable"]
