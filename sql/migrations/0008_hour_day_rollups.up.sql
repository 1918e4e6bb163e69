-- Hourly and daily rollups beside the per-minute ones, so that a figure over days or weeks merges
-- a few hundred thousand rows instead of every minute of the range.
-- At ~20 attempts a second a minute holds ~300 distinct (tier x category x outcome ...) keys, so
-- attempt_minute keeps one row per ~4 attempts: over 30 days that is ~13M rows and as many
-- t-digest states to merge, which is no cheaper than scanning the raw table. An hour holds ~1,500
-- keys and a day ~3,000: 30 days of attempt_day are ~90k rows.
--
-- Each level is filled by a materialized view on the level below (minute -> hour -> day), so an
-- insert into the raw tables aggregates the raw rows once and the coarser levels only re-aggregate
-- the (much smaller) block the minute view wrote. Every level holds all of the data: the day of an
-- event is in attempt_day as soon as its minute is in attempt_minute.
--
-- `attempt_rollup(since, until)`, `request_rollup` and `tenant_rollup` read exactly the minutes of
-- [since, until) from the coarsest level that covers them: whole days from the day table, the
-- remaining whole hours from the hour table, the remaining minutes (at most 59 at each end) from the
-- minute table. The bucket start is in `minute` whatever the level. Counts and sums are those of
-- the minute rollup; t-digest states are merged in a different order (minute -> hour -> day), which
-- stays within the documented quantile error (README, "Quantiles").
--
-- The figure views of 0004 are re-created over these range views (same columns, same answers):
-- 0004's `escalation_series` stays per minute, and `escalation_series_step(since, until,
-- step_minutes)` buckets it (from the hour table when the step is whole hours).
--
-- Run with ingest stopped (serve refuses to start with pending migrations): the new tables are
-- back-filled from the minute rollups before their materialized views are created.

CREATE TABLE IF NOT EXISTS attempt_hour
(
    hour               DateTime('UTC'),
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
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant,
          shadow, outcome, escalation_reason, failure_mode);

CREATE TABLE IF NOT EXISTS attempt_day
(
    day                DateTime('UTC'),
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
PARTITION BY toYYYYMM(day)
ORDER BY (day, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant,
          shadow, outcome, escalation_reason, failure_mode);

CREATE TABLE IF NOT EXISTS request_hour
(
    hour               DateTime('UTC'),
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
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, router_id, environment, category, experiment_id, experiment_variant, shadow,
          entry_tier, final_tier, final_tier_rank, served, path, routable);

CREATE TABLE IF NOT EXISTS request_day
(
    day                DateTime('UTC'),
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
PARTITION BY toYYYYMM(day)
ORDER BY (day, router_id, environment, category, experiment_id, experiment_variant, shadow,
          entry_tier, final_tier, final_tier_rank, served, path, routable);

CREATE TABLE IF NOT EXISTS tenant_hour
(
    hour                DateTime('UTC'),
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
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, router_id, environment, tenant);

CREATE TABLE IF NOT EXISTS tenant_day
(
    day                 DateTime('UTC'),
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
PARTITION BY toYYYYMM(day)
ORDER BY (day, router_id, environment, tenant);

-- Back-fill from the minute rollups (only into empty tables, so a re-run after a failure cannot
-- count twice), then attach the views that keep the new levels filled.
INSERT INTO attempt_hour
SELECT
    toStartOfHour(minute) AS hour,
    router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
    outcome, escalation_reason, failure_mode,
    sum(attempts), sum(latency_ms_sum), sum(cost_usd), sum(verify_cost_usd), sum(input_tokens), sum(output_tokens),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(ttft_q),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(verify_latency_q)
FROM attempt_minute
WHERE (SELECT count() FROM attempt_hour) = 0
GROUP BY hour, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
         outcome, escalation_reason, failure_mode;

INSERT INTO attempt_day
SELECT
    toStartOfDay(hour) AS day,
    router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
    outcome, escalation_reason, failure_mode,
    sum(attempts), sum(latency_ms_sum), sum(cost_usd), sum(verify_cost_usd), sum(input_tokens), sum(output_tokens),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(ttft_q),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(verify_latency_q)
FROM attempt_hour
WHERE (SELECT count() FROM attempt_day) = 0
GROUP BY day, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
         outcome, escalation_reason, failure_mode;

INSERT INTO request_hour
SELECT
    toStartOfHour(minute) AS hour,
    router_id, environment, category, experiment_id, experiment_variant, shadow,
    entry_tier, final_tier, final_tier_rank, served, path, routable,
    sum(requests), sum(escalations), sum(failures), sum(cost_usd), sum(counterfactual_cost_usd), sum(latency_ms_sum),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q)
FROM request_minute
WHERE (SELECT count() FROM request_hour) = 0
GROUP BY hour, router_id, environment, category, experiment_id, experiment_variant, shadow,
         entry_tier, final_tier, final_tier_rank, served, path, routable;

INSERT INTO request_day
SELECT
    toStartOfDay(hour) AS day,
    router_id, environment, category, experiment_id, experiment_variant, shadow,
    entry_tier, final_tier, final_tier_rank, served, path, routable,
    sum(requests), sum(escalations), sum(failures), sum(cost_usd), sum(counterfactual_cost_usd), sum(latency_ms_sum),
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q)
FROM request_hour
WHERE (SELECT count() FROM request_day) = 0
GROUP BY day, router_id, environment, category, experiment_id, experiment_variant, shadow,
         entry_tier, final_tier, final_tier_rank, served, path, routable;

INSERT INTO tenant_hour
SELECT
    toStartOfHour(minute) AS hour, router_id, environment, tenant,
    sum(requests), sum(escalated_requests), sum(escalated_attempts), sum(accepted_attempts), sum(cost_usd),
    sum(counterfactual_cost_usd)
FROM tenant_minute
WHERE (SELECT count() FROM tenant_hour) = 0
GROUP BY hour, router_id, environment, tenant;

INSERT INTO tenant_day
SELECT
    toStartOfDay(hour) AS day, router_id, environment, tenant,
    sum(requests), sum(escalated_requests), sum(escalated_attempts), sum(accepted_attempts), sum(cost_usd),
    sum(counterfactual_cost_usd)
FROM tenant_hour
WHERE (SELECT count() FROM tenant_day) = 0
GROUP BY day, router_id, environment, tenant;

CREATE MATERIALIZED VIEW IF NOT EXISTS attempt_hour_mv TO attempt_hour AS
SELECT
    toStartOfHour(minute) AS hour,
    router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
    outcome, escalation_reason, failure_mode,
    sum(attempts)                                                AS attempts,
    sum(latency_ms_sum)                                          AS latency_ms_sum,
    sum(cost_usd)                                                AS cost_usd,
    sum(verify_cost_usd)                                         AS verify_cost_usd,
    sum(input_tokens)                                            AS input_tokens,
    sum(output_tokens)                                           AS output_tokens,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q)        AS latency_q,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(ttft_q)           AS ttft_q,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(verify_latency_q) AS verify_latency_q
FROM attempt_minute
GROUP BY hour, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
         outcome, escalation_reason, failure_mode;

CREATE MATERIALIZED VIEW IF NOT EXISTS attempt_day_mv TO attempt_day AS
SELECT
    toStartOfDay(hour) AS day,
    router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
    outcome, escalation_reason, failure_mode,
    sum(attempts)                                                AS attempts,
    sum(latency_ms_sum)                                          AS latency_ms_sum,
    sum(cost_usd)                                                AS cost_usd,
    sum(verify_cost_usd)                                         AS verify_cost_usd,
    sum(input_tokens)                                            AS input_tokens,
    sum(output_tokens)                                           AS output_tokens,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q)        AS latency_q,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(ttft_q)           AS ttft_q,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(verify_latency_q) AS verify_latency_q
FROM attempt_hour
GROUP BY day, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
         outcome, escalation_reason, failure_mode;

CREATE MATERIALIZED VIEW IF NOT EXISTS request_hour_mv TO request_hour AS
SELECT
    toStartOfHour(minute) AS hour,
    router_id, environment, category, experiment_id, experiment_variant, shadow,
    entry_tier, final_tier, final_tier_rank, served, path, routable,
    sum(requests)                                                AS requests,
    sum(escalations)                                             AS escalations,
    sum(failures)                                                AS failures,
    sum(cost_usd)                                                AS cost_usd,
    sum(counterfactual_cost_usd)                                 AS counterfactual_cost_usd,
    sum(latency_ms_sum)                                          AS latency_ms_sum,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q)        AS latency_q
FROM request_minute
GROUP BY hour, router_id, environment, category, experiment_id, experiment_variant, shadow,
         entry_tier, final_tier, final_tier_rank, served, path, routable;

CREATE MATERIALIZED VIEW IF NOT EXISTS request_day_mv TO request_day AS
SELECT
    toStartOfDay(hour) AS day,
    router_id, environment, category, experiment_id, experiment_variant, shadow,
    entry_tier, final_tier, final_tier_rank, served, path, routable,
    sum(requests)                                                AS requests,
    sum(escalations)                                             AS escalations,
    sum(failures)                                                AS failures,
    sum(cost_usd)                                                AS cost_usd,
    sum(counterfactual_cost_usd)                                 AS counterfactual_cost_usd,
    sum(latency_ms_sum)                                          AS latency_ms_sum,
    quantilesTDigestMergeState(0.5, 0.95, 0.99)(latency_q)        AS latency_q
FROM request_hour
GROUP BY day, router_id, environment, category, experiment_id, experiment_variant, shadow,
         entry_tier, final_tier, final_tier_rank, served, path, routable;

CREATE MATERIALIZED VIEW IF NOT EXISTS tenant_hour_mv TO tenant_hour AS
SELECT
    toStartOfHour(minute) AS hour, router_id, environment, tenant,
    sum(requests)                    AS requests,
    sum(escalated_requests)          AS escalated_requests,
    sum(escalated_attempts)          AS escalated_attempts,
    sum(accepted_attempts)           AS accepted_attempts,
    sum(cost_usd)                    AS cost_usd,
    sum(counterfactual_cost_usd)     AS counterfactual_cost_usd
FROM tenant_minute
GROUP BY hour, router_id, environment, tenant;

CREATE MATERIALIZED VIEW IF NOT EXISTS tenant_day_mv TO tenant_day AS
SELECT
    toStartOfDay(hour) AS day, router_id, environment, tenant,
    sum(requests)                    AS requests,
    sum(escalated_requests)          AS escalated_requests,
    sum(escalated_attempts)          AS escalated_attempts,
    sum(accepted_attempts)           AS accepted_attempts,
    sum(cost_usd)                    AS cost_usd,
    sum(counterfactual_cost_usd)     AS counterfactual_cost_usd
FROM tenant_hour
GROUP BY day, router_id, environment, tenant;

-- The minutes of [since, until) from the coarsest level that covers them. With s and u the first
-- minute at or after since and until, the minutes are [s, u); h0..h1 the whole hours inside,
-- d0..d1 the whole days inside [h0, h1). Each part repeats the bounds (a WITH clause belongs to
-- one SELECT of a UNION).
CREATE VIEW IF NOT EXISTS attempt_rollup AS
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1
SELECT day AS minute, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
       outcome, escalation_reason, failure_mode, attempts, latency_ms_sum, cost_usd, verify_cost_usd, input_tokens,
       output_tokens, latency_q, ttft_q, verify_latency_q
FROM attempt_day
WHERE day >= d0 AND day < d1
UNION ALL
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1
SELECT hour AS minute, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
       outcome, escalation_reason, failure_mode, attempts, latency_ms_sum, cost_usd, verify_cost_usd, input_tokens,
       output_tokens, latency_q, ttft_q, verify_latency_q
FROM attempt_hour
WHERE hour >= h0 AND hour < h1 AND NOT (hour >= d0 AND hour < d1)
UNION ALL
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1
SELECT minute, router_id, environment, tier, tier_rank, category, experiment_id, experiment_variant, shadow,
       outcome, escalation_reason, failure_mode, attempts, latency_ms_sum, cost_usd, verify_cost_usd, input_tokens,
       output_tokens, latency_q, ttft_q, verify_latency_q
FROM attempt_minute
WHERE minute >= s AND minute < u AND NOT (minute >= h0 AND minute < h1);

CREATE VIEW IF NOT EXISTS request_rollup AS
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1
SELECT day AS minute, router_id, environment, category, experiment_id, experiment_variant, shadow, entry_tier,
       final_tier, final_tier_rank, served, path, routable, requests, escalations, failures, cost_usd,
       counterfactual_cost_usd, latency_ms_sum, latency_q
FROM request_day
WHERE day >= d0 AND day < d1
UNION ALL
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1
SELECT hour AS minute, router_id, environment, category, experiment_id, experiment_variant, shadow, entry_tier,
       final_tier, final_tier_rank, served, path, routable, requests, escalations, failures, cost_usd,
       counterfactual_cost_usd, latency_ms_sum, latency_q
FROM request_hour
WHERE hour >= h0 AND hour < h1 AND NOT (hour >= d0 AND hour < d1)
UNION ALL
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1
SELECT minute, router_id, environment, category, experiment_id, experiment_variant, shadow, entry_tier,
       final_tier, final_tier_rank, served, path, routable, requests, escalations, failures, cost_usd,
       counterfactual_cost_usd, latency_ms_sum, latency_q
FROM request_minute
WHERE minute >= s AND minute < u AND NOT (minute >= h0 AND minute < h1);

CREATE VIEW IF NOT EXISTS tenant_rollup AS
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1
SELECT day AS minute, router_id, environment, tenant, requests, escalated_requests, escalated_attempts,
       accepted_attempts, cost_usd, counterfactual_cost_usd
FROM tenant_day
WHERE day >= d0 AND day < d1
UNION ALL
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1
SELECT hour AS minute, router_id, environment, tenant, requests, escalated_requests, escalated_attempts,
       accepted_attempts, cost_usd, counterfactual_cost_usd
FROM tenant_hour
WHERE hour >= h0 AND hour < h1 AND NOT (hour >= d0 AND hour < d1)
UNION ALL
WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
     toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
     toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1
SELECT minute, router_id, environment, tenant, requests, escalated_requests, escalated_attempts,
       accepted_attempts, cost_usd, counterfactual_cost_usd
FROM tenant_minute
WHERE minute >= s AND minute < u AND NOT (minute >= h0 AND minute < h1);

-- The figure views of 0004 over the range views (columns and answers unchanged).
DROP VIEW IF EXISTS tier_scoreboard;
CREATE VIEW tier_scoreboard AS
SELECT
    multiIf({by:String} = 'category', category, {by:String} = 'variant', concat(experiment_id, '/', experiment_variant),
            {by:String} = 'router', router_id, {by:String} = 'environment', environment, '') AS segment,
    tier,
    tier_rank,
    sum(m.attempts)                                              AS attempts,
    sumIf(m.attempts, outcome = 'accepted')                      AS accepted,
    sumIf(m.attempts, outcome = 'escalated')                     AS escalated,
    sumIf(m.attempts, outcome = 'failed')                        AS failed,
    sumIf(m.attempts, outcome = 'shadow')                        AS shadow,
    -- Escalation rate excludes shadow (never served) and failures (reliability, not quality).
    escalated / nullIf(accepted + escalated, 0)                AS escalation_rate,
    failed / nullIf(attempts - shadow, 0)                      AS failure_rate,
    accepted / nullIf(attempts - shadow, 0)                    AS terminal_share,
    escalated / nullIf(attempts - shadow, 0)                   AS passthrough_share,
    quantilesTDigestMergeIf(0.5, 0.95, 0.99)(latency_q, outcome = 'accepted')  AS terminal_latency_ms,
    quantilesTDigestMergeIf(0.5, 0.95, 0.99)(latency_q, outcome = 'escalated') AS passthrough_latency_ms,
    quantilesTDigestMergeIf(0.5, 0.95, 0.99)(ttft_q, outcome = 'accepted')     AS terminal_ttft_ms,
    quantilesTDigestMergeIf(0.5, 0.95, 0.99)(verify_latency_q, outcome IN ('accepted', 'escalated')) AS verify_latency_ms,
    sumIf(m.cost_usd, outcome != 'shadow')                       AS model_cost_usd,
    sumIf(m.verify_cost_usd, outcome != 'shadow')                AS verify_cost_usd,
    sumIf(m.cost_usd, outcome = 'shadow')                        AS shadow_cost_usd
FROM attempt_rollup(since = {since:String}, until = {until:String}) AS m
GROUP BY segment, tier, tier_rank
ORDER BY segment, tier_rank, tier;

DROP VIEW IF EXISTS escalation_reasons;
CREATE VIEW escalation_reasons AS
SELECT
    tier,
    category,
    escalation_reason,
    sum(m.attempts)                                                AS escalations,
    escalations / sum(sum(m.attempts)) OVER (PARTITION BY tier)    AS share_of_tier_escalations
FROM attempt_rollup(since = {since:String}, until = {until:String}) AS m
WHERE outcome = 'escalated'
GROUP BY tier, category, escalation_reason
ORDER BY tier, escalations DESC;

DROP VIEW IF EXISTS failure_modes;
CREATE VIEW failure_modes AS
WITH tier_attempts AS
(
    SELECT tier, sumIf(m.attempts, outcome != 'shadow') AS served_path_attempts
    FROM attempt_rollup(since = {since:String}, until = {until:String}) AS m
    GROUP BY tier
)
SELECT
    f.tier                                                       AS tier,
    f.failure_mode                                               AS failure_mode,
    f.failures                                                   AS failures,
    -- Per tier, never pooled: cheap and strong tiers fail differently.
    f.failures / nullIf(t.served_path_attempts, 0)               AS rate
FROM
(
    SELECT tier, failure_mode, sum(m.attempts) AS failures
    FROM attempt_rollup(since = {since:String}, until = {until:String}) AS m
    WHERE outcome = 'failed'
    GROUP BY tier, failure_mode
) AS f
INNER JOIN tier_attempts AS t USING (tier)
ORDER BY tier, failures DESC;

DROP VIEW IF EXISTS request_latency;
CREATE VIEW request_latency AS
SELECT
    multiIf({by:String} = 'category', category, {by:String} = 'variant', concat(experiment_id, '/', experiment_variant),
            {by:String} = 'router', router_id, {by:String} = 'environment', environment, '') AS segment,
    -- Kept and escalated requests are two populations with two SLOs; 'all' is the blended figure,
    -- shown only beside them.
    arrayJoin(['kept', 'escalated', 'all'])                      AS path_group,
    sumIf(r.requests, path_group = 'all' OR path = path_group)     AS requests,
    quantilesTDigestMergeIf(0.5, 0.95, 0.99)(latency_q, path_group = 'all' OR path = path_group) AS latency_ms
FROM request_rollup(since = {since:String}, until = {until:String}) AS r
GROUP BY segment, path_group
ORDER BY segment, indexOf(['kept', 'escalated', 'all'], path_group);

DROP VIEW IF EXISTS routing_mix;
CREATE VIEW routing_mix AS
SELECT
    multiIf({by:String} = 'category', category, {by:String} = 'variant', concat(experiment_id, '/', experiment_variant),
            {by:String} = 'router', router_id, {by:String} = 'environment', environment, '') AS segment,
    if(served, final_tier, '(not served)')                       AS final_tier,
    min(final_tier_rank)                                         AS final_tier_rank,
    sum(r.requests)                                                AS requests,
    requests / sum(sum(r.requests)) OVER (PARTITION BY segment)    AS share,
    sumIf(r.requests, path = 'kept')                               AS kept,
    sumIf(r.requests, path = 'escalated')                          AS escalated,
    sum(r.cost_usd)                                                AS cost_usd,
    cost_usd / nullIf(requests, 0)                               AS cost_per_request_usd
FROM request_rollup(since = {since:String}, until = {until:String}) AS r
GROUP BY segment, final_tier
ORDER BY segment, final_tier_rank, final_tier;

DROP VIEW IF EXISTS cost_summary;
CREATE VIEW cost_summary AS
SELECT
    multiIf({by:String} = 'category', category, {by:String} = 'variant', concat(experiment_id, '/', experiment_variant),
            {by:String} = 'router', router_id, {by:String} = 'environment', environment, '') AS segment,
    sum(r.requests)                                                AS requests,
    sum(r.cost_usd)                                              AS actual_cost_usd,
    sum(r.counterfactual_cost_usd)                               AS counterfactual_cost_usd,
    1 - actual_cost_usd / nullIf(counterfactual_cost_usd, 0)     AS savings_share,
    actual_cost_usd / nullIf(requests, 0)                        AS cost_per_request_usd,
    sumIf(r.requests, routable) / nullIf(requests, 0)              AS routable_share
FROM request_rollup(since = {since:String}, until = {until:String}) AS r
GROUP BY segment
ORDER BY segment;

DROP VIEW IF EXISTS experiment_slices;
CREATE VIEW experiment_slices AS
SELECT
    experiment_id,
    experiment_variant,
    -- The three slices an A/B comparison must be stratified into.
    multiIf(shadow, 'shadow', path = 'kept', 'entry_tier', path = 'escalated', 'escalated', 'other') AS slice,
    sum(r.requests)                                                AS requests,
    requests / sum(sum(r.requests)) OVER (PARTITION BY experiment_id, experiment_variant) AS share,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q)            AS latency_ms,
    sum(r.cost_usd) / nullIf(requests, 0)                        AS cost_per_request_usd
FROM request_rollup(since = {since:String}, until = {until:String}) AS r
WHERE experiment_id != ''
GROUP BY experiment_id, experiment_variant, slice
ORDER BY experiment_id, experiment_variant, slice;

DROP VIEW IF EXISTS experiment_mix;
CREATE VIEW experiment_mix AS
SELECT
    experiment_id,
    experiment_variant,
    if(served, final_tier, '(not served)')                       AS final_tier,
    sum(r.requests)                                                AS requests
FROM request_rollup(since = {since:String}, until = {until:String}) AS r
WHERE experiment_id != ''
GROUP BY experiment_id, experiment_variant, final_tier
ORDER BY experiment_id, experiment_variant, final_tier;

DROP VIEW IF EXISTS tenant_scoreboard;
CREATE VIEW tenant_scoreboard AS
SELECT
    tenant,
    sum(t.requests)                                                AS requests,
    sum(t.escalated_requests)                                    AS escalated_requests,
    sum(t.escalated_attempts) / nullIf(sum(t.escalated_attempts) + sum(t.accepted_attempts), 0) AS escalation_rate,
    sum(t.cost_usd)                                                AS cost_usd,
    cost_usd / sum(sum(t.cost_usd)) OVER ()                        AS share_of_spend
FROM tenant_rollup(since = {since:String}, until = {until:String}) AS t
GROUP BY tenant
ORDER BY cost_usd DESC;

-- escalation_series in buckets of step_minutes aligned on the Unix epoch (60 gives whole UTC hours);
-- `minute` is the bucket start. With a step of whole hours the whole hours come from attempt_hour.
CREATE VIEW IF NOT EXISTS escalation_series_step AS
SELECT
    bucket                                                       AS minute,
    tier,
    category,
    sumIf(n, outcome = 'escalated')                              AS escalated,
    sumIf(n, outcome = 'accepted')                               AS accepted,
    escalated / nullIf(escalated + accepted, 0)                  AS escalation_rate
FROM
(
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(hour), step) * step, 'UTC') AS bucket, tier, category, outcome, attempts AS n
    FROM attempt_hour
    WHERE step % 3600 = 0 AND hour >= h0 AND hour < h1 AND outcome IN ('accepted', 'escalated')
    UNION ALL
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(minute), step) * step, 'UTC') AS bucket, tier, category, outcome, attempts AS n
    FROM attempt_minute
    WHERE minute >= s AND minute < u AND NOT (step % 3600 = 0 AND minute >= h0 AND minute < h1)
      AND outcome IN ('accepted', 'escalated')
)
GROUP BY minute, tier, category
ORDER BY minute, tier, category;
