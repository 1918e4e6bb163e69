-- Per-minute rollups fed by materialized views, and the columns they need.
-- Every view writes TO an explicit table; canary probes (canary_id != '') are
-- kept out of production figures here and read from the raw tables on request.
-- Counts and sums are exact because ingest stores each event_id once;
-- quantiles are t-digest states (ClickHouse quantilesTDigest), merged over any
-- range at query time (error: see README, "Quantiles").

ALTER TABLE decisions ADD COLUMN IF NOT EXISTS counterfactual_cost_usd Float64 DEFAULT 0
    COMMENT 'the request priced on the flagship model alone (price table)';
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS price_version LowCardinality(String) DEFAULT ''
    COMMENT 'version of the price table used for counterfactual_cost_usd';
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS top_tier_rank UInt8 DEFAULT 0
    COMMENT 'rank of the flagship tier in the price table: served below it = routable';

-- A view's SELECT * is expanded when the view is created: re-create `requests`
-- so that it shows the new columns.
DROP VIEW IF EXISTS requests;
CREATE VIEW requests AS SELECT * FROM decisions FINAL WHERE canary_id = '';

CREATE TABLE IF NOT EXISTS attempt_minute
(
    minute             DateTime('UTC'),
    router_id          LowCardinality(String),
    environment        LowCardinality(String),
    tier               LowCardinality(String),
    tier_rank          UInt8,
    category           LowCardinality(String),
    experiment_id      LowCardinality(String),
    experiment_variant LowCardinality(String),
    shadow             Bool COMMENT 'request is in the shadow slice',
    outcome            LowCardinality(String),
    escalation_reason  LowCardinality(String),
    failure_mode       LowCardinality(String),
    attempts           SimpleAggregateFunction(sum, UInt64),
    latency_ms_sum     SimpleAggregateFunction(sum, Float64),
    cost_usd           SimpleAggregateFunction(sum, Float64),
    verify_cost_usd    SimpleAggregateFunction(sum, Float64),
    input_tokens       SimpleAggregateFunction(sum, UInt64),
    output_tokens      SimpleAggregateFunction(sum, UInt64),
    latency_q          AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64),
    ttft_q             AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Nullable(Float64)),
    verify_latency_q   AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant,
          shadow, outcome, escalation_reason, failure_mode);

CREATE MATERIALIZED VIEW IF NOT EXISTS attempt_minute_mv TO attempt_minute AS
SELECT
    toStartOfMinute(occurred_at)                        AS minute,
    router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
    outcome, escalation_reason, failure_mode,
    count()                                             AS attempts,
    sum(latency_ms)                                     AS latency_ms_sum,
    sum(cost_usd)                                       AS cost_usd,
    sum(verify_cost_usd)                                AS verify_cost_usd,
    sum(input_tokens)                                   AS input_tokens,
    sum(output_tokens)                                  AS output_tokens,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms)  AS latency_q,
    quantilesTDigestState(0.5, 0.95, 0.99)(ttft_ms)     AS ttft_q,
    quantilesTDigestState(0.5, 0.95, 0.99)(verify_latency_ms) AS verify_latency_q
FROM attempts
WHERE canary_id = ''
GROUP BY minute, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
         outcome, escalation_reason, failure_mode;

CREATE TABLE IF NOT EXISTS request_minute
(
    minute             DateTime('UTC'),
    router_id          LowCardinality(String),
    environment        LowCardinality(String),
    category           LowCardinality(String),
    experiment_id      LowCardinality(String),
    experiment_variant LowCardinality(String),
    shadow             Bool,
    entry_tier         LowCardinality(String),
    final_tier         LowCardinality(String) COMMENT 'empty when not served',
    final_tier_rank    UInt8,
    served             Bool,
    path               LowCardinality(String) COMMENT 'kept | escalated | other',
    routable           Bool COMMENT 'served below the flagship tier',
    requests           SimpleAggregateFunction(sum, UInt64),
    escalations        SimpleAggregateFunction(sum, UInt64),
    failures           SimpleAggregateFunction(sum, UInt64),
    cost_usd           SimpleAggregateFunction(sum, Float64),
    counterfactual_cost_usd SimpleAggregateFunction(sum, Float64),
    latency_ms_sum     SimpleAggregateFunction(sum, Float64),
    latency_q          AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, router_id, environment, category, experiment_id, experiment_variant, shadow,
          entry_tier, final_tier, final_tier_rank, served, path, routable);

CREATE MATERIALIZED VIEW IF NOT EXISTS request_minute_mv TO request_minute AS
SELECT
    toStartOfMinute(occurred_at) AS minute,
    router_id, environment, category, experiment_id, experiment_variant, shadow,
    entry_tier, final_tier, final_tier_rank, served,
    -- kept: served by its entry tier with no escalation; escalated: at least one escalation.
    multiIf(escalation_count > 0, 'escalated',
            served AND final_tier = entry_tier, 'kept',
            'other')                                    AS path,
    served AND final_tier_rank < top_tier_rank           AS routable,
    count()                                             AS requests,
    sum(escalation_count)                               AS escalations,
    sum(failure_count)                                  AS failures,
    sum(cost_usd)                                       AS cost_usd,
    sum(counterfactual_cost_usd)                        AS counterfactual_cost_usd,
    sum(latency_ms)                                     AS latency_ms_sum,
    quantilesTDigestState(0.5, 0.95, 0.99)(latency_ms)  AS latency_q
FROM decisions
WHERE canary_id = ''
GROUP BY minute, router_id, environment, category, experiment_id, experiment_variant, shadow,
         entry_tier, final_tier, final_tier_rank, served, path, routable;

CREATE TABLE IF NOT EXISTS tenant_minute
(
    minute              DateTime('UTC'),
    router_id           LowCardinality(String),
    environment         LowCardinality(String),
    tenant              String,
    requests            SimpleAggregateFunction(sum, UInt64),
    escalated_requests  SimpleAggregateFunction(sum, UInt64),
    escalated_attempts  SimpleAggregateFunction(sum, UInt64),
    accepted_attempts   SimpleAggregateFunction(sum, UInt64),
    cost_usd            SimpleAggregateFunction(sum, Float64),
    counterfactual_cost_usd SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, router_id, environment, tenant);

CREATE MATERIALIZED VIEW IF NOT EXISTS tenant_minute_mv TO tenant_minute AS
SELECT
    toStartOfMinute(occurred_at) AS minute, router_id, environment, tenant,
    count()                          AS requests,
    countIf(escalation_count > 0)    AS escalated_requests,
    sum(escalation_count)            AS escalated_attempts,
    countIf(served)                  AS accepted_attempts,
    sum(cost_usd)                    AS cost_usd,
    sum(counterfactual_cost_usd)     AS counterfactual_cost_usd
FROM decisions
WHERE canary_id = ''
GROUP BY minute, router_id, environment, tenant;

CREATE TABLE IF NOT EXISTS dead_letters
(
    received_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    topic        LowCardinality(String),
    partition    Int32,
    offset       Int64,
    reason       LowCardinality(String),
    detail       String,
    size_bytes   UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, offset);
