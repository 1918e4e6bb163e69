-- Back to 0004's pipeline_health and 0003's requests view; the unpriced rollup and column go.
CREATE OR REPLACE VIEW pipeline_health AS
SELECT
    toStartOfMinute(ingested_at)                                 AS minute,
    count()                                                      AS requests_stored,
    count() / 60                                                 AS events_per_second,
    quantiles(0.5, 0.99)(dateDiff('millisecond', occurred_at, ingested_at)) AS ingest_delay_ms
FROM decisions
WHERE ingested_at >= parseDateTimeBestEffort({since:String}, 'UTC') AND ingested_at < parseDateTimeBestEffort({until:String}, 'UTC')
GROUP BY minute
ORDER BY minute;
DROP VIEW IF EXISTS unpriced_models;
DROP VIEW IF EXISTS unpriced_minute_mv;
DROP TABLE IF EXISTS unpriced_minute;
DROP VIEW IF EXISTS requests;
ALTER TABLE decisions DROP COLUMN IF EXISTS unpriced_models;
CREATE VIEW requests AS SELECT * FROM decisions FINAL WHERE canary_id = '';
