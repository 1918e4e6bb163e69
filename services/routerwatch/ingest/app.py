"""The faust-streaming application of ``routerwatch serve``.

Ingest is one :class:`~routerwatch.ingest.consumer.IngestConsumer` task in the
faust app: an aiokafka consumer of the three input topics (decisions,
feedback, canary results) that takes records with ``getmany`` in size- and
time-bound batches and commits a batch's offsets only after each
:class:`BatchProcessor` has stored or dead-lettered all of its messages, so no
offset is committed for a row ClickHouse does not have. A crash or ``kill -9``
at any point means redelivery, which the sink turns into no-ops by event_id.
(faust's own stream machinery costs more per event than validating and
storing it; the app keeps faust for its web server, timers, tasks and worker.)

The same web server (faust's) serves ``/metrics`` (Prometheus), ``/health`` and
``/query`` (read-only SQL, which lets ``routerwatch sql`` work while this
process holds the embedded chDB store).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import shutil
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import faust
from faust.app.base import BootStrategy
from prometheus_client import generate_latest

from routerwatch import metrics
from routerwatch.config import Settings
from routerwatch.ingest.consumer import IngestConsumer
from routerwatch.ingest.dlq_producer import DeadLetterProducer
from routerwatch.ingest.processor import BatchProcessor
from routerwatch.ingest.webguard import serve_guard
from routerwatch.ingest.sink import ClickHouseSink
from routerwatch.kafka_client import faust_credentials
from routerwatch.storage.client import Store
from routerwatch.storage.errors import QueryError, StoreUnavailable

log = logging.getLogger("routerwatch.ingest")

# /health turns 503 when Kafka has not answered the lag measurement (every 15 s) for this long.
KAFKA_LIMIT_S = 30.0
LAG_TIMEOUT_S = 20.0


def broker_urls(bootstrap: str) -> list[str]:
    """``host1:9092,host2:9092`` -> faust's ``kafka://`` URL list."""
    return [f"kafka://{part.strip()}" for part in bootstrap.split(",") if part.strip()]


