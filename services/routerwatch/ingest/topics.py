"""Create routerwatch's Kafka topics before anything produces to them.

Relying on broker auto-creation races the first producer against topic
metadata and gives the broker's default partition count; creating them up
front makes partitioning a setting.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from routerwatch.config import Settings
from routerwatch.errors import RetryableError
from routerwatch.kafka_client import client_kwargs, start_client

log = logging.getLogger("routerwatch.ingest")

DLQ_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the input, dead-letter and lease topics that do not exist yet; return the names created."""
    t = settings.topics
    wanted = {name: t.partitions for name in (t.decisions, t.feedback, t.canary, t.dlq)}
    # The prober lease is "who is assigned partition 0": it needs exactly one partition.
    wanted[settings.canary.lease_topic] = 1
    # A dead letter is its message's whole value plus headers: the dead-letter topic takes larger
    # messages than the broker's default (1 MB), so a message its input topic held fits. Larger
    # still, ingest sends a bounded copy with the original's size and digest (processor.py).
    configs = {t.dlq: {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}}
    deadline = asyncio.get_running_loop().time() + timeout_s
    kwargs = client_kwargs(settings, request_timeout_ms=10_000)
    while True:
        admin = AIOKafkaAdminClient(**kwargs)
        try:
            # Refused credentials or a failed TLS handshake raise KafkaAuthError at once: no retry helps.
            await start_client(admin, settings.kafka_bootstrap, kwargs)
            break
        except KafkaConnectionError as exc:
            await admin.close()
            if asyncio.get_running_loop().time() > deadline:
                raise RetryableError(
                    f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout_s:.0f}s "
                    "(set ROUTERWATCH_KAFKA_BOOTSTRAP, or start the local broker with deploy/kafka/start.sh)"
                ) from exc
            await asyncio.sleep(1.0)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(name, num_partitions=wanted[name], replication_factor=1, topic_configs=configs.get(name, {}))
                        for name in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create: the goal is met
            log.info("created Kafka topics %s", ", ".join(f"{n} ({wanted[n]} partitions)" for n in missing))
        return missing
    finally:
        await admin.close()
