"""One ingest batch: validate each message, dead-letter the bad ones, store the good ones.

Independent of faust so the logic is testable on its own; :mod:`routerwatch.ingest.app`
feeds it faust batches and acknowledges the messages only after
:meth:`BatchProcessor.process` returns, i.e. after every message is either
stored in ClickHouse or acknowledged by the dead-letter topic.

Error handling follows the permanent / retryable split: an invalid message is
permanent (dead-letter it with its reason, count it, move on); ClickHouse or
the DLQ being unavailable is retryable (back off and try again, for as long as
it takes; the batch is never dropped and its offsets are never committed
before it is stored).
"""

from __future__ import annotations

import asyncio
import gc
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
from routerwatch.ingest.sink import TABLES, ClickHouseSink, StoreReport
from routerwatch.storage.errors import QueryError, StoreUnavailable
from routerwatch.storage.rows import Located

log = logging.getLogger("routerwatch.ingest")

MODELS: dict[str, type] = {"decision": RoutingDecision, "feedback": QualityFeedback, "canary": CanaryResult}


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

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carried by the dead-lettered copy; the value stays the original bytes."""
        return [
            ("routerwatch.reason", self.reason.encode()),
            ("routerwatch.detail", self.detail.encode()[:4000]),
            ("routerwatch.topic", self.message.topic.encode()),
            ("routerwatch.partition", str(self.message.partition).encode()),
            ("routerwatch.offset", str(self.message.offset).encode()),
            ("routerwatch.failed_at", str(int(time.time() * 1000)).encode()),
        ]


SendDeadLetter = Callable[[DeadLetter], Awaitable[None]]


@dataclass
class Prepared:
    """A validated batch waiting to be stored: its valid events and its dead letters."""

    valid: list[Located]
    dead: list[DeadLetter]

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

    ``send_dead_letter`` must raise when the DLQ did not acknowledge the
    message; the processor then backs off and sends again.
    """

    def __init__(
        self,
        kind: str,
        sink: ClickHouseSink,
        send_dead_letter: SendDeadLetter,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.kind = kind
        self.model = MODELS[kind]
        self.sink = sink
        self.send_dead_letter = send_dead_letter
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
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
        return Prepared(valid, dead)

    async def store(self, prepared: Prepared) -> StoreReport:
        """Dead-letter and store a prepared batch: the second half of :meth:`process`.

        Returns only when every message is stored or acknowledged by the dead-letter topic.
        """
        with gc_paused():
            for letter in prepared.dead:
                await self._retry(f"dead-letter {letter.message.topic}@{letter.message.offset}", self.send_dead_letter, letter)
                metrics.INGEST_DEAD_LETTERED.labels(letter.message.topic, letter.reason).inc()
                log.info(
                    "dead-lettered %s[%d]@%d: %s: %s",
                    letter.message.topic,
                    letter.message.partition,
                    letter.message.offset,
                    letter.reason,
                    letter.detail,
                )
            if prepared.dead:
                # Also in ClickHouse, so "what is rejected, and why" is one SQL query away.
                await self._retry(f"record {len(prepared.dead)} dead letters", self._record_dead, prepared.dead)
            if not prepared.valid:
                return StoreReport()
            report = await self._retry(f"store {len(prepared.valid)} {self.kind} events", self._store, prepared.valid)
            observe_stored(self.kind, report)
        return report

    async def process(self, messages: Sequence[Message]) -> StoreReport:
        """Handle one batch; returns only when every message is stored or dead-lettered."""
        with gc_paused():
            return await self.store(self.prepare(messages))

    async def _record_dead(self, dead: list[DeadLetter]) -> None:
        await asyncio.to_thread(self.sink.store_dead_letters, dead)

    async def _store(self, valid: list[Located]) -> StoreReport:
        # The ClickHouse client is synchronous: keep the consumer's event loop free meanwhile.
        return await asyncio.to_thread(self.sink.store_batch, self.kind, valid)

    async def _retry(self, what: str, action: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        delay = self.retry_initial_s
        while True:
            try:
                result = await action(*args)
            except (StoreUnavailable, QueryError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
                # A QueryError on validated rows means the schema is behind (migrations not
                # applied): as for an outage, pausing loses nothing while someone fixes it.
                self._note_failure(what, exc, delay)
            except Exception as exc:  # noqa: BLE001 - e.g. Kafka errors from the DLQ producer
                if not _is_retryable_kafka_error(exc):
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


def _is_retryable_kafka_error(exc: BaseException) -> bool:
    try:
        from aiokafka.errors import KafkaError
    except ImportError:  # pragma: no cover - aiokafka is a core dependency
        return False
    return isinstance(exc, KafkaError)
