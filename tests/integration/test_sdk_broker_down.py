"""The SDK against a real broker that is stopped and restarted while a router records.

The router's call must stay non-blocking while the broker is down and the
queue bounded. Events queued during the outage wait for the broker (the
producer gives up on each batch after its request timeout; the SDK keeps the
events and retries) and are delivered once it is back. The books must balance
exactly: every recorded event is read back from the topic or counted under a
drop reason, and with a queue large enough for the outage nothing is dropped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from servicekit import REPO, create_topics, free_port

from routerwatch.sdk import RouterWatch

pytestmark = pytest.mark.integration


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Router(threading.Thread):
    """Records decisions into every client at a steady pace until stopped, as a router serving traffic would.

    Keeps each recorded event_id, the slowest single record call, and the most
    events each client held (queued plus in flight) between calls.
    """

    def __init__(self, clients: dict[str, RouterWatch], per_tick: int = 5, tick_s: float = 0.01) -> None:
        super().__init__(name="router", daemon=True)
        self.clients = clients
        self.per_tick = per_tick
        self.tick_s = tick_s
        self.ids: dict[str, list[str]] = {name: [] for name in clients}
        self.peak_held = dict.fromkeys(clients, 0)
        self.slowest = 0.0
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def recorded(self, name: str) -> int:
        return len(self.ids[name])

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                for name, rw in self.clients.items():
                    ids = self.ids[name]
                    for _ in range(self.per_tick):
                        event_id = str(uuid.uuid4())
                        started = time.perf_counter()
                        with rw.decision(category="billing", event_id=event_id) as d:
                            d.attempt("small", tier_rank=0, model="m", provider="p").accept(latency_ms=5.0)
                            d.finish(latency_ms=6.0)
                        self.slowest = max(self.slowest, time.perf_counter() - started)
                        ids.append(event_id)
                    stats = rw.stats()
                    self.peak_held[name] = max(self.peak_held[name], stats["queued"] + stats["in_flight"])
                time.sleep(self.tick_s)  # the pace of the traffic, not a wait for anything
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


async def read_event_ids(bootstrap: str, topic: str, partitions: int) -> list[str]:
    """Every event_id on ``topic``, duplicates included, from its start to its current end."""
    import orjson
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        ids: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in tps]
            if all(position >= end[tp] for position, tp in zip(positions, tps)):
                break
            for records in (await consumer.getmany(*tps, timeout_ms=1000)).values():
                ids.extend(orjson.loads(r.value)["event_id"] for r in records)
        return ids
    finally:
        await consumer.stop()


def test_events_queued_while_the_broker_is_down_are_delivered_after_it_and_all_are_accounted_for(tmp_path):
    env = dict(os.environ, KAFKA_PORT=str(free_port()), KAFKA_CONTROLLER_PORT=str(free_port()), KAFKA_DATA_DIR=str(tmp_path / "kafka"))
    start = [str(REPO / "deploy/kafka/start.sh")]
    stop = [str(REPO / "deploy/kafka/stop.sh")]
    bootstrap = subprocess.run(start, env=env, capture_output=True, text=True, check=True, timeout=300).stdout.split()[-1]
    topics = {"roomy": f"sdk-down-roomy-{uuid.uuid4().hex[:8]}", "tight": f"sdk-down-tight-{uuid.uuid4().hex[:8]}"}
    asyncio.run(create_topics(bootstrap, list(topics.values()), partitions=3))
    # A short request timeout: the producer gives each batch up well within the outage, which is
    # exactly when the SDK used to drop its events.
    common = dict(bootstrap_servers=bootstrap, router_id="r", request_timeout_ms=3_000, drop_log_interval_s=3600)
    limits = {"roomy": 200_000, "tight": 1_000}  # roomy: more than the outage needs; tight: fills up
    clients = {
        name: RouterWatch(decisions_topic=topics[name], max_queue=limits[name], **common) for name in topics
    }
    router = Router(clients)
    try:
        router.start()
        # Traffic flows and is acknowledged before the outage.
        assert wait_until(lambda: all(rw.stats()["sent"] >= 200 for rw in clients.values()), 60), clients["roomy"].stats()

        subprocess.run(stop, env=env, check=True, timeout=120)
        # The outage lasts until the producer has given batches up (the SDK took them back to
        # retry) and the tight queue has filled. Not asserted here: on a failure the accounting
        # below shows where the events went.
        wait_until(
            lambda: all(rw.stats().get("retried", 0) > 0 for rw in clients.values())
            and clients["tight"].stats().get("dropped_queue_full", 0) > 0,
            60,
        )
        during = {name: rw.stats() for name, rw in clients.items()}

        subprocess.run(start, env=env, capture_output=True, check=True, timeout=300)
        # Keep recording until events recorded after the restart are acknowledged too.
        recorded_at_restart = router.recorded("roomy")
        wait_until(lambda: clients["roomy"].stats()["sent"] > recorded_at_restart, 120)
        router.halt.set()
        router.join(30)
        assert router.error is None, router.error
        assert wait_until(
            lambda: all(rw.stats()["queued"] + rw.stats()["in_flight"] == 0 for rw in clients.values()), 120
        ), {name: rw.stats() for name, rw in clients.items()}
        final = {name: rw.close(timeout=30) for name, rw in clients.items()}
        read = {name: asyncio.run(read_event_ids(bootstrap, topics[name], 3)) for name in topics}
    finally:
        router.halt.set()
        for rw in clients.values():
            rw.close(timeout=1)
        subprocess.run(stop + ["--wipe"], env=env, capture_output=True, timeout=120)

    # The router was never held up: a blocked call would take at least the request timeout (3 s).
    assert router.slowest < 1.0, f"a record call took {router.slowest:.3f}s while the broker was down"
    for name, rw in clients.items():
        stats, ids, on_topic = final[name], router.ids[name], read[name]
        context = f"{name}: {stats}; during the outage {during[name]}"
        assert router.peak_held[name] <= limits[name], context  # bounded: queued plus in flight
        # Exact books: each recorded event was refused at the door, or enqueued and then sent.
        assert stats["enqueued"] + stats.get("dropped_queue_full", 0) == len(ids), context
        assert stats["sent"] == stats["enqueued"], context
        assert stats["dropped"] == stats.get("dropped_queue_full", 0), context  # no other reason to drop
        assert stats["queued"] == stats["in_flight"] == 0, context
        # What the SDK counts as sent is on the topic, and nothing else is. Kafka delivers at least
        # once: an event whose acknowledgement was lost is written again, and only such a retried
        # event may appear twice.
        assert set(on_topic) <= set(ids), context
        assert len(set(on_topic)) == stats["sent"], context
        assert len(on_topic) - len(set(on_topic)) <= stats.get("retried", 0), context
        assert stats.get("retried", 0) > 0, f"the outage never made the producer give a batch up: {context}"
    # A queue large enough for the outage: nothing dropped, every recorded event delivered.
    assert final["roomy"]["dropped"] == 0, final["roomy"]
    assert set(read["roomy"]) == set(router.ids["roomy"])
    # A small one: it filled, and only then were events refused.
    assert final["tight"]["dropped_queue_full"] > 0, final["tight"]
    assert during["tight"]["queued"] + during["tight"]["in_flight"] == limits["tight"], during["tight"]


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
