"""The router-side emitter: one RoutingDecision event per request, to Kafka.

Contract with the router:

* Recording never blocks and never raises into the request path (strict mode
  aside). Finished decisions go into a bounded in-memory queue; a sender thread
  with its own event loop builds and serialises the events there, fills one
  record batch per partition and hands the batches to an aiokafka producer
  (linger, compression, bounded in-flight events).
* When the queue is full, or the broker stays unreachable, events are dropped,
  counted in :meth:`RouterWatch.stats` and logged (at most one log line per
  ``drop_log_interval_s``), never queued without bound. So is an event that
  cannot be serialised (``unserialisable``) or exceeds a whole record batch
  (``too_large``); the sender goes on with the next.
* :meth:`RouterWatch.close` flushes what is queued, waiting at most
  ``close_timeout_s``; what could not be sent by then is counted as dropped.

The same client serves sync and async routers: ``with rw.decision(...)`` and
``async with rw.decision(...)`` both only append to the queue.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

try:  # A third of pydantic_core.to_json's cost per event; to_json remains the fallback for what orjson refuses.
    from orjson import dumps as _fast_dumps
except ImportError:  # pragma: no cover - orjson is a dependency, but the SDK must not break without it
    _fast_dumps = to_json

from routerwatch.sdk.partition import choose_partition
from routerwatch.sdk.recorder import DecisionRecorder, _iso_ms, new_id

log = logging.getLogger("routerwatch.sdk")

DECISIONS_TOPIC = "routerwatch.decisions.v1"
FEEDBACK_TOPIC = "routerwatch.feedback.v1"
CANARY_TOPIC = "routerwatch.canary.v1"
# Largest record batch the producer builds (uncompressed): 1 MiB, Kafka's default message.max.bytes.
MAX_BATCH_BYTES = 1 << 20
_NO_HEADERS: list[tuple[str, bytes]] = []  # the record batch builder wants a list; never mutated


class SdkConfig(BaseModel):
    """Settings of the emitter. Defaults suit a production router."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    router_id: str
    router_version: str | None = None
    strategy: str = "cascade"
    policy_version: str | None = None
    environment: str = "production"
    decisions_topic: str = DECISIONS_TOPIC
    feedback_topic: str = FEEDBACK_TOPIC
    canary_topic: str = CANARY_TOPIC
    max_queue: int = Field(
        default=10_000, ge=1, description="Events held (queued plus unacknowledged) while the broker is slow or down."
    )
    max_batch: int = Field(default=2_000, ge=1, description="Events handed to the producer per sender cycle.")
    linger_ms: int = Field(default=10, ge=0, le=1000)
    # zstd, not lz4: aiokafka compresses lz4 at level 9 (LZ4HC), which costs ~9 us of CPU per
    # 1.3 kB event; zstd level 3 costs a third of that, compresses twice as well, and lets
    # other threads run while it works.
    compression: str | None = "zstd"
    max_in_flight: int = Field(default=20_000, ge=1, description="Events sent and awaiting broker acknowledgement.")
    request_timeout_ms: int = Field(default=15_000, ge=1000)
    close_timeout_s: float = Field(default=5.0, ge=0)
    strict: bool = Field(default=False, description="Development mode: validate at the call site and raise.")
    drop_log_interval_s: float = 10.0


