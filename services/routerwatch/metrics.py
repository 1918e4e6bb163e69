"""Every Prometheus metric routerwatch exports, declared once, with help text.

Names carry the ``routerwatch_`` prefix and base units (seconds, bytes).
Label values come from closed sets (topic, table, reason), so cardinality is
bounded by construction.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGEST_CONSUMED = Counter(
    "routerwatch_ingest_messages_consumed_total",
    "Kafka messages read by the ingest service.",
    ["topic"],
)
INGEST_STORED = Counter(
    "routerwatch_ingest_rows_stored_total",
    "Events written to ClickHouse, by table (attempts counts attempt rows).",
    ["table"],
)
INGEST_DUPLICATES = Counter(
    "routerwatch_ingest_duplicates_total",
    "Events skipped because their event_id was already stored (redelivery, replay, re-emission).",
    ["table"],
)
INGEST_DEAD_LETTERED = Counter(
    "routerwatch_ingest_dead_lettered_total",
    "Messages sent to the dead-letter topic, by source topic and reason.",
    ["topic", "reason"],
)
INGEST_STORE_RETRIES = Counter(
    "routerwatch_ingest_store_retries_total",
    "ClickHouse writes that failed and were retried after a back-off.",
    ["table"],
)
INGEST_DLQ_RETRIES = Counter(
    "routerwatch_ingest_dlq_retries_total",
    "Dead-letter sends that failed and were retried after a back-off.",
)
INGEST_BATCH_SIZE = Histogram(
    "routerwatch_ingest_batch_messages",
    "Messages per ingest batch.",
    ["topic"],
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000),
)
INGEST_STORE_SECONDS = Histogram(
    "routerwatch_ingest_store_duration_seconds",
    "Time to store one batch in ClickHouse, dedup check included.",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INGEST_PAUSED = Gauge(
    "routerwatch_ingest_paused",
    "1 while ingestion is paused because ClickHouse or the dead-letter topic is unavailable.",
)
INGEST_LAST_STORED = Gauge(
    "routerwatch_ingest_last_stored_timestamp_seconds",
    "Unix time of the last successful ClickHouse insert.",
)
