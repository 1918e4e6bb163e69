"""The ingest consumer: aiokafka ``getmany`` batches, offsets committed only after store.

One consumer in the ingest group (``ingest.app_id``) reads the three input
topics. A batch fills until ``ingest.batch_size`` records or
``ingest.batch_seconds`` after its first record, whichever comes first; its
records go to the :class:`~routerwatch.ingest.processor.BatchProcessor` of
their topic, and only when every processor has returned (each message stored
or acknowledged by the dead-letter topic) are the batch's offsets committed.

Memory stays bounded whatever the backlog: a batch holds at most
``batch_size`` records, and aiokafka prefetches at most ``fetch_max_bytes`` of
records ahead of it; a batch being stored (or waiting for ClickHouse to come
back) simply stops the reading.

Batch N+1 is validated (Python, on the event loop) while batch N is being
stored (the engine's C++ in a worker thread, without the GIL); storing and
committing stay strictly one batch after the other, in order.

When the group rebalances, the partitions being revoked are first drained:
the batch in flight and the records already taken are stored and committed
(``on_partitions_revoked`` runs under the same lock as a batch), so the next
owner starts after them.
Were a commit lost anyway (crash, fenced member), the next owner reads the
records again and the sink skips their event_ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from routerwatch.config import Settings
from routerwatch.kafka_client import client_kwargs
from routerwatch.ingest.processor import BatchProcessor, Prepared

log = logging.getLogger("routerwatch.ingest")

# Upper bound on fetched-but-not-taken bytes; with batch_size this bounds ingest's memory.
FETCH_MAX_BYTES = 32 * 1024 * 1024
PARTITION_FETCH_BYTES = 4 * 1024 * 1024
# How long a stopping worker lets the batch in hand finish storing before giving it up to redelivery.
STOP_GRACE_S = 20.0
# How often the cyclic garbage collector runs while ingest has its automatic runs off. Each run
# walks every live object, and under load the batches in hand are most of them: with 20,000-30,000
# validated events alive a collection holds the GIL for 0.2-0.4 s (measured), stalling the event
# loop and the validating thread alike, while what it finds is nearly nothing (validated batches
# are acyclic; cycles come from the odd exception or future). Once a minute keeps that stall off
# the freshness of all but a sliver of the traffic; at 10k events/s, every 10 s, it was ~7% of the
# process's GIL time (py-spy).
COLLECT_EVERY_S = 60.0


class IngestConsumer:
    """Reads the input topics in batches and commits only what is stored; see the module docstring.

    ``processors`` maps each input topic to its processor. :meth:`run` lives as long as the
    serve worker; cancelling it stops the consumer after the batch in hand (bounded by
    ``STOP_GRACE_S``).
    """

    def __init__(self, settings: Settings, processors: dict[str, BatchProcessor]) -> None:
        self.settings = settings
        self.processors = processors
        self.batch_size = settings.ingest.batch_size
        self.batch_seconds = settings.ingest.batch_seconds
        self.consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, list[Any]] = {}
        self._count = 0
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Future[Any] | None = None
        self._collected_at = 0.0
        self.ready = False  # set once the group assigned this member its partitions
        # Progress: the last time a batch was committed or the group was seen with nothing waiting
        # (see note_lag). A consumer waiting on ClickHouse, wedged, or dead stops moving it.
        self.progress_at = time.monotonic()
        self.running = False
        self.failure: str | None = None  # the error that last ended run(), until it runs again

    def note_lag(self, total: int) -> None:
        """Record a lag measurement: nothing waiting counts as progress (an idle ingest is not stalled)."""
        if total == 0:
            self.progress_at = time.monotonic()

    def stalled_seconds(self) -> float:
        """Seconds since ingest last committed a batch or was seen caught up (0 means just now)."""
        return max(0.0, time.monotonic() - self.progress_at)

    def _create(self) -> AIOKafkaConsumer:
        ingest = self.settings.ingest
        return AIOKafkaConsumer(
            **client_kwargs(self.settings),
            group_id=ingest.app_id,
            client_id=f"{ingest.app_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(ingest.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, ingest.session_timeout_s / 3) * 1000),
            # A batch may wait for ClickHouse for as long as ClickHouse is down (the processor
            # backs off and retries, never drops): that is no reason to leave the group.
            max_poll_interval_ms=7 * 24 * 3600 * 1000,
            max_poll_records=self.batch_size,
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        )

    async def run(self) -> None:
        """Consume until cancelled. Starts from the group's committed offsets (safe to call again after it raised)."""
        self._pending, self._count, self._inflight = {}, 0, None
        consumer = self.consumer = self._create()
        self.running, self.failure = True, None
        try:
            await self._run(consumer)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.running = False

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        await consumer.start()
        consumer.subscribe(list(self.processors), listener=_DrainOnRevoke(self))
        # A batch builds hundreds of thousands of short-lived acyclic objects; generational scans
        # of them cost more than validating them. So the collector's automatic runs are off while
        # ingest runs (what start-up built is frozen out of every scan), and _collect() runs it
        # between batches, where it has little to look at.
        gc_was_enabled = gc.isenabled()
        gc.freeze()
        gc.disable()
        self._collected_at = time.monotonic()
        try:
            while True:
                await self._fill(consumer)
                async with self._lock:
                    await self._pipeline_step()
                self._collect()
        except asyncio.CancelledError:
            # Stopping: let the batch being stored finish, so the store is not closed under it,
            # but do not wait for an unreachable ClickHouse forever.
            inflight = self._inflight
            if inflight is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(inflight), STOP_GRACE_S)
            raise
        finally:
            self.consumer = None
            if gc_was_enabled:
                gc.enable()
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _collect(self, every_s: float = COLLECT_EVERY_S) -> None:
        now = time.monotonic()
        if now - self._collected_at >= every_s:
            self._collected_at = now
            gc.collect()

    async def _fill(self, consumer: AIOKafkaConsumer) -> None:
        """Take records until the batch is full or ``batch_seconds`` passed since its first one."""
        loop = asyncio.get_running_loop()
        deadline: float | None = loop.time() + self.batch_seconds if self._count else None
        while self._count < self.batch_size:
            inflight = self._inflight
            if inflight is not None and inflight.done() and not inflight.cancelled() and inflight.exception() is not None:
                # The batch being stored failed for good: surface it now (the supervisor restarts
                # the consumer from the committed offsets), not when the next batch arrives.
                self._inflight = None
                raise inflight.exception()  # type: ignore[misc]
            if deadline is None:
                timeout_ms = 1000
                self._collect()  # idle: a good moment
            else:
                timeout_ms = int((deadline - loop.time()) * 1000)
                if timeout_ms <= 0:
                    return
            data = await consumer.getmany(timeout_ms=timeout_ms, max_records=self.batch_size - self._count)
            for tp, records in data.items():
                if records:
                    self._pending.setdefault(tp, []).extend(records)
                    self._count += len(records)
            if self._count and deadline is None:
                deadline = loop.time() + self.batch_seconds

    async def _pipeline_step(self) -> None:
        """Validate the records taken while the previous batch is being stored, then store them.

        Validation is Python (the event loop's thread), storing is mostly the engine's C++ (a
        worker thread, without the GIL): overlapping the two keeps both cores busy. Batches are
        still stored, and their offsets committed, one after the other in order. Caller holds the lock.
        """
        taken = await asyncio.to_thread(self._take)
        if taken is None:
            return
        prepared, offsets = taken
        if self._inflight is not None:
            # The previous batch: stored and committed before this one starts. Should storing
            # it have failed for good (a bug, not an outage: outages are retried inside), this
            # raises, and ingest stops before committing anything after it.
            inflight, self._inflight = self._inflight, None
            await inflight
        self._inflight = asyncio.ensure_future(self._store_and_commit(prepared, offsets))

    def _take(self) -> tuple[list[tuple[BatchProcessor, Prepared]], dict[TopicPartition, int]] | None:
        """Validate the records taken so far and hand them over with their offsets (caller holds the lock).

        Runs in a worker thread from :meth:`_pipeline_step`: validating a batch takes a good part
        of a second, during which the event loop keeps answering /metrics, /query and heartbeats.
        """
        if not self._pending:
            return None
        pending, self._pending, self._count = self._pending, {}, 0
        by_topic: dict[str, list[Any]] = {}
        for tp, records in pending.items():
            by_topic.setdefault(tp.topic, []).extend(records)
        prepared = [(self.processors[topic], self.processors[topic].prepare(records)) for topic, records in by_topic.items()]
        return prepared, {tp: records[-1].offset + 1 for tp, records in pending.items()}

    async def _drain(self) -> None:
        """Store and commit everything taken (the batch in flight and the records not yet validated)."""
        async with self._lock:
            if self._inflight is not None:
                inflight, self._inflight = self._inflight, None
                await inflight
            taken = await asyncio.to_thread(self._take)
            if taken is not None:
                await self._store_and_commit(*taken)

    async def _store_and_commit(
        self, prepared: list[tuple[BatchProcessor, Prepared]], offsets: dict[TopicPartition, int]
    ) -> None:
        """Store (or dead-letter) every prepared batch, then commit their offsets."""
        for processor, batch in prepared:
            await processor.store(batch)
        consumer = self.consumer
        if consumer is None:
            return
        try:
            await consumer.commit(offsets)
            self.progress_at = time.monotonic()
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on (rebalance, fenced member): the new owner reads these records
            # again and the sink finds their event_ids stored. Nothing is lost.
            log.warning("offsets of a stored batch not committed (%s); the next owner re-reads them", exc)
        except KafkaError as exc:
            log.warning("committing offsets failed (%s); they are committed with the next batch or re-read", exc)


class _DrainOnRevoke(ConsumerRebalanceListener):
    """Stores and commits what was taken from partitions before they are handed to another member."""

    def __init__(self, owner: IngestConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            await self.owner._drain()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if not self.owner.ready:
            self.owner.ready = True
            # The phrase faust's own recovery logged when its consumer got its partitions:
            # scripts and tests wait for it to know that serve ingests.
            log.info("ingest consumer has its partitions (%d): Worker ready", len(assigned))
