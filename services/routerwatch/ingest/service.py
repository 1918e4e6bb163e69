"""``routerwatch serve``: the long-running process: ingest, the drift scheduler and the canary prober."""

from __future__ import annotations

import asyncio
import logging

import faust

from routerwatch.config import Settings
from routerwatch.ingest import observe
from routerwatch.ingest.app import build_app
from routerwatch.ingest.topics import ensure_topics
from routerwatch.kafka_client import quiet_coordinator_retries
from routerwatch.storage import migrations
from routerwatch.storage.client import Store
from routerwatch.storage.errors import MigrationError

log = logging.getLogger("routerwatch.serve")


def check_schema(store: Store, sql_dir) -> None:
    """Refuse to ingest into a store whose migrations are not all applied."""
    done = migrations.applied(store)
    pending = [m for m in migrations.load(sql_dir) if m.version not in done]
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise MigrationError(f"store {store.target.describe()} has pending migrations ({names}): run `routerwatch migrate`")


def serve(settings: Settings, sql_dir) -> None:
    """Run until SIGINT/SIGTERM. Opens the store, checks its schema, creates topics, starts faust."""
    store = Store(settings.store_dsn(), settings.database, settings.query).start()
    try:
        check_schema(store, sql_dir)
        asyncio.run(ensure_topics(settings))
        observe.configure(settings.metrics.max_categories)
        scheduler = None
        if settings.scheduler.enabled:
            from routerwatch.scheduler.service import DriftScheduler

            scheduler = DriftScheduler(settings, store)
        prober = None
        if settings.canary.files:
            from routerwatch.canary.prober import CanaryProber

            prober = CanaryProber(settings, store)  # loads and validates the canary sets: fail fast
        app, _ = build_app(settings, store, scheduler, prober)
        log.info(
            "routerwatch serve: Kafka %s (%s) -> %s database %s; http://%s:%d/metrics",
            settings.kafka_bootstrap,
            settings.kafka_security.describe(),
            store.target.describe(),
            settings.database,
            settings.http.host,
            settings.http.port,
        )
        quiet_coordinator_retries()  # a normal start logs no ERROR (the coordinator is elected while we wait)
        worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
        worker.execute_from_commandline()
    finally:
        store.stop()
