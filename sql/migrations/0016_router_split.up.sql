-- The figure views without a `by` parameter split by router (issue 17).
--
-- escalation_reasons, failure_modes, experiment_slices, experiment_mix, tenant_scoreboard,
-- escalation_series and escalation_series_step summed every router's traffic per tier (or per
-- experiment, tenant). Two routers with tiers of the same name (two cascades, or one router and its
-- canary deployment) were silently pooled: a failure mode of one router's 'small' tier counted on
-- the other's, an experiment run on one router was diluted by the other's traffic. Each now has a
-- leading router_id column and groups by it; every share and rate is within its router (the
-- PARTITION BY and the failure modes' denominator include router_id). With one router the rows,
-- values and order are those of 0008 (0004 for escalation_series) with one more column (tenants of
-- equal spend now in router and tenant order).
-- The views with `by` (tier_scoreboard, request_latency, routing_mix, cost_summary, quality_by_tier,
-- graded_summary) split by router with by = 'router'.

DROP VIEW IF EXISTS escalation_reasons;
CREATE VIEW escalation_reasons AS
SELECT
    router_id,
    tier,
    category,
    escalation_reason,
    sum(m.attempts)                                                           AS escalations,
    escalations / sum(sum(m.attempts)) OVER (PARTITION BY router_id, tier)    AS share_of_tier_escalations
FROM attempt_rollup(since = {since:String}, until = {until:String}) AS m
WHERE outcome = 'escalated'
GROUP BY router_id, tier, category, escalation_reason
ORDER BY router_id, tier, escalations DESC;

DROP VIEW IF EXISTS failure_modes;
CREATE VIEW failure_modes AS
WITH tier_attempts AS
(
    SELECT router_id, tier, sumIf(m.attempts, outcome != 'shadow') AS served_path_attempts
    FROM attempt_rollup(since = {since:String}, until = {until:String}) AS m
    GROUP BY router_id, tier
)
SELECT
    f.router_id                                                  AS router_id,
    f.tier                                                       AS tier,
    f.failure_mode                                               AS failure_mode,
    f.failures                                                   AS failures,
    -- Per router and tier, never pooled: cheap and strong tiers fail differently.
    f.failures / nullIf(t.served_path_attempts, 0)               AS rate
FROM
(
    SELECT router_id, tier, failure_mode, sum(m.attempts) AS failures
    FROM attempt_rollup(since = {since:String}, until = {until:String}) AS m
    WHERE outcome = 'failed'
    GROUP BY router_id, tier, failure_mode
) AS f
INNER JOIN tier_attempts AS t ON f.router_id = t.router_id AND f.tier = t.tier
ORDER BY router_id, tier, failures DESC;

DROP VIEW IF EXISTS experiment_slices;
CREATE VIEW experiment_slices AS
SELECT
    router_id,
    experiment_id,
    experiment_variant,
    -- The three slices an A/B comparison must be stratified into.
    multiIf(shadow, 'shadow', path = 'kept', 'entry_tier', path = 'escalated', 'escalated', 'other') AS slice,
    sum(r.requests)                                                AS requests,
    requests / sum(sum(r.requests)) OVER (PARTITION BY router_id, experiment_id, experiment_variant) AS share,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q)            AS latency_ms,
    sum(r.cost_usd) / nullIf(requests, 0)                        AS cost_per_request_usd
FROM request_rollup(since = {since:String}, until = {until:String}) AS r
WHERE experiment_id != ''
GROUP BY router_id, experiment_id, experiment_variant, slice
ORDER BY router_id, experiment_id, experiment_variant, slice;

DROP VIEW IF EXISTS experiment_mix;
CREATE VIEW experiment_mix AS
SELECT
    router_id,
    experiment_id,
    experiment_variant,
    if(served, final_tier, '(not served)')                       AS final_tier,
    sum(r.requests)                                                AS requests
FROM request_rollup(since = {since:String}, until = {until:String}) AS r
WHERE experiment_id != ''
GROUP BY router_id, experiment_id, experiment_variant, final_tier
ORDER BY router_id, experiment_id, experiment_variant, final_tier;

-- share_of_spend stays the share of all spend in the range (every router's).
DROP VIEW IF EXISTS tenant_scoreboard;
CREATE VIEW tenant_scoreboard AS
SELECT
    router_id,
    tenant,
    sum(t.requests)                                                AS requests,
    sum(t.escalated_requests)                                    AS escalated_requests,
    sum(t.escalated_attempts) / nullIf(sum(t.escalated_attempts) + sum(t.accepted_attempts), 0) AS escalation_rate,
    sum(t.cost_usd)                                                AS cost_usd,
    cost_usd / sum(sum(t.cost_usd)) OVER ()                        AS share_of_spend
FROM tenant_rollup(since = {since:String}, until = {until:String}) AS t
GROUP BY router_id, tenant
ORDER BY cost_usd DESC, router_id, tenant;

DROP VIEW IF EXISTS escalation_series;
CREATE VIEW escalation_series AS
SELECT
    minute,
    router_id,
    tier,
    category,
    sumIf(m.attempts, outcome = 'escalated')                       AS escalated,
    sumIf(m.attempts, outcome = 'accepted')                        AS accepted,
    escalated / nullIf(escalated + accepted, 0)                  AS escalation_rate
FROM attempt_minute AS m
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
  AND outcome IN ('accepted', 'escalated')
GROUP BY minute, router_id, tier, category
ORDER BY minute, router_id, tier, category;

DROP VIEW IF EXISTS escalation_series_step;
CREATE VIEW escalation_series_step AS
SELECT
    bucket                                                       AS minute,
    router_id,
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
    SELECT toDateTime(intDiv(toUnixTimestamp(hour), step) * step, 'UTC') AS bucket, router_id, tier, category, outcome,
           attempts AS n
    FROM attempt_hour
    WHERE step % 3600 = 0 AND hour >= h0 AND hour < h1 AND outcome IN ('accepted', 'escalated')
    UNION ALL
    WITH toStartOfMinute(parseDateTimeBestEffort({since:String}, 'UTC') + 59) AS s,
         toStartOfMinute(parseDateTimeBestEffort({until:String}, 'UTC') + 59) AS u,
         toStartOfHour(s + 3540) AS h0, toStartOfHour(u) AS h1, greatest({step_minutes:UInt32}, 1) * 60 AS step
    SELECT toDateTime(intDiv(toUnixTimestamp(minute), step) * step, 'UTC') AS bucket, router_id, tier, category, outcome,
           attempts AS n
    FROM attempt_minute
    WHERE minute >= s AND minute < u AND NOT (step % 3600 = 0 AND minute >= h0 AND minute < h1)
      AND outcome IN ('accepted', 'escalated')
)
GROUP BY minute, router_id, tier, category
ORDER BY minute, router_id, tier, category;
