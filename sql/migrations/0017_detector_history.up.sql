-- What the live drift scheduler did, kept in the store so that it survives restarts and every
-- serve (and the console) sees the same history: the alert transitions it made and the statistic
-- of each CUSUM series at each tick. Replays (dry runs) write neither. Both tables drop their rows
-- after 35 days (whole daily or monthly parts: ttl_only_drop_parts).

-- One row per alert transition: 'started' when an alert first fires, 'resolved' when it stops.
-- Every serve runs the scheduler, so a transition may be recorded once per serve: readers take one
-- row per (alert_key, state, starts_at). The console reads the resolves of the last day, newest first.
CREATE TABLE IF NOT EXISTS alert_events
(
    at            DateTime64(3, 'UTC') COMMENT 'wall-clock time of the transition',
    evaluated_at  DateTime64(3, 'UTC') COMMENT 'the minute the detectors judged',
    state         LowCardinality(String) COMMENT 'started | resolved',
    alertname     LowCardinality(String),
    severity      LowCardinality(String),
    router        LowCardinality(String) COMMENT 'the router label, empty when the alert has none',
    labels        String COMMENT 'JSON object: the alert''s labels',
    annotations   String COMMENT 'JSON object: summary, description, runbook_url, query, figures',
    starts_at     DateTime64(3, 'UTC'),
    ends_at       Nullable(DateTime64(3, 'UTC')) COMMENT 'the resolve time; NULL on started rows',
    alert_key     String COMMENT 'the label set as canonical JSON: the Alertmanager client''s identity of an alert'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (state, at, alert_key)
TTL toDateTime(at) + INTERVAL 35 DAY
SETTINGS ttl_only_drop_parts = 1;

-- One row per live tick and CUSUM series (escalation drift, surge, failure shift, shadow quality):
-- the statistic against its threshold, for the console's chart under the escalation series. A
-- minute judged again (a tick shorter than a minute, several serves) keeps its newest row.
CREATE TABLE IF NOT EXISTS detector_statistics
(
    evaluated_at    DateTime64(3, 'UTC') COMMENT 'the minute judged',
    written_at      DateTime64(3, 'UTC') DEFAULT now64(3),
    signal          LowCardinality(String),
    router_id       LowCardinality(String),
    tier            LowCardinality(String),
    category        LowCardinality(String) COMMENT 'empty for tier-wide series',
    direction       LowCardinality(String) COMMENT 'up | down, empty for one-sided detectors',
    series_key      String COMMENT 'canonical labels: category=...,direction=...,router=...,tier=...',
    statistic       Float64,
    threshold       Float64,
    baseline_value  Nullable(Float64),
    observed_value  Nullable(Float64),
    firing          Bool
)
ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMMDD(evaluated_at)
ORDER BY (router_id, tier, signal, series_key, evaluated_at)
TTL toDateTime(evaluated_at) + INTERVAL 35 DAY
SETTINGS ttl_only_drop_parts = 1;
