"""The SDK against a real broker that goes away and comes back.

The router's call must stay non-blocking while the broker is down, the queue
must stay bounded (drops counted, not hidden), and once the broker is back
the queued events must be delivered.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from servicekit import REPO, free_port

from routerwatch.sdk import RouterWatch

pytestmark = pytest.mark.integration


def record(rw: RouterWatch, n: int) -> float:
    """Record ``n`` decisions; return the slowest single call in seconds."""
    slowest = 0.0
    for _ in range(n):
        started = time.perf_counter()
        with rw.decision(category="billing") as d:
            d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=5.0)
            d.finish(latency_ms=6.0)
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def test_sdk_stays_non_blocking_and_bounded_while_the_broker_is_down(tmp_path):
    env = dict(os.environ, KAFKA_PORT=str(free_port()), KAFKA_CONTROLLER_PORT=str(free_port()), KAFKA_DATA_DIR=str(tmp_path / "kafka"))
    start = [str(REPO / "deploy/kafka/start.sh")]
    stop = [str(REPO / "deploy/kafka/stop.sh")]
    bootstrap = subprocess.run(start, env=env, capture_output=True, text=True, check=True, timeout=300).stdout.split()[-1]
    rw = RouterWatch(bootstrap_servers=bootstrap, router_id="r", max_queue=5_000, request_timeout_ms=5_000, drop_log_interval_s=3600)
    try:
        record(rw, 100)
        deadline = time.monotonic() + 60
        while rw.stats()["sent"] < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rw.stats()["sent"] == 100

        subprocess.run(stop, env=env, check=True, timeout=120)
        slowest = record(rw, 20_000)
        stats = rw.stats()
        # A blocked call would take at least the producer's request timeout (5 s).
        assert slowest < 1.0, f"a record call took {slowest:.3f}s while the broker was down"
        assert stats["queued"] + stats["in_flight"] <= 5_000
        # Only slots freed by a delivery (or a send that timed out) let more in.
        freed = stats["sent"] - 100 + stats.get("dropped_delivery_failed", 0)
        assert stats["dropped_queue_full"] >= 20_000 - 5_000 - freed
        assert stats["enqueued"] + stats["dropped_queue_full"] == 100 + 20_000

        subprocess.run(start, env=env, capture_output=True, check=True, timeout=300)
        deadline = time.monotonic() + 90
        while rw.stats()["queued"] and time.monotonic() < deadline:
            time.sleep(0.2)
        final = rw.close(timeout=60)
        assert final["queued"] == 0
        # Everything that was accepted into the queue was either delivered or counted as dropped.
        assert final["sent"] + final.get("dropped_delivery_failed", 0) + final.get("dropped_closed", 0) == final["enqueued"]
        assert final["sent"] > 100, "events queued during the outage are delivered after it"
    finally:
        rw.close(timeout=1)
        subprocess.run(stop + ["--wipe"], env=env, capture_output=True, timeout=120)


async def test_batches_land_on_the_partition_of_their_key_and_all_are_acknowledged(kafka_bootstrap, names):
    """The sender fills one record batch per partition itself: each event must land where
    ``producer.send(key=request_id)`` would have put it, intact, and be counted as sent."""
    import json

    from aiokafka import AIOKafkaConsumer
    from servicekit import create_topics
    from aiokafka.partitioner import DefaultPartitioner

    from routerwatch.events import RoutingDecision, decode

    topic = names["decisions"]
    await create_topics(kafka_bootstrap, [topic], partitions=3)

    n = 3_000
    async with RouterWatch(bootstrap_servers=kafka_bootstrap, router_id="r", decisions_topic=topic,
                           max_queue=n, close_timeout_s=60) as rw:
        for i in range(n):
            with rw.decision(request_id=f"req-{i}" if i % 2 else None, category="billing") as d:
                d.attempt("small", tier_rank=0, model="m", provider="p", offset_ms=0.0).escalate(
                    "low_confidence", latency_ms=5.0)
                large = d.attempt("large", tier_rank=1, model="l", provider="p", offset_ms=6.0)
                large.accept(latency_ms=9.0, cost_usd=0.01)
                d.finish(latency_ms=20.0)
    stats = rw.stats()
    assert stats["sent"] == n and stats["dropped"] == 0

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=names["group"])
    await consumer.start()
    seen: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 60
        while len(seen) < n and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    event = decode(RoutingDecision, record.value)
                    assert record.key == event.request_id.encode()
                    assert tp.partition == DefaultPartitioner()(record.key, [0, 1, 2], [0, 1, 2])
                    assert json.loads(record.value)["final"]["tier"] == "large"
                    seen[event.request_id] = tp.partition
    finally:
        await consumer.stop()
    assert len(seen) == n
    assert set(seen.values()) == {0, 1, 2}
