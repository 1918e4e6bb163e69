"""The router-side emitter: one RoutingDecision event per request, to Kafka.

Contract with the router:

* Recording never blocks and never raises into the request path (strict mode
  aside). Finished decisions go into a bounded in-memory queue; a sender thread
  with its own event loop batches them into an aiokafka producer (linger,
  compression, bounded in-flight sends).
* When the queue is full, or the broker stays unreachable, events are dropped,
  counted in :meth:`RouterWatch.stats` and logged (at most one log line per
  ``drop_log_interval_s``), never queued without bound.
* :meth:`RouterWatch.close` flushes what is queued, waiting at most
  ``close_timeout_s``; what could not be sent by then is counted as dropped.

The same client serves sync and async routers: ``with rw.decision(...)`` and
``async with rw.decision(...)`` both only append to the queue.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from routerwatch.sdk.recorder import DecisionRecorder, _iso_ms, new_id

log = logging.getLogger("routerwatch.sdk")

DECISIONS_TOPIC = "routerwatch.decisions.v1"
FEEDBACK_TOPIC = "routerwatch.feedback.v1"
CANARY_TOPIC = "routerwatch.canary.v1"


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
    compression: str | None = "lz4"
    max_in_flight: int = Field(default=20_000, ge=1, description="Sends awaiting broker acknowledgement.")
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
        cfg = self.config
        router: dict[str, Any] = {"id": cfg.router_id, "strategy": cfg.strategy}
        if cfg.router_version is not None:
            router["version"] = cfg.router_version
        if cfg.policy_version is not None:
            router["policy_version"] = cfg.policy_version
        fields: dict[str, Any] = {
            "event_id": event_id or new_id(),
            "schema_version": 1,
            "request_id": request_id or new_id(),
            "router": router,
            "environment": cfg.environment,
            "category": category,
            "shadow": shadow,
        }
        optional = {
            "tenant": tenant,
            "source": source,
            "canary_id": canary_id,
            "route": route,
            "quality": quality,
            "prompt": prompt,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
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
        """Counters: ``enqueued``, ``sent``, ``dropped_<reason>``, ``dropped`` (total), and the gauges
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
        self._enqueue(self.config.decisions_topic, decision.request_id.encode(), decision)

    def _validate(self, name: str, event: dict[str, Any]) -> None:
        # Imported lazily: production routers never pay for building the adapters.
        from routerwatch.events.validation import EVENT_TYPES, decode

        decode(EVENT_TYPES[name], to_json(event))

    def _enqueue(self, topic: str, key: bytes | None, payload: Any) -> None:
        if self._closed:
            self._count_drop("closed", 1)
            return
        # The bound covers everything the SDK holds: queued plus handed to the producer.
        if len(self._queue) + self._in_flight >= self.config.max_queue:
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
    """Drains the client's queue into an aiokafka producer on a private event loop."""

    def __init__(self, client: RouterWatch) -> None:
        self.client = client
        self.cfg = client.config
        self.in_flight: set[asyncio.Future[Any]] = set()
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
                max_batch_size=1 << 20,
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

    def _on_delivered(self, fut: asyncio.Future[Any]) -> None:
        self.in_flight.discard(fut)
        self.client._in_flight -= 1
        if fut.cancelled() or fut.exception() is not None:
            self.client._count_drop("delivery_failed", 1)
        else:
            self.client._counts["sent"] += 1

    async def _send_batch(self, producer: Any, batch: list[tuple[str, bytes | None, Any]]) -> None:
        for topic, key, payload in batch:
            if isinstance(payload, DecisionRecorder):
                value = to_json(payload.to_event())
            elif isinstance(payload, dict):
                value = to_json(payload)
            else:
                value = payload
            while len(self.in_flight) >= self.cfg.max_in_flight:
                await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)
            try:
                fut = await producer.send(topic, value=value, key=key)
            except Exception as exc:  # noqa: BLE001 - a send that cannot even be queued is a drop
                log.debug("send failed: %s", exc)
                self.client._in_flight -= 1
                self.client._count_drop("delivery_failed", 1)
                continue
            self.in_flight.add(fut)
            fut.add_done_callback(self._on_delivered)

    async def run(self) -> None:
        queue = self.client._queue
        producer = await self._connect()
        if producer is None:
            return
        try:
            while True:
                stopping = self.client._stopping.is_set()
                batch = []
                while queue and len(batch) < self.cfg.max_batch:
                    batch.append(queue.popleft())
                    # Counted as held the moment it leaves the queue, so the bound never has a gap.
                    self.client._in_flight += 1
                if batch:
                    await self._send_batch(producer, batch)
                    continue
                if stopping:
                    break
                # Polling keeps the router's enqueue free of cross-thread wake-ups.
                await asyncio.sleep(max(self.cfg.linger_ms, 1) / 1000.0)
            await producer.flush()
            if self.in_flight:
                await asyncio.wait(self.in_flight, timeout=self.cfg.close_timeout_s)
        except Exception:  # noqa: BLE001 - the sender must never crash the router
            log.exception("routerwatch SDK sender stopped; queued events will be counted as dropped")
        finally:
            await producer.stop()
