"""Every Prometheus metric routerwatch exports, declared once, with help text.

Names carry the ``routerwatch_`` prefix and base units (seconds, bytes; money
in USD), counters end in ``_total``. Label values come from closed sets
(topic, table, reason, outcome, failure_mode, escalation reason, path) or are
bounded per process: ``category`` goes through a :class:`LabelCap` in
:mod:`routerwatch.ingest.observe` (the first N distinct values pass, later new
ones become ``other``). ``tier`` is whatever the routers name their tiers: a
handful per router.

The per-tier metrics below the pipeline-health ones are fed by
:func:`routerwatch.ingest.observe.observe_decisions` with each RoutingDecision
the ingest path stores for the first time, so a redelivered or re-emitted
event is never counted twice. Canary probes are excluded from them (only
``routerwatch_canary_decisions_total`` counts probes); shadow attempts appear
only with ``outcome="shadow"`` in the attempt metrics.
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
INGEST_STALLED_SECONDS = Gauge(
    "routerwatch_ingest_stalled_seconds",
    "Seconds since ingest last committed a batch or was seen with nothing waiting: grows while "
    "messages wait and nothing is stored (store down, Kafka unreachable, ingest dead); near 0 otherwise.",
)
INGEST_RESTARTS = Counter(
    "routerwatch_ingest_restarts_total",
    "Times the ingest consumer failed and was started again from the committed offsets.",
)


# -- per-tier telemetry (docs/design-notes.md section 2 for the vocabulary) -----------------

# From a 50 ms cache or cheap-tier answer to a 2-minute flagship call with retries.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)

ATTEMPT_SECONDS = Histogram(
    "routerwatch_attempt_duration_seconds",
    "Latency of one attempt (model call plus its gate or verifier), by tier and outcome. "
    "outcome=accepted is the tier's terminal latency, escalated its passthrough latency; "
    "shadow attempts appear only as outcome=shadow. Canary probes are excluded.",
    ["tier", "outcome"],
    buckets=LATENCY_BUCKETS,
)
ATTEMPTS = Counter(
    "routerwatch_attempts_total",
    "Attempts by tier, request category and outcome (accepted, escalated, failed, shadow). "
    "Escalation rate of a tier = escalated / (accepted + escalated). Canary probes are excluded.",
    ["tier", "category", "outcome"],
)
ESCALATIONS = Counter(
    "routerwatch_escalations_total",
    "Escalated attempts (a gate rejected the answer and the request moved up), by tier, category "
    "and escalation reason. Canary probes are excluded.",
    ["tier", "category", "reason"],
)
FAILURES = Counter(
    "routerwatch_attempt_failures_total",
    "Failed attempts (the call errored; reliability, not an escalation), by tier and failure mode. "
    "Canary probes are excluded.",
    ["tier", "failure_mode"],
)
MODEL_COST = Counter(
    "routerwatch_model_cost_usd_total",
    "Model spend in USD of non-shadow attempts (failed ones included), by tier. Canary probes are excluded.",
    ["tier"],
)
VERIFIER_COST = Counter(
    "routerwatch_verifier_cost_usd_total",
    "Gate or verifier spend in USD of non-shadow attempts, by tier. Canary probes are excluded.",
    ["tier"],
)
REQUEST_SECONDS = Histogram(
    "routerwatch_request_duration_seconds",
    "End-to-end request latency by path: kept (served by its entry tier, no escalation), escalated "
    "(at least one escalation, whether or not an answer was served in the end), other (no "
    "escalation: not served, or moved up only by failures). "
    "Shadow attempts never count here; canary probes are excluded.",
    ["path"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "routerwatch_requests_total",
    "Requests by final tier (not_served when no answer was served): the routing mix. "
    "Canary probes are excluded.",
    ["final_tier"],
)
CANARY_DECISIONS = Counter(
    "routerwatch_canary_decisions_total",
    "Routing decisions of canary probes (canary_id set), kept out of every per-tier metric.",
)
LABEL_OVERFLOW = Counter(
    "routerwatch_metrics_label_overflow_total",
    "Routing decisions whose label value was reported as 'other' because the per-process cap on "
    "distinct values of that label was reached, by label name.",
    ["label"],
)
INGEST_DELAY_SECONDS = Histogram(
    "routerwatch_ingest_delay_seconds",
    "Freshness: time from a request's occurred_at to its decision being stored in ClickHouse.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
INGEST_CONSUMER_LAG = Gauge(
    "routerwatch_ingest_consumer_lag_messages",
    "Messages on an input topic not yet stored or dead-lettered (end offset minus committed offset).",
    ["topic"],
)
DETECTOR_STATISTIC = Gauge(
    "routerwatch_detector_statistic",
    "Current statistic of a drift detector (CUSUM S in nats, burn-rate multiple...) per series.",
    ["signal", "router", "tier", "subject", "direction"],
)
DETECTOR_THRESHOLD = Gauge(
    "routerwatch_detector_threshold",
    "Decision threshold of a drift detector per series (derived from the false-alarm budget).",
    ["signal", "router", "tier", "subject", "direction"],
)
ALERTS_FIRING = Gauge(
    "routerwatch_scheduler_alerts_firing",
    "Alerts the drift scheduler is currently sending to Alertmanager, by alertname.",
    ["alertname"],
)
DETECTOR_LAST_RUN = Gauge(
    "routerwatch_detector_last_run_timestamp_seconds",
    "Unix time (whole minute) of the last completed drift-detector run.",
)
CANARY_PROBES = Counter(
    "routerwatch_canary_probes_total",
    "Canary probes fired by this process, by router, canary and result (passed, failed_check, "
    "tier_flip, no_answer; a probe that flipped and failed counts as tier_flip).",
    ["router", "canary", "result"],
)
CANARY_LEASE_HELD = Gauge(
    "routerwatch_canary_lease_held",
    "1 while this process holds the canary prober lease (only the holder fires probes).",
)
CANARY_LAST_PROBE = Gauge(
    "routerwatch_canary_last_probe_timestamp_seconds",
    "Unix time of the last probe this process fired, by router and canary.",
    ["router", "canary"],
)
DETECTOR_SERIES_ERRORS = Counter(
    "routerwatch_detector_series_errors_total",
    "Series a drift detector failed on during a run (logged with the series key and listed in the "
    "scheduler status); the run judged every other series.",
    ["signal"],
)
DETECTOR_HISTORY_WRITE_ERRORS = Counter(
    "routerwatch_detector_history_write_errors_total",
    "Failed writes (and reads) of the live scheduler's history in ClickHouse, by table (alert_events, "
    "detector_statistics); logged, and the run went on: its alerts were still sent.",
    ["table"],
)

# -- the OTLP traces receiver (routerwatch.otlp) ----------------------------------------------

OTLP_REQUESTS = Counter(
    "routerwatch_otlp_requests_total",
    "Requests to the OTLP receiver's POST /v1/traces, by HTTP status code.",
    ["code"],
)
OTLP_SPANS = Counter(
    "routerwatch_otlp_spans_total",
    "Spans received on /v1/traces, by result: accepted (held for assembly), duplicate (a span id "
    "already seen in its trace: a redelivery, counted once), dead_lettered (refused on arrival: "
    "capacity, late, trace too large), rejected (unusable ids or times: counted in the response's "
    "partial_success and not kept).",
    ["result"],
)
OTLP_TRACES = Counter(
    "routerwatch_otlp_traces_total",
    "Traces closed by the OTLP receiver, by result (assembled: a RoutingDecision sent to the decisions "
    "topic; dead_lettered; ignored: no model call and no router span) and trigger (root: root or router "
    "span plus grace; timeout: the window; shutdown; arrival: refused as its spans arrived).",
    ["result", "trigger"],
)
OTLP_DEAD_LETTERED = Counter(
    "routerwatch_otlp_dead_lettered_total",
    "Dead letters written by the OTLP receiver, by reason (otlp_invalid, otlp_no_attempts, "
    "otlp_trace_too_large, otlp_capacity, otlp_late_span); one per trace, or per trace's late spans.",
    ["reason"],
)
OTLP_OPEN_TRACES = Gauge(
    "routerwatch_otlp_open_traces",
    "Traces the OTLP receiver holds, waiting for their root span, grace or window.",
)
UNPRICED_ATTEMPTS = Counter(
    "routerwatch_unpriced_attempts_total",
    "Attempts stored whose (model, provider) the price table could not price, by provider and model "
    "(every stored decision, canary probes and shadow attempts included; pipeline_health's "
    "unpriced_attempts_by_model counts the same attempts). Any increase means the counterfactual and "
    "the table's tiers do not know that model: add it to the price table or import prices "
    "(docs/prices.md). At most 100 distinct provider/model pairs per process; later ones as "
    "provider=\"other\", model=\"other\".",
    ["provider", "model"],
)
