"""How far the ingest consumer group is behind its topics (used by `routerwatch wait`)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from routerwatch.config import Settings
from routerwatch.kafka_client import client_kwargs, start_client


async def consumer_lag(settings: Settings, topics: list[str] | None = None) -> dict[str, int]:
    """Messages not yet committed by the ingest group, per input topic (default: all three)."""
    topics = topics or [settings.topics.decisions, settings.topics.feedback, settings.topics.canary]
    kwargs = client_kwargs(settings)
    admin = AIOKafkaAdminClient(**kwargs)
    await start_client(admin, settings.kafka_bootstrap, kwargs)
    try:
        consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False)
        await consumer.start()
    except BaseException:
        await admin.close()
        raise
    try:
        committed = await admin.list_consumer_group_offsets(settings.ingest.app_id)
        # A consumer that is not subscribed keeps no partition metadata: ask the admin API.
        partitions = [
            TopicPartition(description["topic"], part["partition"])
            for description in await admin.describe_topics(topics)
            if not description.get("error_code")
            for part in description["partitions"]
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        lag = {topic: 0 for topic in topics}
        for tp, end in ends.items():
            done = committed.get(tp)
            lag[tp.topic] += end - (done.offset if done is not None and done.offset >= 0 else 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def wait_caught_up(
    settings: Settings, timeout_s: float, poll_s: float = 0.5, topics: list[str] | None = None
) -> dict[str, int]:
    """Poll until the lag is zero on every topic; returns the last lag seen (non-zero on timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = await consumer_lag(settings, topics)
        if not any(lag.values()) or time.monotonic() > deadline:
            return lag
        await asyncio.sleep(poll_s)
