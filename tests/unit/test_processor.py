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
from routerwatch.storage.errors import QueryError, StoreUnavailable


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


class RefusingSink(FakeSink):
    """Refuses, as a permanent error, any batch that holds one of the ``poison`` offsets."""

    def __init__(self, poison: set[int], error: Exception) -> None:
        super().__init__()
        self.poison = poison
        self.error = error

    def store_batch(self, kind, items):
        self.calls += 1
        if any(item.offset in self.poison for item in items):
            raise self.error
        self.stored.extend(items)
        return StoreReport(inserted={"decisions": len(items)})


def test_rows_the_store_refuses_are_isolated_and_dead_lettered_the_rest_stored():
    # Before: a permanent store error was retried forever (or crashed serve), stopping all ingest.
    error = QueryError("Code: 469. DB::Exception: Constraint `c` is violated at row 1. (VIOLATED_CONSTRAINT)")
    sink, dlq = RefusingSink({3, 9}, error), FlakyDeadLetters()
    batch = messages(16, [])
    processor = BatchProcessor("decision", sink, dlq, retry_initial_s=0.01)
    asyncio.run(processor.process(batch))
    assert sorted(item.offset for item in sink.stored) == [o for o in range(16) if o not in (3, 9)]
    assert [(d.message.offset, d.reason) for d in dlq.sent] == [(3, "store_rejected"), (9, "store_rejected")]
    assert dlq.sent[0].message.value == batch[3].value, "the original bytes are dead-lettered"
    assert "VIOLATED_CONSTRAINT" in dlq.sent[0].detail
    assert sink.calls < 16, "isolated by halving, not event by event"
    assert processor.last_error is None


def test_a_bug_in_the_sink_dead_letters_the_batch_instead_of_stopping_ingest():
    class BrokenSink(FakeSink):
        def store_batch(self, kind, items):
            self.calls += 1
            raise KeyError("programming error")

    sink, dlq = BrokenSink(), FlakyDeadLetters()
    asyncio.run(BatchProcessor("decision", sink, dlq, retry_initial_s=0.01).process(messages(3, [])))
    assert [(d.message.offset, d.reason) for d in dlq.sent] == [(0, "store_rejected"), (1, "store_rejected"), (2, "store_rejected")]
    assert "KeyError" in dlq.sent[0].detail


def test_an_outage_code_is_retried_not_dead_lettered():
    class FullDisk(FakeSink):
        def store_batch(self, kind, items):
            self.calls += 1
            if self.calls <= 2:
                raise QueryError("Code: 243. DB::Exception: Cannot reserve 3.43 MiB, not enough space. (NOT_ENOUGH_SPACE)")
            return super().store_batch(kind, items)

    sink, dlq = FullDisk(), FlakyDeadLetters()
    asyncio.run(BatchProcessor("decision", sink, dlq, retry_initial_s=0.01, retry_max_s=0.02).process(messages(4, [])))
    assert len(sink.stored) == 4 and dlq.sent == []


def test_a_dead_letter_too_large_for_the_topic_goes_as_a_bounded_copy_with_size_and_digest():
    import hashlib

    from aiokafka.errors import MessageSizeTooLargeError

    from routerwatch.ingest.processor import BOUNDED_COPY_BYTES

    sent: list[DeadLetter] = []

    async def dlq(letter: DeadLetter) -> None:
        if len(letter.value or b"") > 1_000_000:
            raise MessageSizeTooLargeError("too large for the topic")
        sent.append(letter)

    huge = b'{"event_id": "' + b"x" * 1_500_000 + b'"}'
    asyncio.run(BatchProcessor("decision", FakeSink(), dlq, retry_initial_s=0.01).process(messages(1, [huge])))
    assert len(sent) == 1
    headers = dict(sent[0].headers())
    assert sent[0].value == huge[:BOUNDED_COPY_BYTES]
    assert headers["routerwatch.truncated"] == str(len(huge)).encode()
    assert headers["routerwatch.sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert headers["routerwatch.reason"] == b"schema"


def test_dead_letters_are_in_flight_together_not_one_after_another():
    in_flight = peak = 0

    async def dlq(letter: DeadLetter) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)  # the broker's acknowledgement
        in_flight -= 1

    asyncio.run(BatchProcessor("decision", FakeSink(), dlq).process(messages(0, [b"not json"] * 50)))
    assert peak == 50


def test_a_payload_that_makes_the_parser_raise_anything_is_dead_lettered():
    # Times beyond what datetime holds once shifted to UTC raised OverflowError, not a ValidationError.
    import json

    event = json.loads(messages(1, [])[0].value)
    raw = []
    for when in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z", 1700000000):
        raw.append(json.dumps({**event, "occurred_at": when}).encode())
    sink, dlq = FakeSink(), FlakyDeadLetters()
    asyncio.run(BatchProcessor("decision", sink, dlq).process([RawMessage("decisions", 0, i, None, v) for i, v in enumerate(raw)]))
    assert [d.reason for d in dlq.sent] == ["schema"] * 4
    assert all(d.detail.startswith("occurred_at:") for d in dlq.sent), [d.detail for d in dlq.sent]


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


def test_a_record_with_neither_key_nor_value_is_dead_lettered_with_an_empty_value():
    # Before: Kafka's client refused to send a dead letter with neither key nor value (an
    # AssertionError, not retryable), so the batch failed and ingest stopped behind it.
    sent: list[DeadLetter] = []

    async def dlq(letter: DeadLetter) -> None:
        assert letter.message.key is not None or letter.value is not None, "Need at least one: key or value"
        sent.append(letter)

    batch = [RawMessage("decisions", 0, 0, None, None), RawMessage("decisions", 0, 1, b"k", None)]
    asyncio.run(BatchProcessor("decision", FakeSink(), dlq).process(batch))
    assert [(d.message.offset, d.value) for d in sent] == [(0, b""), (1, None)]
    assert all(d.reason == "undecodable" for d in sent)


def test_a_dead_letter_the_topic_refuses_for_good_goes_as_a_bounded_copy_instead_of_stopping_ingest():
    sent: list[DeadLetter] = []

    async def dlq(letter: DeadLetter) -> None:
        if not letter.bounded:
            raise ValueError("refused: the topic's record policy")
        sent.append(letter)

    asyncio.run(BatchProcessor("decision", FakeSink(), dlq).process(messages(0, [b"not json", b"{}"])))
    assert [(d.message.offset, d.bounded) for d in sent] == [(0, True), (1, True)]
    assert "routerwatch.sha256" in dict(sent[0].headers())