def to_jsonable(value: Any) -> Any:
    """Values ClickHouse returns, made JSON-safe for the /query endpoint."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


class _ServeBootStrategy(BootStrategy):
    # Ingest has its own consumer (IngestConsumer): faust's consumer, conductor and tables
    # would have no topic to read. Producer (dead letters), web server, timers and tasks stay.
    enable_kafka_consumer = False


class _ServeApp(faust.App):
    BootStrategy = _ServeBootStrategy


def build_app(
    settings: Settings, store: Store, scheduler: Any = None, prober: Any = None
) -> tuple[faust.App, dict[str, BatchProcessor]]:
    """Create the faust app and its agents, bound to ``store``. Nothing connects until the worker starts.

    ``scheduler`` (a :class:`routerwatch.scheduler.service.DriftScheduler`) is started on the
    worker's event loop and stopped with it; its state is served at ``/alerts``. ``prober`` (a
    :class:`routerwatch.canary.prober.CanaryProber`) likewise; it fires only while it holds the lease.
    """
    ingest = settings.ingest
    topics = settings.topics
    # Every endpoint but /health and /metrics: CSRF checks and the bearer token (ingest/webguard.py).
    guard = serve_guard(settings.http)
    # faust keeps table state in its data dir, by default "<app id>-data" in the working
    # directory. serve has no tables (store memory://), so the directory stays empty: it is a
    # temporary one, removed at exit, instead of litter wherever serve was started.
    datadir = tempfile.mkdtemp(prefix=f"routerwatch-{ingest.app_id}-")
    atexit.register(shutil.rmtree, datadir, True)
    app = _ServeApp(
        # Not the ingest group's id: should faust ever consume, it must not join (and
        # rebalance) the group IngestConsumer commits for.
        f"{ingest.app_id}-serve",
        broker=broker_urls(settings.kafka_bootstrap),
        # TLS / SASL of the dead-letter producer: the same settings as every other client.
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=datadir,
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=topics.partitions,
        topic_disable_leader=True,
        broker_session_timeout=ingest.session_timeout_s,
        broker_heartbeat_interval=min(3.0, ingest.session_timeout_s / 3),
        web_enabled=True,
        web_bind=settings.http.host,
        web_host=settings.http.host,
        web_port=settings.http.port,
        web_in_thread=False,
        web_application_options={"middlewares": [guard.middleware]},
        producer_compression_type="lz4",
    )
    # Dead letters go out in record batches through a producer of their own (dlq_producer.py).
    send_dead_letter = DeadLetterProducer(settings, topics.dlq)

    sink = ClickHouseSink(store, settings.price_table(), timedelta(seconds=ingest.reemission_window_s))
    processors: dict[str, BatchProcessor] = {}
    by_topic: dict[str, BatchProcessor] = {}
    for kind, topic_name in (("decision", topics.decisions), ("feedback", topics.feedback), ("canary", topics.canary)):
        processor = BatchProcessor(
            kind,
            sink,
            send_dead_letter,
            retry_initial_s=ingest.retry_initial_s,
            retry_max_s=ingest.retry_max_s,
            redact=ingest.dlq_redact,
        )
        processors[kind] = processor
        by_topic[topic_name] = processor
    consumer = IngestConsumer(settings, by_topic)
    metrics.INGEST_STALLED_SECONDS.set_function(consumer.stalled_seconds)
    kafka = KafkaStatus()

    @app.task
    async def run_ingest() -> None:
        # Supervised: should the consumer fail (a bug, an error nobody foresaw), it starts again
        # from the committed offsets after a pause, instead of taking serve down with it; /health
        # and routerwatch_ingest_stalled_seconds say so meanwhile.
        delay = ingest.retry_initial_s
        while True:
            try:
                await send_dead_letter.start()
                await consumer.run()
                return
            except asyncio.CancelledError:
                await send_dead_letter.stop()
                raise
            except Exception:  # logged, counted, restarted
                log.exception("ingest consumer failed; starting it again in %.1fs from the committed offsets", delay)
                metrics.INGEST_RESTARTS.inc()
            await asyncio.sleep(delay)
            delay = min(delay * 2, ingest.retry_max_s)

    @app.timer(interval=15.0)
    async def export_consumer_lag() -> None:
        # Lag is the pipeline's first health signal: a growing backlog means ingest is paused or too slow.
        from routerwatch.ingest.lag import consumer_lag

        try:
            lag = await asyncio.wait_for(consumer_lag(settings), LAG_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a failed measurement must not stop ingest
            log.warning("could not measure consumer lag: %s", exc)
            kafka.failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return
        kafka.answered()
        consumer.note_lag(sum(lag.values()))
        for topic, messages in lag.items():
            metrics.INGEST_CONSUMER_LAG.labels(topic).set(messages)

    if scheduler is not None:

        @app.task
        async def run_scheduler() -> None:
            scheduler.start(asyncio.get_running_loop())
            try:
                await asyncio.Event().wait()  # lives as long as the worker
            finally:
                scheduler.stop()

        @app.page("/alerts")
        async def alerts_view(web: Any, request: Any) -> Any:
            return web.json(scheduler.status())

        @app.page("/baselines/learn")
        class LearnView(faust.web.View):
            """POST ?hours=H[&until=ISO]: learn new baseline versions from the H hours before ``until`` (a past
            or the current minute, default now); returns counts per signal."""

            async def post(self, request: Any) -> Any:
                from routerwatch.scheduler.service import floor_minute

                try:
                    hours = float(request.query.get("hours", 24))
                    given = request.query.get("until")
                    until = floor_minute(datetime.fromisoformat(given) if given else datetime.now().astimezone())
                except ValueError as exc:
                    return self.json({"error": f"bad hours/until: {exc}"}, status=400)
                if until > floor_minute(datetime.now().astimezone()):
                    # A baseline from minutes yet to come would be learned from whatever arrives late.
                    return self.json({"error": f"until={given!r} is in the future"}, status=400)

                # Under the scheduler's lock: a tick must not replace these with baselines of its own.
                return self.json(await asyncio.to_thread(scheduler.learn_baselines, until - timedelta(hours=hours), until))

        @app.page("/alerts/evaluate")
        class EvaluateView(faust.web.View):
            """POST [?now=ISO]: run the detectors now, or as of a past minute, and return the status.

            A past ``now`` (before the current minute) is a dry run: it reports what the detectors
            say at that time and changes nothing live (no Alertmanager sync, no baseline saved):
            replaying history must not resolve or raise real pages.
            """

            async def post(self, request: Any) -> Any:
                from routerwatch.scheduler.service import floor_minute

                given = request.query.get("now")
                try:
                    now = datetime.fromisoformat(given.replace("Z", "+00:00")) if given else datetime.now().astimezone()
                except ValueError:
                    return self.json({"error": f"now={given!r} is not an ISO time with a zone"}, status=400)
                if now.tzinfo is None:
                    return self.json({"error": f"now={given!r} needs a zone (e.g. Z)"}, status=400)
                minute, current = floor_minute(now), floor_minute(datetime.now().astimezone())
                if minute > current:
                    return self.json({"error": f"now={given!r} is in the future"}, status=400)
                if minute < current:
                    evaluation = await asyncio.to_thread(scheduler.run_once, minute, dry_run=True)
                    return self.json({**scheduler.status(evaluation), "dry_run": True})
                await asyncio.to_thread(scheduler.run_once, minute)
                return self.json({**scheduler.status(), "dry_run": False})

    if settings.otlp.enabled:
        # OTLP traces -> one RoutingDecision per trace, produced to the decisions topic (routerwatch.otlp).
        from routerwatch.ingest.processor import Prepared
        from routerwatch.otlp.receiver import OtlpReceiver

        receiver = OtlpReceiver(settings, lambda letters: processors["decision"].store(Prepared([], letters)))

        @app.task
        async def run_otlp() -> None:
            await receiver.start()
            try:
                await asyncio.Event().wait()  # lives as long as the worker
            finally:
                await receiver.stop()  # open traces are flushed: sent as decisions or dead letters

    if prober is not None:

        @app.task
        async def run_prober() -> None:
            await prober.start()
            try:
                await asyncio.Event().wait()  # lives as long as the worker
            finally:
                await prober.stop()

        @app.page("/canaries")
        async def canaries_view(web: Any, request: Any) -> Any:
            return web.json(
                {
                    "instance": prober.instance,
                    "lease_held": bool(prober.lease and prober.lease.held),
                    "fired": prober.fired,
                    "next_due": prober.next_due,
                    "last_probe": prober.last_fired,
                }
            )

    store.set_query_limits(settings.query)  # the limits of /query (ROUTERWATCH_QUERY__*)
    from routerwatch.console.routes import register as register_console

    register_console(app, store, scheduler, settings)  # the on-call console: / and /console/api/* (routerwatch.console)
    _add_web_views(app, store, processors, consumer, kafka, ingest.stall_limit_s)
    return app, processors


class KafkaStatus:
    """Whether the lag measurement (every 15 s) reaches Kafka, and since when it does not."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.failing_since: float | None = None

    def failed(self, error: str) -> None:
        self.error = error
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    def answered(self) -> None:
        self.error = self.failing_since = None

    def unreachable_for(self) -> float:
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since


