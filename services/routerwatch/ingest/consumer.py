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

When the group rebalances, the partitions being revoked are first drained:
the records already taken are stored and committed (``on_partitions_revoked``
runs under the same lock as a batch), so the next owner starts after them.
Were a commit lost anyway (crash, fenced member), the next owner reads the
records again and the sink skips their event_ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from routerwatch.config import Settings
from routerwatch.ingest.processor import BatchProcessor, gc_paused

log = logging.getLogger("routerwatch.ingest")

# Upper bound on fetched-but-not-taken bytes; with batch_size this bounds ingest's memory.
FETCH_MAX_BYTES = 32 * 1024 * 1024
PARTITION_FETCH_BYTES = 4 * 1024 * 1024
# How long a stopping worker lets the batch in hand finish storing before giving it up to redelivery.
STOP_GRACE_S = 20.0


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
        self.ready = False  # set once the group assigned this member its partitions

    def _create(self) -> AIOKafkaConsumer:
        ingest = self.settings.ingest
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
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
        """Consume until cancelled."""
        consumer = self.consumer = self._create()
        await consumer.start()
        consumer.subscribe(list(self.processors), listener=_DrainOnRevoke(self))
        try:
            while True:
                await self._fill(consumer)
                flush = asyncio.ensure_future(self._flush_locked())
                try:
                    await asyncio.shield(flush)
                except asyncio.CancelledError:
                    # Stopping: let the batch in hand finish storing, so the store is not closed
                    # under it, but do not wait for an unreachable ClickHouse forever.
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await asyncio.wait_for(flush, STOP_GRACE_S)
                    raise
        finally:
            self.consumer = None
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _fill(self, consumer: AIOKafkaConsumer) -> None:
        """Take records until the batch is full or ``batch_seconds`` passed since its first one."""
        loop = asyncio.get_running_loop()
        deadline: float | None = loop.time() + self.batch_seconds if self._count else None
        while self._count < self.batch_size:
            if deadline is None:
                timeout_ms = 1000
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

    async def _flush_locked(self) -> None:
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        """Store (or dead-letter) every record taken, then commit their offsets."""
        if not self._pending:
            return
        # The batch's objects (records, events, columns) all live in _store_and_commit's frame,
        # so they are freed when it returns, before the cyclic collector is back on: with them
        # gone, re-enabling it does not start a scan of the whole batch.
        with gc_paused():
            await self._store_and_commit()

    async def _store_and_commit(self) -> None:
        pending, self._pending, self._count = self._pending, {}, 0
        by_topic: dict[str, list[Any]] = {}
        for tp, records in pending.items():
            by_topic.setdefault(tp.topic, []).extend(records)
        for topic, records in by_topic.items():
            await self.processors[topic].process(records)
        offsets = {tp: records[-1].offset + 1 for tp, records in pending.items()}
        consumer = self.consumer
        if consumer is None:
            return
        try:
            await consumer.commit(offsets)
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
            await self.owner._flush_locked()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if not self.owner.ready:
            self.owner.ready = True
            # The phrase faust's own recovery logged when its consumer got its partitions:
            # scripts and tests wait for it to know that serve ingests.
            log.info("ingest consumer has its partitions (%d): Worker ready", len(assigned))
