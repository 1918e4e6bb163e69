"""One ingest batch: validate each message, dead-letter the bad ones, store the good ones.

Independent of faust so the logic is testable on its own; :mod:`routerwatch.ingest.app`
feeds it faust batches and acknowledges the messages only after
:meth:`BatchProcessor.process` returns, i.e. after every message is either
stored in ClickHouse or acknowledged by the dead-letter topic.

Error handling follows the permanent / retryable split: an invalid message is
permanent (dead-letter it with its reason, count it, move on); ClickHouse or
the DLQ being unavailable is retryable (back off and try again, for as long as
it takes; the batch is never dropped and its offsets are never committed
before it is stored). A store error that is not an outage (the engine refusing
rows it cannot hold, or any unexpected failure) is the rows' fault: the batch
is split in halves until the events concerned are found, the others are
stored, and those are dead-lettered with reason ``store_rejected`` and the
engine's message. So no single message can stop ingest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, Protocol, Sequence

from pydantic import ValidationError

from routerwatch import metrics
from routerwatch.events.models import CanaryResult, QualityFeedback, RoutingDecision
from routerwatch.events.validation import invalid, json_validator
from routerwatch.ingest.observe import observe_stored
from routerwatch.ingest.redact import redact_payload
from routerwatch.ingest.sink import TABLES, ClickHouseSink, StoreReport
from routerwatch.storage.errors import is_retryable
from routerwatch.storage.rows import Located

log = logging.getLogger("routerwatch.ingest")

MODELS: dict[str, type] = {"decision": RoutingDecision, "feedback": QualityFeedback, "canary": CanaryResult}

# A dead letter the dead-letter topic refuses as too large is sent again as its first
# BOUNDED_COPY_BYTES, with headers giving the original size and its SHA-256 (routerwatch.truncated,
# routerwatch.sha256): the reason and origin are never lost, and the whole message is still on its
# input topic at the offset the headers name, for as long as that topic retains it.
BOUNDED_COPY_BYTES = 64 * 1024
# How many dead letters are in flight to the dead-letter topic at once (each waits for its ack).
DLQ_IN_FLIGHT = 2000


class Message(Protocol):
    """What the processor reads from a Kafka record (aiokafka's ConsumerRecord has it all)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class RawMessage:
    """A Kafka record as the processor needs it (tests build these; ingest passes aiokafka's records)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A message that broke the contract, with where it came from and why."""

    message: Message
    reason: str
    detail: str
    bounded: bool = False  # the copy carries only the first BOUNDED_COPY_BYTES of the value
    redacted: str = ""  # what redaction blanked out ("" = nothing); the value is then redacted_value
    redacted_value: bytes | None = None

    @property
    def value(self) -> bytes | None:
        """The value the dead-lettered copy carries: the original bytes, redacted or bounded as configured."""
        value = self.redacted_value if self.redacted else self.message.value
        if value is None:
            # A tombstone keeps its null value when it has a key; Kafka refuses a record with
            # neither, so a keyless one travels with an empty value (the headers say why).
            return None if self.message.key is not None else b""
        return value[:BOUNDED_COPY_BYTES] if self.bounded else value

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carried by the dead-lettered copy."""
        headers = [
            ("routerwatch.reason", self.reason.encode()),
            ("routerwatch.detail", self.detail.encode()[:4000]),
            ("routerwatch.topic", self.message.topic.encode()),
            ("routerwatch.partition", str(self.message.partition).encode()),
            ("routerwatch.offset", str(self.message.offset).encode()),
            ("routerwatch.failed_at", str(int(time.time() * 1000)).encode()),
        ]
        original = self.message.value or b""
        if self.bounded:
            headers.append(("routerwatch.truncated", str(len(original)).encode()))
        if self.redacted:
            headers.append(("routerwatch.redacted", self.redacted.encode()[:1000]))
            headers.append(("routerwatch.size", str(len(original)).encode()))
        if self.bounded or self.redacted:
            headers.append(("routerwatch.sha256", hashlib.sha256(original).hexdigest().encode()))
        return headers

    def as_bounded(self) -> DeadLetter:
        """This dead letter with a bounded copy of the value (for a dead-letter topic that refuses the whole)."""
        return dataclasses.replace(self, bounded=True)

    def with_redaction(self, paths: Sequence[str]) -> DeadLetter:
        """This dead letter with the values at ``paths`` blanked out of its copy (:mod:`routerwatch.ingest.redact`)."""
        if not paths:
            return self
        value, redacted = redact_payload(self.message.value, paths)
        return dataclasses.replace(self, redacted=redacted, redacted_value=value) if redacted else self


SendDeadLetter = Callable[[DeadLetter], Awaitable[None]]


@dataclass
class Prepared:
    """A validated batch waiting to be stored: its valid events and its dead letters."""

    valid: list[Located]
    dead: list[DeadLetter]
    # The batch's messages, to dead-letter a valid event the store refuses with its original bytes.
    messages: Sequence[Message] = ()

    _index: dict[tuple[int, int], Message] | None = None

    def message_at(self, partition: int, offset: int) -> Message:
        """The batch's message at ``partition``/``offset`` (the index is built on the first call)."""
        if self._index is None:
            self._index = {(m.partition, m.offset): m for m in self.messages}
        return self._index[(partition, offset)]

_gc_pauses = 0
_gc_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off while a batch is validated and stored.

    A batch builds tens of thousands of short-lived, acyclic objects (the validated events
    and their column lists): with the collector on, its generational scans of those live
    objects cost more than the validation itself. Reference counting still frees them; any
    cyclic garbage waits for the next collection after the batch. Nests and overlaps safely.
    """
    global _gc_pauses, _gc_was_enabled
    _gc_pauses += 1
    if _gc_pauses == 1:
        _gc_was_enabled = gc.isenabled()
        gc.disable()
    try:
        yield
    finally:
        _gc_pauses -= 1
        if _gc_pauses == 0 and _gc_was_enabled:
            gc.enable()


class BatchProcessor:
    """Validates and stores batches of one event kind.

    ``send_dead_letter`` must return only once the DLQ acknowledged the message and raise when
    it did not; the processor then backs off and sends again. Many are in flight at once. When it
    also has ``send_many(letters) -> [None | error, ...]`` (:class:`~routerwatch.ingest.dlq_producer.DeadLetterProducer`),
    a batch's dead letters go out in one call.
    """

    def __init__(
        self,
        kind: str,
        sink: ClickHouseSink,
        send_dead_letter: SendDeadLetter,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        redact: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self.model = MODELS[kind]
        self.sink = sink
        self.send_dead_letter = send_dead_letter
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.redact = tuple(redact)
        self.last_error: str | None = None

    def split(self, messages: Sequence[Message]) -> tuple[list[Located], list[DeadLetter]]:
        """Validate each message: (valid events with their location, dead letters)."""
        valid: list[Located] = []
        dead: list[DeadLetter] = []
        validate = json_validator(self.model)
        keep = valid.append
        with gc_paused():
            for message in messages:
                value = message.value
                if value is None:
                    dead.append(DeadLetter(message, "undecodable", "message has no value (tombstone)"))
                    continue
                try:
                    event = validate(value)
                except ValidationError as exc:
                    error = invalid(exc, value)
                    dead.append(DeadLetter(message, error.reason, error.detail))
                    continue
                except Exception as exc:  # noqa: BLE001 - no payload may stop ingest, whatever it makes the parser do
                    dead.append(DeadLetter(message, "schema", f"<event>: {type(exc).__name__}: {exc}"[:2000]))
                    continue
                keep(Located(event, message.partition, message.offset))
        return valid, dead

    def prepare(self, messages: Sequence[Message]) -> Prepared:
        """Count and validate a batch (CPU only, no I/O): the first half of :meth:`process`."""
        if not messages:
            return Prepared([], [])
        topic = messages[0].topic
        metrics.INGEST_CONSUMED.labels(topic).inc(len(messages))
        metrics.INGEST_BATCH_SIZE.labels(topic).observe(len(messages))
        valid, dead = self.split(messages)
        return Prepared(valid, dead, messages)

    async def store(self, prepared: Prepared) -> StoreReport:
        """Store and dead-letter a prepared batch: the second half of :meth:`process`.

        Returns only when every message is stored or acknowledged by the dead-letter topic.
        """
        with gc_paused():
            report = StoreReport()
            dead = list(prepared.dead)
            if prepared.valid:
                report, refused = await self._store_isolating(prepared.valid)
                for item, exc in refused:
                    message = prepared.message_at(item.partition, item.offset)
                    dead.append(DeadLetter(message, "store_rejected", f"{type(exc).__name__}: {exc}"[:2000]))
            if dead:
                if self.redact:
                    dead = [letter.with_redaction(self.redact) for letter in dead]
                await self._dead_letter(dead)
                # Also in ClickHouse, so "what is rejected, and why" is one SQL query away.
                await self._retry(f"record {len(dead)} dead letters", self._record_dead, dead)
            if report.inserted or report.duplicates:
                observe_stored(self.kind, report)
        return report

    async def process(self, messages: Sequence[Message]) -> StoreReport:
        """Handle one batch; returns only when every message is stored or dead-lettered."""
        with gc_paused():
            return await self.store(self.prepare(messages))

    async def _store_isolating(self, items: list[Located]) -> tuple[StoreReport, list[tuple[Located, BaseException]]]:
        """Store ``items``; returns the report and the events the store refused, with the error.

        Outages are retried inside (:meth:`_retry`). Any other failure is taken as caused by some
        of the rows: the batch is split in halves, each stored on its own, down to single events.
        One refused event in a batch of n costs about 2 log2(n) extra inserts.
        """
        try:
            return await self._retry(f"store {len(items)} {self.kind} events", self._store, items), []
        except Exception as exc:  # noqa: BLE001 - _retry raised it: not an outage
            if len(items) == 1:
                log.warning("%s event %s refused by the store: %s", self.kind, items[0].event.event_id, exc)
                return StoreReport(), [(items[0], exc)]
            log.warning("storing %d %s events failed (%s): isolating the events concerned", len(items), self.kind, exc)
        half = len(items) // 2
        left, refused_left = await self._store_isolating(items[:half])
        right, refused_right = await self._store_isolating(items[half:])
        return _merged(left, right), refused_left + refused_right

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        """Send every dead letter to the DLQ, many in flight at once; returns when all are acknowledged.

        A letter the topic refuses as too large goes again as a bounded copy (:data:`BOUNDED_COPY_BYTES`);
        other failures are retried with back-off, as for any outage.
        """
        pending = letters
        sent: list[DeadLetter] = []
        delay = self.retry_initial_s
        send_many = getattr(self.send_dead_letter, "send_many", None)
        while pending:
            failed: list[DeadLetter] = []
            error: BaseException | None = None
            for start in range(0, len(pending), DLQ_IN_FLIGHT):
                chunk = pending[start : start + DLQ_IN_FLIGHT]
                if send_many is not None:  # a batch sender (DeadLetterProducer): one call for the chunk
                    try:
                        results = await send_many(chunk)
                    except Exception as exc:  # noqa: BLE001 - e.g. no metadata: the whole chunk failed
                        results = [exc] * len(chunk)
                else:
                    results = await asyncio.gather(*(self.send_dead_letter(letter) for letter in chunk), return_exceptions=True)
                for letter, result in zip(chunk, results):
                    if not isinstance(result, BaseException):
                        sent.append(letter)
                    elif isinstance(result, asyncio.CancelledError):
                        raise result
                    elif _is_retryable_kafka_error(result) or is_retryable(result):
                        failed.append(letter)
                        error = result
                    elif not letter.bounded:
                        # Too large, or refused for what it holds: its bounded copy (digest and size
                        # in the headers) still records the reason and where the message is.
                        log.warning("dead letter %s[%d]@%d refused by the dead-letter topic (%s): sending a bounded copy",
                                    letter.message.topic, letter.message.partition, letter.message.offset, result)
                        failed.append(letter.as_bounded())
                    else:
                        raise result
            pending = failed
            if error is not None:
                self._note_failure(f"dead-letter {len(failed)} message(s)", error, delay)
                gc.collect()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
        if self.last_error is not None and self.last_error.startswith("dead-letter"):
            log.warning("ingest resumed: dead letters acknowledged")
            self.last_error = None
            metrics.INGEST_PAUSED.set(0)
        self._dead_lettered(sent)

    def _dead_lettered(self, letters: list[DeadLetter]) -> None:
        """Count the acknowledged dead letters; log one line per batch (one per letter at DEBUG).

        A line per letter cost about a sixth of serve's CPU when a router sent nothing but bad
        events; the ``dead_letters`` table and ``routerwatch dlq`` have every one.
        """
        reasons: dict[tuple[str, str], int] = {}
        for letter in letters:
            key = (letter.message.topic, letter.reason)
            reasons[key] = reasons.get(key, 0) + 1
        for (topic, reason), n in reasons.items():
            metrics.INGEST_DEAD_LETTERED.labels(topic, reason).inc(n)
        if letters and log.isEnabledFor(logging.INFO):
            first = letters[0]
            log.info(
                "dead-lettered %d message(s) (%s); first %s[%d]@%d: %s: %s",
                len(letters), ", ".join(f"{t} {r}: {n}" for (t, r), n in reasons.items()),
                first.message.topic, first.message.partition, first.message.offset, first.reason, first.detail,
            )
        if log.isEnabledFor(logging.DEBUG):
            for letter in letters:
                m = letter.message
                log.debug("dead-lettered %s[%d]@%d: %s: %s", m.topic, m.partition, m.offset, letter.reason, letter.detail)

    async def _record_dead(self, dead: list[DeadLetter]) -> None:
        await asyncio.to_thread(self.sink.store_dead_letters, dead)

    async def _store(self, valid: list[Located]) -> StoreReport:
        # The ClickHouse client is synchronous: keep the consumer's event loop free meanwhile.
        return await asyncio.to_thread(self.sink.store_batch, self.kind, valid)

    async def _retry(self, what: str, action: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run ``action`` until it succeeds or fails with an error that is not an outage (raised)."""
        delay = self.retry_initial_s
        while True:
            try:
                result = await action(*args)
            except Exception as exc:  # sorted below
                if not (is_retryable(exc) or _is_retryable_kafka_error(exc)):
                    raise
                self._note_failure(what, exc, delay)
            else:
                if self.last_error is not None:
                    log.warning("ingest resumed: %s succeeded", what)
                self.last_error = None
                metrics.INGEST_PAUSED.set(0)
                return result
            # The batch runs with the cyclic collector paused (gc_paused): while the store is
            # down and this loop waits, collect what failed attempts left (tracebacks are cycles).
            gc.collect()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_s)

    def _note_failure(self, what: str, exc: BaseException, delay: float) -> None:
        self.last_error = f"{what}: {exc}"
        metrics.INGEST_PAUSED.set(1)
        if what.startswith("dead-letter"):
            metrics.INGEST_DLQ_RETRIES.inc()
        else:
            for table in TABLES[self.kind]:
                metrics.INGEST_STORE_RETRIES.labels(table).inc()
        log.error("ingest paused, retrying in %.1fs: %s failed: %s", delay, what, exc)


