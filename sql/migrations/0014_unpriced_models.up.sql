-- Attempts the price table could not price, made visible (docs/prices.md, "Unpriced models").
--
-- Ingest stores, per request, `unpriced_models`: `provider/model` of each attempt (shadow attempts
-- included, canary probes included) whose (model, provider) has no price in the table it was
-- ingested with, comma-separated, one entry per attempt; '' when every attempt was priced. Names
-- cannot hold a comma (the contract's Name pattern). A String, not an Array: the decisions block
-- keeps its typed Arrow insert path. Rows stored before this migration read ''.
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS unpriced_models String DEFAULT ''
    COMMENT 'provider/model of each attempt without a price, comma-separated (one entry per attempt)';

-- A view's SELECT * is expanded when the view is created: re-create `requests` to show the column.
DROP VIEW IF EXISTS requests;
CREATE VIEW requests AS SELECT * FROM decisions FINAL WHERE canary_id = '';

-- Per minute of occurred_at, router and deployment: how many attempts had no price. Canary probes
-- are kept out, as from every rollup; only requests with an unpriced attempt reach the table.
CREATE TABLE IF NOT EXISTS unpriced_minute
(
    minute      DateTime('UTC'),
    router_id   LowCardinality(String),
    deployment  LowCardinality(String) COMMENT 'provider/model',
    attempts    SimpleAggregateFunction(sum, UInt64),
    requests    SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, router_id, deployment);

CREATE MATERIALIZED VIEW IF NOT EXISTS unpriced_minute_mv TO unpriced_minute AS
SELECT
    toStartOfMinute(occurred_at)                       AS minute,
    router_id,
    deployment,
    count()                                            AS attempts,
    uniqExact(event_id)                                AS requests
FROM decisions
ARRAY JOIN splitByChar(',', unpriced_models) AS deployment
WHERE canary_id = '' AND unpriced_models != ''
GROUP BY minute, router_id, deployment;

-- Which models had no price in [since, until), and how many attempts and requests: the report's
-- "Models without a price" flag. Call: SELECT * FROM unpriced_models(since = '...', until = '...')
CREATE VIEW IF NOT EXISTS unpriced_models AS
SELECT
    deployment,
    sum(u.attempts)                                    AS attempts,
    sum(u.requests)                                    AS requests,
    groupUniqArray(router_id)                          AS routers
FROM unpriced_minute AS u
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
GROUP BY deployment
ORDER BY attempts DESC, deployment;

-- 0004's pipeline_health, plus the attempts stored without a price in each minute of ingest, in
-- total and per provider/model (every stored decision, canary probes included, as the other
-- columns and routerwatch_unpriced_attempts_total count them).
CREATE OR REPLACE VIEW pipeline_health AS
SELECT
    toStartOfMinute(ingested_at)                                 AS minute,
    count()                                                      AS requests_stored,
    count() / 60                                                 AS events_per_second,
    quantiles(0.5, 0.99)(dateDiff('millisecond', occurred_at, ingested_at)) AS ingest_delay_ms,
    countIf(unpriced_models != '')                               AS requests_with_unpriced,
    sum(if(unpriced_models = '', 0, length(splitByChar(',', unpriced_models)))) AS unpriced_attempts,
    CAST(sumMap(if(unpriced_models = '', [], splitByChar(',', unpriced_models)),
                arrayMap(x -> toUInt64(1), if(unpriced_models = '', [], splitByChar(',', unpriced_models)))),
         'Map(String, UInt64)')                                  AS unpriced_attempts_by_model
FROM decisions
WHERE ingested_at >= parseDateTimeBestEffort({since:String}, 'UTC') AND ingested_at < parseDateTimeBestEffort({until:String}, 'UTC')
GROUP BY minute
ORDER BY minute;