class RouterWatch:
    """The SDK client. Create one per process; share it across requests and threads.

    ``start()`` is optional (the first event starts the sender); ``close()`` is
    safe without ``start()`` and safe twice. Use as a context manager to get
    both.
    """

    def __init__(self, config: SdkConfig | None = None, **settings: Any) -> None:
        self.config = config or SdkConfig(**settings)
        self._queue: collections.deque[tuple[str, bytes | None, Any]] = collections.deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._closed = False
        self._counts = collections.Counter[str]()
        self._in_flight = 0  # handed to the producer, not yet acknowledged; maintained by the sender
        # -inf, not 0.0: time.monotonic() may be below drop_log_interval_s shortly after boot.
        self._last_drop_log = float("-inf")
        # Copied per decision (routers may replace it, see the example router); built once here.
        router: dict[str, Any] = {"id": self.config.router_id, "strategy": self.config.strategy}
        if self.config.router_version is not None:
            router["version"] = self.config.router_version
        if self.config.policy_version is not None:
            router["policy_version"] = self.config.policy_version
        self._router = router
        self._environment = self.config.environment
        self._max_queue = self.config.max_queue

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> RouterWatch:
        """Start the sender thread. Connecting to the broker happens in the background."""
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run_sender, name="routerwatch-sdk", daemon=True)
                self._thread.start()
        return self

    def close(self, timeout: float | None = None) -> dict[str, int]:
        """Flush queued events (waiting at most ``timeout`` seconds) and stop. Returns :meth:`stats`."""
        with self._lock:
            if self._closed:
                return self.stats()
            self._closed = True
            thread = self._thread
        self._stopping.set()
        if thread is not None:
            thread.join(self.config.close_timeout_s if timeout is None else timeout)
        leftover = len(self._queue)
        if leftover:
            self._queue.clear()
            self._count_drop("closed", leftover, force_log=True)
        return self.stats()

    stop = close

    async def aclose(self, timeout: float | None = None) -> dict[str, int]:
        """:meth:`close` for async routers: waits in a worker thread, not on the event loop."""
        return await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> RouterWatch:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> RouterWatch:
        return self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- recording -----------------------------------------------------------------

    def decision(
        self,
        *,
        request_id: str | None = None,
        category: str = "default",
        tenant: str | None = None,
        source: str | None = None,
        experiment: tuple[str, str] | None = None,
        shadow: bool = False,
        canary_id: str | None = None,
        route: dict[str, Any] | None = None,
        quality: dict[str, Any] | None = None,
        prompt: dict[str, Any] | None = None,
        event_id: str | None = None,
        occurred_at: float | None = None,
    ) -> DecisionRecorder:
        """Begin recording one request. Use the result as a (sync or async) context manager.

        ``experiment`` is ``(experiment_id, variant)``. ``occurred_at`` (epoch
        seconds) defaults to now; ``event_id`` to a fresh UUID (pass your own to
        make re-emission idempotent).
        """
        # Built straight into one dict: this runs on the router's request path. Ids left out
        # here are made lazily (see DecisionRecorder), off the request path when nobody reads them.
        fields: dict[str, Any] = {"schema_version": 1, "router": dict(self._router)}
        if event_id:
            fields["event_id"] = event_id
        if request_id:
            fields["request_id"] = request_id
        fields["environment"] = self._environment
        fields["category"] = category
        fields["shadow"] = shadow
        if tenant is not None:
            fields["tenant"] = tenant
        if source is not None:
            fields["source"] = source
        if canary_id is not None:
            fields["canary_id"] = canary_id
        if route is not None:
            fields["route"] = route
        if quality is not None:
            fields["quality"] = quality
        if prompt is not None:
            fields["prompt"] = prompt
        if experiment is not None:
            fields["experiment"] = {"id": experiment[0], "variant": experiment[1]}
        return DecisionRecorder(self, fields, occurred_at)

    def feedback(
        self,
        request_id: str,
        *,
        score: float,
        passed: bool,
        source: str = "grader",
        target: str = "served",
        attempt_index: int | None = None,
        tier: str | None = None,
        grader: str | None = None,
        event_id: str | None = None,
        occurred_at: float | None = None,
    ) -> None:
        """Emit a late QualityFeedback grade for ``request_id``. Never blocks."""
        event: dict[str, Any] = {
            "event_id": event_id or new_id(),
            "schema_version": 1,
            "request_id": request_id,
            "occurred_at": _iso_ms(time.time() if occurred_at is None else occurred_at),
            "router_id": self.config.router_id,
            "target": target,
            "score": score,
            "passed": passed,
            "source": source,
        }
        for key, value in (("attempt_index", attempt_index), ("tier", tier), ("grader", grader)):
            if value is not None:
                event[key] = value
        if self.config.strict:
            self._validate("QualityFeedback", event)
        self._enqueue(self.config.feedback_topic, request_id.encode(), event)

    def canary_result(self, result: dict[str, Any]) -> None:
        """Emit one CanaryResult (a dict in the contract's shape; ``router_id``,
        ``event_id``, ``schema_version`` and ``occurred_at`` are filled in when absent).

        The canary prober uses this; routers never need it. Never blocks.
        """
        event = {
            "event_id": new_id(),
            "schema_version": 1,
            "router_id": self.config.router_id,
            "occurred_at": _iso_ms(time.time()),
            **{k: v for k, v in result.items() if v is not None},
        }
        if self.config.strict:
            self._validate("CanaryResult", event)
        self._enqueue(self.config.canary_topic, str(event["canary_id"]).encode(), event)

    def emit_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Send pre-serialised bytes as they are (tools and tests: replays, invalid input)."""
        self._enqueue(topic, key, value)

    def stats(self) -> dict[str, int]:
        """Counters: ``enqueued``, ``sent``, ``dropped_<reason>`` (``queue_full``, ``closed``, ``delivery_failed``,
        ``unserialisable``, ``too_large``), ``dropped`` (total), and the gauges
        ``queued`` (waiting for the sender) and ``in_flight`` (handed to the producer, unacknowledged)."""
        counts = dict(self._counts)
        counts["dropped"] = sum(v for k, v in self._counts.items() if k.startswith("dropped_"))
        counts["queued"] = len(self._queue)
        counts["in_flight"] = self._in_flight
        for key in ("enqueued", "sent"):
            counts.setdefault(key, 0)
        return counts

    # -- internals -----------------------------------------------------------------

    def _submit_decision(self, decision: DecisionRecorder) -> None:
        if self.config.strict:
            self._validate("RoutingDecision", decision.to_event())
        # No request id yet: the sender makes it (and the key from it), off the request path.
        rid = decision.fields.get("request_id")
        self._enqueue(self.config.decisions_topic, None if rid is None else rid.encode(), decision)

    def _validate(self, name: str, event: dict[str, Any]) -> None:
        # Imported lazily: production routers never pay for building the adapters.
        from routerwatch.events.validation import EVENT_TYPES, decode

        decode(EVENT_TYPES[name], to_json(event))

    def _enqueue(self, topic: str, key: bytes | None, payload: Any) -> None:
        if self._closed:
            self._count_drop("closed", 1)
            return
        # The bound covers everything the SDK holds: queued plus handed to the producer.
        if len(self._queue) + self._in_flight >= self._max_queue:
            self._count_drop("queue_full", 1)
            return
        self._queue.append((topic, key, payload))
        self._counts["enqueued"] += 1
        if self._thread is None:
            self.start()

    def _count_drop(self, reason: str, n: int, force_log: bool = False) -> None:
        with self._lock:
            self._counts[f"dropped_{reason}"] += n
            now = time.monotonic()
            if not force_log and now - self._last_drop_log < self.config.drop_log_interval_s:
                return
            self._last_drop_log = now
            total = sum(v for k, v in self._counts.items() if k.startswith("dropped_"))
        log.warning(
            "routerwatch SDK dropped %d event(s) (%s); %d dropped since start; broker %s, queue limit %d",
            n,
            reason,
            total,
            self.config.bootstrap_servers,
            self.config.max_queue,
        )

    def _run_sender(self) -> None:
        asyncio.run(_Sender(self).run())


class _Sender:
    """Drains the client's queue into an aiokafka producer on a private event loop.

    Events are serialised straight into per-partition record batches
    (``producer.create_batch()``), and each batch goes to the producer with one
    ``send_batch``: the producer's per-message ``send()`` costs more Python time
    per event than building and serialising the event does. Partitions are
    chosen exactly as ``send(key=...)`` would (murmur2 of the key), so a
    request's events keep to one partition.
    """

    def __init__(self, client: RouterWatch) -> None:
        self.client = client
        self.cfg = client.config
        self.pending: set[asyncio.Future[Any]] = set()  # one delivery future per record batch
        self.held = 0  # events in those batches
        self.last_connect_log = float("-inf")

    async def _connect(self) -> Any:
        from aiokafka import AIOKafkaProducer

        backoff = 0.2
        # At least one attempt even when close() came first: queued events deserve a flush.
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.cfg.bootstrap_servers,
                linger_ms=self.cfg.linger_ms,
                compression_type=self.cfg.compression,
                request_timeout_ms=self.cfg.request_timeout_ms,
                max_batch_size=MAX_BATCH_BYTES,
                acks=1,
            )
            try:
                await producer.start()
                return producer
            except Exception as exc:  # noqa: BLE001 - any start failure means: not reachable yet
                await producer.stop()
                if self.client._stopping.is_set():
                    return None  # closing with the broker unreachable: close() counts the leftovers
                now = time.monotonic()
                if now - self.last_connect_log >= self.cfg.drop_log_interval_s:
                    self.last_connect_log = now
                    log.warning("routerwatch SDK cannot reach Kafka at %s (%s); retrying", self.cfg.bootstrap_servers, exc)
                # Sleep in short steps so close() is not held up by a long back-off.
                waited = 0.0
                while waited < backoff and not self.client._stopping.is_set():
                    await asyncio.sleep(0.05)
                    waited += 0.05
                backoff = min(backoff * 2, 5.0)

    def _delivered(self, count: int, fut: asyncio.Future[Any]) -> None:
        self.pending.discard(fut)
        self.held -= count
        self.client._in_flight -= count
        if fut.cancelled() or fut.exception() is not None:
            self.client._count_drop("delivery_failed", count)
        else:
            self.client._counts["sent"] += count

    def _lost(self, reason: str, count: int, exc: BaseException) -> None:
        """Events taken off the queue that will never reach the producer."""
        log.debug("routerwatch SDK: %d event(s) %s: %r", count, reason, exc)
        self.client._in_flight -= count
        self.client._count_drop(reason, count)

    async def _submit(self, producer: Any, topic: str, partition: int, builder: Any, count: int) -> None:
        while self.held >= self.cfg.max_in_flight and self.pending:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
        builder.close()  # a closed batch is sent at once: it already lingered in our queue
        try:
            fut = await producer.send_batch(builder, topic, partition=partition)
        except Exception as exc:  # noqa: BLE001 - a batch that cannot even be queued is a drop
            self._lost("delivery_failed", count, exc)
            return
        self.held += count
        self.pending.add(fut)
        fut.add_done_callback(functools.partial(self._delivered, count))

    async def _partitions(self, producer: Any, topic: str) -> tuple[list[int], list[int]] | None:
        try:
            partitions = sorted(await producer.partitions_for(topic))
        except Exception as exc:  # noqa: BLE001 - no metadata for the topic: its events are dropped
            log.debug("routerwatch SDK: no partitions for %s: %r", topic, exc)
            return None
        available = list(producer.client.cluster.available_partitions_for_topic(topic) or ())
        return partitions, available

    async def _drain(self, producer: Any) -> int:
        """Take up to ``max_batch`` events off the queue and hand them to the producer; returns how many."""
        client = self.client
        queue = client._queue
        limit = self.cfg.max_batch
        builders: dict[tuple[str, int], list[Any]] = {}  # (topic, partition) -> [builder, events in it]
        topics: dict[str, tuple[list[int], list[int]] | None] = {}
        dumps = _fast_dumps
        taken = 0
        try:
            while queue and taken < limit:
                topic, key, payload = queue.popleft()
                # Counted as held the moment it leaves the queue, so the bound never has a gap.
                client._in_flight += 1
                taken += 1
                try:
                    if isinstance(payload, DecisionRecorder):
                        event = payload.to_event()
                        if key is None:
                            key = payload.request_id.encode()
                    elif isinstance(payload, dict):
                        event = payload
                    else:
                        event = None
                        value = payload
                    if event is not None:
                        try:
                            value = dumps(event)
                        except TypeError:  # e.g. a set or a huge int in a router-given dict
                            value = to_json(event)
                except Exception as exc:  # noqa: BLE001 - a value JSON cannot hold: drop this one, go on
                    self._lost("unserialisable", 1, exc)
                    continue
                if topic in topics:
                    meta = topics[topic]
                else:
                    meta = topics[topic] = await self._partitions(producer, topic)
                if meta is None:
                    self._lost("delivery_failed", 1, LookupError(topic))
                    continue
                partitions, available = meta
                partition = partitions[0] if len(partitions) == 1 else choose_partition(key, partitions, available)
                slot = builders.get((topic, partition))
                if slot is None:
                    slot = builders[(topic, partition)] = [producer.create_batch(), 0]
                if slot[0].append(timestamp=None, key=key, value=value, headers=_NO_HEADERS) is None:
                    if slot[1]:
                        await self._submit(producer, topic, partition, slot[0], slot[1])
                        slot[0], slot[1] = producer.create_batch(), 0
                    if slot[0].append(timestamp=None, key=key, value=value, headers=_NO_HEADERS) is None:
                        self._lost("too_large", 1, ValueError(f"{len(value)} bytes"))
                        continue
                slot[1] += 1
            for (topic, partition), (builder, count) in builders.items():
                if count:
                    builders[(topic, partition)][1] = 0
                    await self._submit(producer, topic, partition, builder, count)
        except BaseException as exc:
            # The sender is going down: events taken off the queue but not yet handed over are lost.
            unsent = sum(slot[1] for slot in builders.values())
            if unsent:
                self._lost("delivery_failed", unsent, exc)
            raise
        return taken

    async def run(self) -> None:
        producer = await self._connect()
        if producer is None:
            return
        queue = self.client._queue
        linger = max(self.cfg.linger_ms, 1) / 1000.0
        try:
            while True:
                stopping = self.client._stopping.is_set()
                if queue and await self._drain(producer) >= self.cfg.max_batch:
                    continue  # a full cycle: more is likely waiting, no need to linger
                if stopping:
                    if queue:
                        continue
                    break
                # Linger: lets a batch fill up, and polling keeps the router's enqueue free of
                # cross-thread wake-ups.
                await asyncio.sleep(linger)
            await producer.flush()
            if self.pending:
                await asyncio.wait(self.pending, timeout=self.cfg.close_timeout_s)
        except Exception:  # noqa: BLE001 - the sender must never crash the router
            log.exception("routerwatch SDK sender stopped; queued events will be counted as dropped")
        finally:
            await producer.stop()