def _merged(a: StoreReport, b: StoreReport) -> StoreReport:
    """One report for two halves of a batch."""
    out = StoreReport()
    for report in (a, b):
        for table, rows in report.inserted.items():
            out.inserted[table] = out.inserted.get(table, 0) + rows
        for table, rows in report.duplicates.items():
            out.duplicates[table] = out.duplicates.get(table, 0) + rows
        out.fresh_decisions.extend(report.fresh_decisions)
        out.resolved_grades += report.resolved_grades
    return out


def _kafka_cause(exc: BaseException) -> BaseException:
    # faust wraps the producer's KafkaError in its own ProducerSendError.
    cause = exc.__cause__
    return cause if cause is not None and type(exc).__name__ == "ProducerSendError" else exc


def _is_too_large(exc: BaseException) -> bool:
    from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

    return isinstance(_kafka_cause(exc), (MessageSizeTooLargeError, RecordTooLargeError))


def _is_retryable_kafka_error(exc: BaseException) -> bool:
    """A Kafka error that trying again can cure (the broker down, a leader moving, a timeout)."""
    try:
        from aiokafka.errors import KafkaError
    except ImportError:  # pragma: no cover - aiokafka is a core dependency
        return False
    exc = _kafka_cause(exc)
    return isinstance(exc, KafkaError) and not _is_too_large(exc)
