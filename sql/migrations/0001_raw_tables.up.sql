-- Raw events, one row per request (decisions) and one per attempt (attempts).
-- ReplacingMergeTree keyed on event_id is the second line of idempotency: the
-- ingest service already skips event_ids it has stored, and a merge removes
-- any duplicate that slips through a crash window.

CREATE TABLE IF NOT EXISTS decisions
(
    event_id           UUID,
    request_id         String,
    occurred_at        DateTime64(3, 'UTC'),
    ingested_at        DateTime64(3, 'UTC') DEFAULT now64(3),
    schema_version     UInt8,
    router_id          LowCardinality(String),
    router_version     String,
    strategy           LowCardinality(String),
    policy_version     String,
    environment        LowCardinality(String),
    category           LowCardinality(String),
    tenant             String,
    source             LowCardinality(String),
    experiment_id      LowCardinality(String),
    experiment_variant LowCardinality(String),
    shadow             Bool,
    canary_id          String,
    route_confidence   Nullable(Float64),
    route_rule         String,
    route_features     String COMMENT 'JSON object',
    attempt_count      UInt8,
    escalation_count   UInt8,
    failure_count      UInt8,
    entry_tier         LowCardinality(String),
    entry_tier_rank    UInt8,
    served             Bool,
    final_tier         LowCardinality(String) COMMENT 'empty when not served',
    final_tier_rank    UInt8,
    final_model        LowCardinality(String),
    latency_ms         Float64 COMMENT 'end-to-end request latency',
    cost_usd           Float64 COMMENT 'non-shadow attempts plus verifiers',
    quality_score      Nullable(Float64),
    quality_passed     Nullable(Bool),
    prompt_hash        String,
    prompt_length      UInt32,
    kafka_partition    Int32,
    kafka_offset       Int64,
    -- The ingest dedup check looks event_ids up by value; the bloom filter keeps that cheap.
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id);

CREATE TABLE IF NOT EXISTS attempts
(
    event_id           UUID,
    request_id         String,
    occurred_at        DateTime64(3, 'UTC') COMMENT 'of the request',
    attempt_index      UInt8,
    tier               LowCardinality(String),
    tier_rank          UInt8,
    model              LowCardinality(String),
    provider           LowCardinality(String),
    offset_ms          Float64,
    latency_ms         Float64,
    ttft_ms            Nullable(Float64),
    input_tokens       UInt32,
    output_tokens      UInt32,
    cost_usd           Float64,
    outcome            LowCardinality(String) COMMENT 'accepted | escalated | failed | shadow',
    gate_kind          LowCardinality(String),
    gate_score         Nullable(Float64),
    gate_threshold     Nullable(Float64),
    gate_passed        Nullable(Bool),
    escalation_reason  LowCardinality(String),
    failure_mode       LowCardinality(String),
    verify_latency_ms  Float64,
    verify_cost_usd    Float64,
    cache_hit          Bool,
    -- Request context repeated per attempt so per-tier figures need no join.
    router_id          LowCardinality(String),
    environment        LowCardinality(String),
    category           LowCardinality(String),
    tenant             String,
    experiment_id      LowCardinality(String),
    experiment_variant LowCardinality(String),
    shadow             Bool COMMENT 'request is in the shadow slice',
    canary_id          String,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id, attempt_index);

CREATE TABLE IF NOT EXISTS feedback
(
    event_id       UUID,
    request_id     String,
    occurred_at    DateTime64(3, 'UTC') COMMENT 'when the grade was given',
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    router_id      LowCardinality(String),
    target         LowCardinality(String) COMMENT 'served | shadow',
    attempt_index  Nullable(UInt8),
    tier           LowCardinality(String),
    score          Float64,
    passed         Bool,
    source         LowCardinality(String) COMMENT 'grader | human | user',
    grader         String,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id);

CREATE TABLE IF NOT EXISTS canary_results
(
    event_id       UUID,
    canary_id      LowCardinality(String),
    run_id         String,
    occurred_at    DateTime64(3, 'UTC'),
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    router_id      LowCardinality(String),
    category       LowCardinality(String),
    expected_tier  LowCardinality(String),
    observed_tier  LowCardinality(String) COMMENT 'empty when the router did not answer',
    check_kind     LowCardinality(String),
    answer_passed  Nullable(Bool),
    latency_ms     Nullable(Float64),
    error          String,
    request_id     String,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id);
