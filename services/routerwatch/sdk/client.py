"""The router-side emitter: one RoutingDecision event per request, to Kafka.

Contract with the router:

* Recording never blocks and never raises into the request path (strict mode
  aside). Finished decisions go into a bounded in-memory queue; a sender thread
  with its own event loop builds and serialises the events there, fills one
  record batch per partition and hands the batches to an aiokafka producer
  (linger, compression, bounded in-flight events).
* The queue is bounded (``max_queue`` covers queued plus unacknowledged
  events) and drops only when full (``dropped_queue_full``). An event whose
  send failed for a transient reason (broker down or slow, no leader, request
  timed out) is not dropped: it goes back to the head of the queue and is sent
  again, with exponential back-off (0.1 s doubling to 5 s) while the broker
  does not answer. Only what can never be delivered is dropped: an event that
  cannot be serialised (``unserialisable``), is larger than the broker accepts
  (``too_large``) or that the broker refuses for good (``rejected``, e.g. not
  authorised). Every drop is counted in :meth:`RouterWatch.stats` and logged
  (at most one log line per ``drop_log_interval_s``).
* :meth:`RouterWatch.close` flushes what is held, still retrying, waiting at
  most ``close_timeout_s``; whatever is then neither acknowledged nor dropped
  for a reason above is counted as ``dropped_closed``.

The same client serves sync and async routers: ``with rw.decision(...)`` and
``async with rw.decision(...)`` both only append to the queue.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import ssl
import threading
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_core import to_json

try:  # A third of pydantic_core.to_json's cost per event; to_json remains the fallback for what orjson refuses.
    from orjson import dumps as _fast_dumps
except ImportError:  # pragma: no cover - orjson is a dependency, but the SDK must not break without it
    _fast_dumps = to_json

from routerwatch.sdk.partition import choose_partition
from routerwatch.sdk.recorder import DecisionRecorder, iso_ms, new_id

log = logging.getLogger("routerwatch.sdk")

DECISIONS_TOPIC = "routerwatch.decisions.v1"
FEEDBACK_TOPIC = "routerwatch.feedback.v1"
CANARY_TOPIC = "routerwatch.canary.v1"
# Largest record batch the producer builds (uncompressed): 1 MiB, Kafka's default message.max.bytes.
MAX_BATCH_BYTES = 1 << 20
_NO_HEADERS: list[tuple[str, bytes]] = []  # the record batch builder wants a list; never mutated
# Back-off between send attempts while the broker does not answer: doubles per failed attempt.
RETRY_BACKOFF_FIRST_S = 0.1
RETRY_BACKOFF_MAX_S = 5.0
# How often a waiting sender looks again (close(), a late acknowledgement, the back-off's end).
_POLL_S = 0.02

Record = tuple[str, "bytes | None", Any]  # (topic, key, payload): a queue entry


class _Alone:
    """A serialised event to be sent in a record batch of its own.

    The broker refused a whole batch as too large; each of its events gets a
    batch to itself, so that only an event too large on its own is dropped.
    """

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value


def _permanent_reason(exc: BaseException) -> str | None:
    """The drop reason for a send that can never succeed, or ``None`` when it is worth retrying.

    Only a broker's explicit, non-retriable answer about the records is permanent; a
    connection error, a timeout (ours or the producer's) or a missing leader is not.
    """
    from aiokafka import errors

    if isinstance(exc, (errors.MessageSizeTooLargeError, errors.RecordListTooLargeError)):
        return "too_large"
    if isinstance(exc, errors.BrokerResponseError) and not exc.retriable:
        return "rejected"
    return None


class SdkConfig(BaseModel):
    """Settings of the emitter. Defaults suit a production router."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    # Connection security, named as in aiokafka. SASL_SSL with SCRAM: security_protocol="SASL_SSL",
    # sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=..., sasl_plain_password=..., ssl_cafile=...
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_plain_username: str | None = Field(default=None, description="SASL user (PLAIN and SCRAM alike).")
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = Field(default=None, description="PEM CA bundle for the broker's certificate; default: the system's.")
    ssl_certfile: str | None = Field(default=None, description="PEM client certificate (mutual TLS).")
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    ssl_context: ssl.SSLContext | None = Field(
        default=None, description="A ready TLS context; replaces the ssl_* file options.", exclude=True
    )
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
    request_timeout_ms: int = Field(
        default=15_000,
        ge=1000,
        description="How long the producer retries a batch before the SDK takes it back into its queue to retry later.",
    )
    close_timeout_s: float = Field(default=5.0, ge=0)
    strict: bool = Field(default=False, description="Development mode: validate at the call site and raise.")
    drop_log_interval_s: float = 10.0

    def kafka_security(self) -> dict[str, Any]:
        """aiokafka's security keyword arguments for these settings (``{}`` for PLAINTEXT).

        Raises ``ValueError`` for an incomplete combination (SASL without user or password).
        """
        from routerwatch.kafka_client import security_kwargs

        return security_kwargs(
            self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            username=self.sasl_plain_username,
            password=self.sasl_plain_password.get_secret_value() if self.sasl_plain_password else None,
            ca_file=self.ssl_cafile,
            cert_file=self.ssl_certfile,
            key_file=self.ssl_keyfile,
            key_password=self.ssl_password.get_secret_value() if self.ssl_password else None,
            check_hostname=self.ssl_check_hostname,
            ssl_context=self.ssl_context,
        )

    @model_validator(mode="after")
    def _security_complete(self) -> SdkConfig:
        if self.security_protocol.startswith("SASL_"):
            missing = [
                name
                for name in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"security_protocol={self.security_protocol} needs {', '.join(missing)}")
        return self


class RouterWatch:
    """The SDK client. Create one per process; share it across requests and threads.

    ``start()`` is optional (the first event starts the sender); ``close()`` is
    safe without ``start()`` and safe twice. Use as a context manager to get
    both.
    """

    def __init__(self, config: SdkConfig | None = None, **settings: Any) -> None:
        self.config = config or SdkConfig(**settings)
        # Built here, so unreadable TLS files or an incomplete SASL setup fail the constructor.
        self._kafka_security = self.config.kafka_security()
        self._queue: collections.deque[tuple[str, bytes | None, Any]] = collections.deque()
        # Guards the counters, and every move of events between the queue, the sender and the
        # counters, so that close() can settle the books in one step. Re-entrant: drops are
        # counted from inside other locked sections. The router's enqueue never takes it.
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._closed = False
        self._sealed = False  # set by close(): from then on the counters never change
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
        """Flush held events and stop, waiting at most ``timeout`` seconds (default ``close_timeout_s``).

        Until then the sender keeps sending, retrying with back-off. Events still
        held after that (queued, or sent and not acknowledged) are counted as
        ``dropped_closed``, and the returned :meth:`stats` are final: every
        enqueued event is counted as ``sent`` or under one ``dropped_<reason>``.
        A batch the broker was still writing when close() gave up may yet reach
        the topic although counted as dropped. Safe without :meth:`start` and
        safe twice.
        """
        with self._lock:
            if self._closed:
                return self.stats()
            self._closed = True
            thread = self._thread
        self._stopping.set()
        if thread is not None:
            thread.join(self.config.close_timeout_s if timeout is None else timeout)
        self._seal()
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
            "occurred_at": iso_ms(time.time() if occurred_at is None else occurred_at),
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
            "occurred_at": iso_ms(time.time()),
            **{k: v for k, v in result.items() if v is not None},
        }
        if self.config.strict:
            self._validate("CanaryResult", event)
        self._enqueue(self.config.canary_topic, str(event["canary_id"]).encode(), event)

    def emit_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Send pre-serialised bytes as they are (tools and tests: replays, invalid input)."""
        self._enqueue(topic, key, value)

    def stats(self) -> dict[str, int]:
        """Counters and gauges, as a new dict.

        Counters: ``enqueued`` (accepted into the queue), ``sent`` (acknowledged by
        the broker), ``retried`` (sends that failed for a transient reason and were
        put back in the queue; an event counts once per failed attempt),
        ``dropped_<reason>``, present once non-zero:

        * ``queue_full``: refused at record time, the queue held ``max_queue`` events;
        * ``closed``: recorded after :meth:`close`, or still held when it gave up;
        * ``unserialisable``: the event cannot be written as JSON;
        * ``too_large``: larger than one record batch, or than the broker accepts;
        * ``rejected``: the broker refused it for good (e.g. topic not authorised);

        and ``dropped`` (their total). Gauges: ``queued`` (waiting for the sender,
        retries included) and ``in_flight`` (taken by the sender, not yet
        acknowledged). At any moment ``enqueued == sent + queued + in_flight +
        dropped - dropped_queue_full - (dropped_closed of events recorded after close)``.
        """
        with self._lock:
            counts = dict(self._counts)
            counts["queued"] = len(self._queue)
            counts["in_flight"] = self._in_flight
        counts["dropped"] = sum(v for k, v in counts.items() if k.startswith("dropped_"))
        for key in ("enqueued", "sent", "retried"):
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

    def _take(self, limit: int) -> list[Record]:
        """Sender side: move up to ``limit`` events from the queue to ``in_flight``."""
        queue = self._queue
        with self._lock:
            if self._sealed:
                return []
            taken = [queue.popleft() for _ in range(min(limit, len(queue)))]
            self._in_flight += len(taken)
        return taken

    def _requeue(self, records: list[Record]) -> None:
        """Sender side: put events taken earlier back at the head of the queue, in their order."""
        with self._lock:
            if self._sealed:
                return
            self._queue.extendleft(reversed(records))
            self._in_flight -= len(records)
            self._counts["retried"] += len(records)

    def _settle_sent(self, n: int) -> None:
        with self._lock:
            if not self._sealed:
                self._in_flight -= n
                self._counts["sent"] += n

    def _seal(self) -> None:
        """Count everything still held as dropped at close; the counters are final afterwards."""
        with self._lock:
            if self._sealed:
                return
            leftover = len(self._queue) + self._in_flight
            self._queue.clear()
            self._in_flight = 0
            if leftover:
                self._count_drop("closed", leftover, force_log=True)
            self._sealed = True

    def _count_drop(self, reason: str, n: int, force_log: bool = False, *, held: bool = False) -> None:
        """Count ``n`` dropped events; ``held``: the sender had taken them (they leave ``in_flight``)."""
        with self._lock:
            if held:
                if self._sealed:
                    return  # close() has counted them already
                self._in_flight -= n
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

    A batch whose delivery fails for a transient reason (the producer has
    already retried it for ``request_timeout_ms``) is not dropped: its events
    go back to the head of the queue, already serialised, so a re-sent event
    keeps its ``event_id`` and ingest's idempotent storage absorbs a duplicate.
    After such a failure the sender takes nothing new until every batch out
    has answered and the back-off has passed; then it sends one cycle as a
    probe, and only an acknowledgement brings it back to full rate. Each probe
    that fails doubles the back-off (``RETRY_BACKOFF_FIRST_S`` up to
    ``RETRY_BACKOFF_MAX_S``).
    """

    def __init__(self, client: RouterWatch) -> None:
        self.client = client
        self.cfg = client.config
        self.pending: set[asyncio.Future[Any]] = set()  # one delivery future per record batch
        self.held = 0  # events in those batches
        self.last_connect_log = float("-inf")
        self.last_retry_log = float("-inf")
        # Batches that failed transiently, as (sequence number, records): put back in the
        # queue together and in sending order, so a retry keeps the events' order.
        self.failed: list[tuple[int, list[Record]]] = []
        self.seq = 0  # numbers the batches in sending order
        # Bumped when a send made since the last bump fails: many batches failing for one
        # outage make one back-off step, not one each.
        self.round = 0
        self.backoff = RETRY_BACKOFF_FIRST_S
        self.retry_at = float("-inf")  # monotonic time before which nothing is sent again
        self.outage = False  # a send failed and the broker has acknowledged nothing since

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
                **self.client._kafka_security,
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
                    reason = await self._refused(exc)
                    if reason is not None:
                        # Held events wait for corrected credentials (or the broker's); nothing is dropped.
                        log.error("routerwatch SDK: %s; retrying", reason)
                    else:
                        log.warning("routerwatch SDK cannot reach Kafka at %s (%s); retrying", self.cfg.bootstrap_servers, exc)
                # Sleep in short steps so close() is not held up by a long back-off.
                waited = 0.0
                while waited < backoff and not self.client._stopping.is_set():
                    await asyncio.sleep(0.05)
                    waited += 0.05
                backoff = min(backoff * 2, 5.0)

    async def _refused(self, exc: BaseException) -> str | None:
        """The broker's refusal of our credentials or TLS setup behind a failed start, if that is the cause."""
        if not self.client._kafka_security:
            return None
        from aiokafka.errors import KafkaConnectionError

        from routerwatch.kafka_client import explain_failure

        if not isinstance(exc, KafkaConnectionError):
            return None
        try:
            return await explain_failure(self.cfg.bootstrap_servers, self.client._kafka_security, settings_hint=False)
        except Exception:  # noqa: BLE001 - the diagnosis is best effort
            return None

    # -- delivery results ------------------------------------------------------------

    def _delivered(self, records: list[Record], seq: int, round_: int, fut: asyncio.Future[Any]) -> None:
        self.pending.discard(fut)
        self.held -= len(records)
        exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
        if exc is None:
            self.client._settle_sent(len(records))
            self._answered()
        else:
            self._failed(records, exc, seq, round_)

    def _answered(self) -> None:
        """The broker acknowledged a batch: retry what failed at once and send at full rate."""
        if self.outage or self.failed:
            self.outage = False
            self.retry_at = float("-inf")
        self.backoff = RETRY_BACKOFF_FIRST_S

    def _failed(self, records: list[Record], exc: BaseException, seq: int, round_: int) -> None:
        """A batch (or events without topic metadata) could not be delivered: keep it or drop it."""
        reason = _permanent_reason(exc)
        if reason is None:
            self.failed.append((seq, records))
            self.outage = True
            if round_ == self.round:
                self.round += 1
                now = time.monotonic()
                self.retry_at = now + self.backoff
                if now - self.last_retry_log >= self.cfg.drop_log_interval_s:
                    self.last_retry_log = now
                    stats = self.client.stats()
                    log.warning(
                        "routerwatch SDK: Kafka at %s did not take %d event(s) (%r); holding %d, retrying in %.1f s",
                        self.cfg.bootstrap_servers,
                        len(records),
                        exc,
                        stats["queued"] + stats["in_flight"],
                        self.backoff,
                    )
                self.backoff = min(self.backoff * 2, RETRY_BACKOFF_MAX_S)
            return
        if reason == "too_large" and len(records) > 1:
            # The broker refused the batch, not necessarily each event in it: one batch per event,
            # so that only an event too large on its own is dropped.
            self.client._requeue([(t, k, v if isinstance(v, _Alone) else _Alone(v)) for t, k, v in records])
            return
        self._lost(reason, len(records), exc)

    def _lost(self, reason: str, count: int, exc: BaseException) -> None:
        """Events taken off the queue that can never be delivered."""
        log.debug("routerwatch SDK: %d event(s) %s: %r", count, reason, exc)
        self.client._count_drop(reason, count, held=True)

    def _requeue_failed(self) -> None:
        self.failed.sort(key=lambda batch: batch[0])
        records = [record for _, batch in self.failed for record in batch]
        self.failed.clear()
        self.client._requeue(records)

    # -- sending -----------------------------------------------------------------------

    async def _submit(self, producer: Any, topic: str, partition: int, builder: Any, records: list[Record]) -> None:
        while self.held >= self.cfg.max_in_flight and self.pending:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
        builder.close()  # a closed batch is sent at once: it already lingered in our queue
        self.seq += 1
        seq, round_ = self.seq, self.round
        try:
            fut = await producer.send_batch(builder, topic, partition=partition)
        except Exception as exc:  # noqa: BLE001 - e.g. no room in the producer within request_timeout_ms
            self._failed(records, exc, seq, round_)
            return
        self.held += len(records)
        self.pending.add(fut)
        fut.add_done_callback(functools.partial(self._delivered, records, seq, round_))

    async def _partitions(self, producer: Any, topic: str) -> tuple[list[int], list[int]] | BaseException:
        try:
            partitions = sorted(await producer.partitions_for(topic))
        except Exception as exc:  # noqa: BLE001 - no metadata for the topic (yet): the caller decides
            log.debug("routerwatch SDK: no partitions for %s: %r", topic, exc)
            return exc
        available = list(producer.client.cluster.available_partitions_for_topic(topic) or ())
        return partitions, available

    async def _drain(self, producer: Any) -> int:
        """Take up to ``max_batch`` events off the queue and hand them to the producer; returns how many.

        Events taken stay counted as ``in_flight`` until acknowledged, dropped or
        put back, so the queue's bound never has a gap and close() can count them.
        """
        items = self.client._take(self.cfg.max_batch)
        builders: dict[tuple[str, int], list[Any]] = {}  # (topic, partition) -> [builder, records in it]
        topics: dict[str, tuple[list[int], list[int]] | BaseException] = {}
        no_metadata: list[Record] = []
        no_metadata_exc: BaseException | None = None
        dumps = _fast_dumps
        for topic, key, payload in items:
            alone = False
            try:
                if isinstance(payload, DecisionRecorder):
                    event = payload.to_event()
                    if key is None:
                        key = payload.request_id.encode()
                elif isinstance(payload, dict):
                    event = payload
                else:
                    event = None
                    if isinstance(payload, _Alone):
                        alone = True
                        value = payload.value
                    else:
                        value = payload
                if event is not None:
                    try:
                        value = dumps(event)
                    except TypeError:  # e.g. a set or a huge int in a router-given dict
                        value = to_json(event)
            except Exception as exc:  # noqa: BLE001 - a value JSON cannot hold: drop this one, go on
                self._lost("unserialisable", 1, exc)
                continue
            meta = topics.get(topic)
            if meta is None:
                meta = topics[topic] = await self._partitions(producer, topic)
            if isinstance(meta, BaseException):
                no_metadata.append((topic, key, value))
                no_metadata_exc = meta
                continue
            partitions, available = meta
            partition = partitions[0] if len(partitions) == 1 else choose_partition(key, partitions, available)
            # Kept serialised: a retry sends the very same bytes (same event_id, same request_id).
            record = (topic, key, payload if alone else value)
            if alone:
                builder = producer.create_batch()
                if builder.append(timestamp=None, key=key, value=value, headers=_NO_HEADERS) is None:
                    self._lost("too_large", 1, ValueError(f"{len(value)} bytes"))
                else:
                    await self._submit(producer, topic, partition, builder, [record])
                continue
            slot = builders.get((topic, partition))
            if slot is None:
                slot = builders[(topic, partition)] = [producer.create_batch(), []]
            if slot[0].append(timestamp=None, key=key, value=value, headers=_NO_HEADERS) is None:
                if slot[1]:
                    await self._submit(producer, topic, partition, slot[0], slot[1])
                    slot[0], slot[1] = producer.create_batch(), []
                if slot[0].append(timestamp=None, key=key, value=value, headers=_NO_HEADERS) is None:
                    self._lost("too_large", 1, ValueError(f"{len(value)} bytes"))
                    continue
            slot[1].append(record)
        for (topic, partition), (builder, records) in builders.items():
            if records:
                await self._submit(producer, topic, partition, builder, records)
        if no_metadata and no_metadata_exc is not None:
            # Broker unreachable or the topic not there yet: kept and retried like a failed batch
            # (a topic the broker refuses for good is dropped as rejected).
            self.seq += 1
            self._failed(no_metadata, no_metadata_exc, self.seq, self.round)
        # Should this raise (the loop is torn down), events taken but not handed over stay
        # counted as in flight: close() counts them as dropped_closed.
        return len(items)

    async def run(self) -> None:
        producer = await self._connect()
        if producer is None:
            return
        client = self.client
        queue = client._queue
        linger = max(self.cfg.linger_ms, 1) / 1000.0
        try:
            while not client._sealed:
                stopping = client._stopping.is_set()
                now = time.monotonic()
                if self.failed and now >= self.retry_at and not (self.outage and self.pending):
                    self._requeue_failed()
                if self.outage and (self.pending or self.failed or now < self.retry_at):
                    # No acknowledgement since a send failed: wait for every batch out to answer
                    # (the producer retries each until request_timeout_ms) and for the back-off.
                    await asyncio.sleep(_POLL_S)
                    continue
                if queue:
                    # During an outage this one cycle is the probe; the check above then waits for it.
                    if await self._drain(producer) >= self.cfg.max_batch and not self.outage:
                        continue  # a full cycle: more is likely waiting, no need to linger
                elif stopping and not self.pending and not self.failed:
                    break  # flushed: everything acknowledged or dropped for a reason
                # Linger: lets a batch fill up, and polling keeps the router's enqueue free of
                # cross-thread wake-ups.
                await asyncio.sleep(linger)
        except Exception:  # the sender must never crash the router
            log.exception("routerwatch SDK sender stopped; held events will be counted as dropped at close")
        finally:
            await producer.stop()
