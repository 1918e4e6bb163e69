-- Back to the figure views of 0004 over the minute rollups, then drop the hour and day levels.
DROP VIEW IF EXISTS escalation_series_step;
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
FROM attempt_minute AS m
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
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
FROM attempt_minute AS m
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
  AND outcome = 'escalated'
GROUP BY tier, category, escalation_reason
ORDER BY tier, escalations DESC;

DROP VIEW IF EXISTS failure_modes;
CREATE VIEW failure_modes AS
WITH tier_attempts AS
(
    SELECT tier, sumIf(m.attempts, outcome != 'shadow') AS served_path_attempts
    FROM attempt_minute AS m
    WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
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
    FROM attempt_minute AS m
    WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
      AND outcome = 'failed'
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
FROM request_minute AS r
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
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
FROM request_minute AS r
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
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
FROM request_minute AS r
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
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
FROM request_minute AS r
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
  AND experiment_id != ''
GROUP BY experiment_id, experiment_variant, slice
ORDER BY experiment_id, experiment_variant, slice;

DROP VIEW IF EXISTS experiment_mix;
CREATE VIEW experiment_mix AS
SELECT
    experiment_id,
    experiment_variant,
    if(served, final_tier, '(not served)')                       AS final_tier,
    sum(r.requests)                                                AS requests
FROM request_minute AS r
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
  AND experiment_id != ''
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
FROM tenant_minute AS t
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
GROUP BY tenant
ORDER BY cost_usd DESC;

DROP VIEW IF EXISTS tenant_rollup;
DROP VIEW IF EXISTS request_rollup;
DROP VIEW IF EXISTS attempt_rollup;
DROP VIEW IF EXISTS tenant_day_mv;
DROP VIEW IF EXISTS tenant_hour_mv;
DROP TABLE IF EXISTS tenant_day;
DROP TABLE IF EXISTS tenant_hour;
DROP VIEW IF EXISTS request_day_mv;
DROP VIEW IF EXISTS request_hour_mv;
DROP TABLE IF EXISTS request_day;
DROP TABLE IF EXISTS request_hour;
DROP VIEW IF EXISTS attempt_day_mv;
DROP VIEW IF EXISTS attempt_hour_mv;
DROP TABLE IF EXISTS attempt_day;
DROP TABLE IF EXISTS attempt_hour;