def health(
    processors: dict[str, BatchProcessor], consumer: Any, kafka: KafkaStatus, stall_limit_s: float
) -> tuple[int, dict[str, str]]:
    """The /health status code and the problems behind it (an empty dict when ingest is healthy).

    Unhealthy (503) when a processor is retrying a store or dead-letter write, the consumer is not
    running, ingest has made no progress for ``stall_limit_s`` while messages wait, or Kafka has
    not answered the lag measurement for KAFKA_LIMIT_S.
    """
    errors: dict[str, str] = {kind: p.last_error for kind, p in processors.items() if p.last_error}
    if not consumer.running:
        errors["ingest"] = f"the ingest consumer is not running ({consumer.failure or 'not started yet'})"
    stalled = consumer.stalled_seconds()
    if stalled > stall_limit_s:
        errors["progress"] = f"no batch committed for {stalled:.0f}s while messages wait"
    if kafka.unreachable_for() > KAFKA_LIMIT_S:
        errors["kafka"] = f"Kafka unreachable for {kafka.unreachable_for():.0f}s: {kafka.error}"
    return (503 if errors else 200), errors


def _add_web_views(
    app: faust.App,
    store: Store,
    processors: dict[str, BatchProcessor],
    consumer: IngestConsumer,
    kafka: KafkaStatus,
    stall_limit: float,
) -> None:
    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        # aiohttp rejects a charset inside content_type, so the exposition type is spelled out.
        return web.bytes(generate_latest(), content_type="text/plain; version=0.0.4")

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        status, errors = health(processors, consumer, kafka, stall_limit)
        body = {
            "status": "degraded" if errors else "ok",
            "store": store.target.describe(),
            "database": store.database,
            "stalled_seconds": round(consumer.stalled_seconds(), 1),
            "errors": errors,
        }
        return web.json(body, status=status)

    @app.page("/query")
    class QueryView(faust.web.View):
        """POST {"sql": "...", "parameters": {...}}: run one statement that only reads; return columns and rows.

        The statement passes routerwatch.storage.sqlguard (refused: 400 with ``"refused": true``) and
        runs with readonly=1 and the ROUTERWATCH_QUERY__* limits (exceeded: 400 with ``"limit": true``).
        """

        async def post(self, request: Any) -> Any:
            from routerwatch.storage.errors import QueryLimitExceeded, UnsafeQuery

            try:
                payload = await request.json()
                sql = payload["sql"]
                parameters = payload.get("parameters") or None
                if not isinstance(sql, str) or not (parameters is None or isinstance(parameters, dict)):
                    raise TypeError("sql must be text and parameters an object")
            except Exception:  # noqa: BLE001 - any malformed body is the caller's error
                return self.json({"error": 'POST a JSON body {"sql": "...", "parameters": {...}}'}, status=400)
            try:
                result = await asyncio.to_thread(store.query, sql, parameters, readonly=True)
            except UnsafeQuery as exc:
                return self.json({"error": str(exc), "refused": True, "store": store.target.describe()}, status=400)
            except QueryLimitExceeded as exc:
                return self.json({"error": str(exc), "limit": True, "store": store.target.describe()}, status=400)
            except QueryError as exc:
                return self.json({"error": str(exc), "store": store.target.describe()}, status=400)
            except StoreUnavailable as exc:
                return self.json({"error": str(exc), "store": store.target.describe()}, status=503)
            body = {
                "store": store.target.describe(),
                "database": store.database,
                "columns": result.columns,
                "rows": [to_jsonable(list(row)) for row in result.rows],
            }
            return self.bytes(json.dumps(body).encode(), content_type="application/json")
