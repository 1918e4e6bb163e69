"""Read the dead-letter topic: what was rejected, where it came from, and why.

Each dead-lettered message keeps the original key and value bytes; the
``routerwatch.*`` headers carry reason, detail, source topic, partition and
offset (see :class:`routerwatch.ingest.processor.DeadLetter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from routerwatch.kafka_client import start_client


@dataclass(frozen=True)
class DeadLetterRecord:
    partition: int
    offset: int
    value: bytes | None
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        return self.headers.get("routerwatch.reason", "")


async def read_dead_letters(
    bootstrap: str, topic: str, limit: int | None = None, security: Mapping[str, Any] | None = None
) -> list[DeadLetterRecord]:
    """Every message currently on the DLQ topic (up to ``limit``), oldest first per partition.

    ``security``: aiokafka's security arguments (:func:`routerwatch.kafka_client.settings_kwargs`).
    """
    security = dict(security or {})
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", **security
    )
    await start_client(consumer, bootstrap, security)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[DeadLetterRecord] = []
        remaining = {tp: end for tp, end in ends.items() if end > 0}
        while remaining and (limit is None or len(records) < limit):
            batch = await consumer.getmany(*remaining, timeout_ms=2000)
            if not batch:
                break
            for tp, messages in batch.items():
                for m in messages:
                    headers = {k: v.decode("utf-8", "replace") for k, v in (m.headers or ())}
                    records.append(DeadLetterRecord(m.partition, m.offset, m.value, headers))
                    if m.offset + 1 >= remaining.get(tp, 0):
                        remaining.pop(tp, None)
        return records[:limit] if limit is not None else records
    finally:
        await consumer.stop()


async def count_dead_letters(bootstrap: str, topic: str, security: Mapping[str, Any] | None = None) -> int:
    """Messages on the DLQ topic (end minus beginning offsets, all partitions)."""
    security = dict(security or {})
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security)
    await start_client(consumer, bootstrap, security)
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    # Not subscribed, so ask the cluster metadata for this topic explicitly.
    await consumer._client.force_metadata_update()
    return consumer._client.cluster.partitions_for_topic(topic) or set()
