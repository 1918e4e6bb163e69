-- Bucketed series for charts over time (the console, Grafana): the rollups at a step that fits the
-- range, keeping router_id and environment as columns so a reader filters on either or both and then
-- sums (or merges) what is left.
--
-- The figure views answer one range and split by one `by`; a chart needs one row per bucket and a
-- filter on router and environment together. These views hold the raw material of the figures, not
-- the figures: counts and sums, and t-digest states (AggregateFunction columns) that the reader
-- merges with quantilesTDigestMerge(0.5, 0.95, 0.99) after its filter, so a p95 over an environment
-- is the p95 of that environment's requests, not an average of p95s. Escalation rate, shares and
-- quantiles are computed by the reader exactly as tier_scoreboard, request_latency, routing_mix and
-- cost_summary compute them (a test holds each chart's sums to those views over the same range).
--
-- `bucket` is the start of a step of `step_minutes` minutes (aligned to the Unix epoch, like
-- escalation_series_step). A whole-day step reads the whole days of the range from the daily rollup,
-- a whole-hour step the whole hours from the hourly rollup, and the rest comes from the minute
-- rollup: a 30-day chart at daily steps merges ~30 rows per key, not ~43,000 minutes (t-digest
-- merges are what a long range costs). The range is the minutes of [since, until) as in
-- attempt_rollup.

CREATE VIEW IF NOT EXISTS attempt_series AS
SELECT bucket, router_id, environment, tier, min(tier_rank) AS tier_rank, category, outcome, escalation_reason,
       failure_mode, sum(n) AS attempts, sum(cost) AS cost_usd
FROM
(
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1,
         greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(day), step) * step, 'UTC') AS bucket, router_id, environment, tier, tier_rank,
           category, outcome, escalation_reason, failure_mode, attempts AS n, cost_usd AS cost
    FROM attempt_day
    WHERE step % 86400 = 0 AND day >= d0 AND day < d1
    UNION ALL
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1,
         greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(hour), step) * step, 'UTC') AS bucket, router_id, environment, tier, tier_rank,
           category, outcome, escalation_reason, failure_mode, attempts AS n, cost_usd AS cost
    FROM attempt_hour
    WHERE step % 3600 = 0 AND hour >= h0 AND hour < h1 AND NOT (step % 86400 = 0 AND hour >= d0 AND hour < d1)
    UNION ALL
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(minute), step) * step, 'UTC') AS bucket, router_id, environment, tier, tier_rank,
           category, outcome, escalation_reason, failure_mode, attempts AS n, cost_usd AS cost
    FROM attempt_minute
    WHERE minute >= s AND minute < u AND NOT (step % 3600 = 0 AND minute >= h0 AND minute < h1)
)
GROUP BY bucket, router_id, environment, tier, category, outcome, escalation_reason, failure_mode;

-- Terminal (accepted) and passthrough (escalated) attempt latency per tier: t-digest states.
CREATE VIEW IF NOT EXISTS attempt_latency_series AS
SELECT bucket, router_id, environment, tier, min(tier_rank) AS tier_rank, outcome, sum(n) AS attempts,
       quantilesTDigestMergeState(0.5, 0.95, 0.99)(q) AS latency_q
FROM
(
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1,
         greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(day), step) * step, 'UTC') AS bucket, router_id, environment, tier, tier_rank,
           outcome, attempts AS n, latency_q AS q
    FROM attempt_day
    WHERE step % 86400 = 0 AND day >= d0 AND day < d1 AND outcome IN ('accepted', 'escalated')
    UNION ALL
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1,
         greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(hour), step) * step, 'UTC') AS bucket, router_id, environment, tier, tier_rank,
           outcome, attempts AS n, latency_q AS q
    FROM attempt_hour
    WHERE step % 3600 = 0 AND hour >= h0 AND hour < h1 AND NOT (step % 86400 = 0 AND hour >= d0 AND hour < d1) AND outcome IN ('accepted', 'escalated')
    UNION ALL
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(minute), step) * step, 'UTC') AS bucket, router_id, environment, tier, tier_rank,
           outcome, attempts AS n, latency_q AS q
    FROM attempt_minute
    WHERE minute >= s AND minute < u AND NOT (step % 3600 = 0 AND minute >= h0 AND minute < h1)
      AND outcome IN ('accepted', 'escalated')
)
GROUP BY bucket, router_id, environment, tier, outcome;

-- Requests per bucket: path (kept | escalated | other), final tier, spend and the flagship
-- counterfactual, and request latency as t-digest states (the latency SLOs are on requests).
CREATE VIEW IF NOT EXISTS request_series AS
SELECT bucket, router_id, environment, path, final_tier, min(final_tier_rank) AS final_tier_rank, served,
       sum(n) AS requests, sum(cost) AS cost_usd, sum(counterfactual) AS counterfactual_cost_usd,
       quantilesTDigestMergeState(0.5, 0.95, 0.99)(q) AS latency_q
FROM
(
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1,
         greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(day), step) * step, 'UTC') AS bucket, router_id, environment, path, final_tier,
           final_tier_rank, served, requests AS n, cost_usd AS cost, counterfactual_cost_usd AS counterfactual, latency_q AS q
    FROM request_day
    WHERE step % 86400 = 0 AND day >= d0 AND day < d1
    UNION ALL
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, toStartOfDay(h0 + 82800) AS d0, toStartOfDay(h1) AS d1,
         greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(hour), step) * step, 'UTC') AS bucket, router_id, environment, path, final_tier,
           final_tier_rank, served, requests AS n, cost_usd AS cost, counterfactual_cost_usd AS counterfactual, latency_q AS q
    FROM request_hour
    WHERE step % 3600 = 0 AND hour >= h0 AND hour < h1 AND NOT (step % 86400 = 0 AND hour >= d0 AND hour < d1)
    UNION ALL
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(minute), step) * step, 'UTC') AS bucket, router_id, environment, path, final_tier,
           final_tier_rank, served, requests AS n, cost_usd AS cost, counterfactual_cost_usd AS counterfactual, latency_q AS q
    FROM request_minute
    WHERE minute >= s AND minute < u AND NOT (step % 3600 = 0 AND minute >= h0 AND minute < h1)
)
GROUP BY bucket, router_id, environment, path, final_tier, served;

-- Per canary over time: canary_series (0007) is per router and side; a page that says which canary
-- failed needs the canary too. Same definitions (answered, pass and tier-flip rates over answered
-- probes, NULL when none was answered), from the raw results as canary_series reads them.
CREATE VIEW IF NOT EXISTS canary_history AS
SELECT
    toDateTime(intDiv(toUnixTimestamp(occurred_at), greatest({step_minutes:UInt32}, 1) * 60) * greatest({step_minutes:UInt32}, 1) * 60, 'UTC')
                                                                   AS bucket,
    router_id,
    side,
    canary_id,
    count()                                                        AS probes,
    countIf(error = '')                                            AS answered,
    countIf(error != '')                                           AS no_answer,
    countIf(error = '' AND ifNull(answer_passed, false))           AS passed,
    passed / nullIf(answered, 0)                                   AS pass_rate,
    countIf(error = '' AND observed_tier != expected_tier)         AS tier_flips,
    tier_flips / nullIf(answered, 0)                               AS tier_flip_rate,
    argMaxIf(error, occurred_at, error != '')                      AS last_error
FROM canary_results FINAL
WHERE occurred_at >= parseDateTime64BestEffort({since:String}, 3, 'UTC')
  AND occurred_at < parseDateTime64BestEffort({until:String}, 3, 'UTC')
GROUP BY bucket, router_id, side, canary_id
ORDER BY bucket, router_id, side, canary_id;
