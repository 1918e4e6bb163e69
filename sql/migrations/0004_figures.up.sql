-- Named, parameterised views: every per-tier figure over any time range.
-- Call them like tables with arguments, e.g.
--   SELECT * FROM tier_scoreboard(since = '2026-11-22 00:00:00', until = '2026-11-23 00:00:00', by = 'category')
-- since/until accept any ISO-like UTC time; `by` is '' (none), 'category', 'variant', 'router' or 'environment'.
-- Quantiles are t-digest estimates merged over the range (see README, "Quantiles").

CREATE VIEW IF NOT EXISTS tier_scoreboard AS
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

CREATE VIEW IF NOT EXISTS escalation_series AS
SELECT
    minute,
    tier,
    category,
    sumIf(m.attempts, outcome = 'escalated')                       AS escalated,
    sumIf(m.attempts, outcome = 'accepted')                        AS accepted,
    escalated / nullIf(escalated + accepted, 0)                  AS escalation_rate
FROM attempt_minute AS m
WHERE minute >= parseDateTimeBestEffort({since:String}, 'UTC') AND minute < parseDateTimeBestEffort({until:String}, 'UTC')
  AND outcome IN ('accepted', 'escalated')
GROUP BY minute, tier, category
ORDER BY minute, tier, category;

CREATE VIEW IF NOT EXISTS escalation_reasons AS
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

CREATE VIEW IF NOT EXISTS failure_modes AS
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

CREATE VIEW IF NOT EXISTS request_latency AS
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

CREATE VIEW IF NOT EXISTS routing_mix AS
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

CREATE VIEW IF NOT EXISTS cost_summary AS
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

CREATE VIEW IF NOT EXISTS experiment_slices AS
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

CREATE VIEW IF NOT EXISTS experiment_mix AS
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

CREATE VIEW IF NOT EXISTS tenant_scoreboard AS
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

-- Grades joined to their request at query time, so a late grade counts in the minute of its request.
CREATE VIEW IF NOT EXISTS graded_attempts AS
SELECT
    a.occurred_at                  AS occurred_at,
    a.request_id                   AS request_id,
    a.router_id                    AS router_id,
    a.category                     AS category,
    a.experiment_id                AS experiment_id,
    a.experiment_variant           AS experiment_variant,
    a.attempt_index                AS attempt_index,
    a.tier                         AS tier,
    a.tier_rank                    AS tier_rank,
    a.outcome                      AS outcome,
    a.gate_kind                    AS gate_kind,
    a.gate_score                   AS gate_score,
    a.gate_threshold               AS gate_threshold,
    a.gate_passed                  AS gate_passed,
    f.target                       AS target,
    f.score                        AS grade_score,
    f.passed                       AS grade_passed,
    f.source                       AS grade_source
FROM request_attempts AS a
INNER JOIN
(
    -- A served grade without attempt_index is about the accepted attempt.
    SELECT request_id, target, score, passed, source, attempt_index
    FROM feedback FINAL
) AS f
ON a.request_id = f.request_id
WHERE (f.target = 'served' AND a.outcome = 'accepted' AND (f.attempt_index IS NULL OR f.attempt_index = a.attempt_index))
   OR (f.target != 'served' AND f.attempt_index = a.attempt_index);

CREATE VIEW IF NOT EXISTS quality_by_tier AS
SELECT
    multiIf({by:String} = 'category', category, {by:String} = 'variant', concat(experiment_id, '/', experiment_variant),
            {by:String} = 'router', router_id, '') AS segment,
    tier,
    -- served: grades of answers users got; shadow: the tier's would-be answers on forced traffic.
    target,
    count()                        AS graded,
    avg(grade_passed)              AS pass_rate,
    avg(grade_score)               AS mean_score
FROM graded_attempts
WHERE occurred_at >= parseDateTimeBestEffort({since:String}, 'UTC') AND occurred_at < parseDateTimeBestEffort({until:String}, 'UTC')
GROUP BY segment, tier, target
ORDER BY segment, tier, target;

CREATE VIEW IF NOT EXISTS gate_calibration AS
SELECT
    tier,
    gate_kind,
    floor(gate_score * 10) / 10    AS score_bucket,
    count()                        AS graded,
    avg(grade_passed)              AS accuracy,
    countIf(gate_passed AND NOT grade_passed)      AS false_accepts,
    countIf(NOT gate_passed AND grade_passed)      AS false_escalates,
    countIf(gate_passed)                           AS gate_passed_n,
    countIf(NOT gate_passed)                       AS gate_rejected_n
FROM graded_attempts
WHERE occurred_at >= parseDateTimeBestEffort({since:String}, 'UTC') AND occurred_at < parseDateTimeBestEffort({until:String}, 'UTC')
  AND gate_kind != '' AND gate_score IS NOT NULL
GROUP BY tier, gate_kind, score_bucket
ORDER BY tier, gate_kind, score_bucket;

CREATE VIEW IF NOT EXISTS pipeline_health AS
SELECT
    toStartOfMinute(ingested_at)                                 AS minute,
    count()                                                      AS requests_stored,
    count() / 60                                                 AS events_per_second,
    quantiles(0.5, 0.99)(dateDiff('millisecond', occurred_at, ingested_at)) AS ingest_delay_ms
FROM decisions
WHERE ingested_at >= parseDateTimeBestEffort({since:String}, 'UTC') AND ingested_at < parseDateTimeBestEffort({until:String}, 'UTC')
GROUP BY minute
ORDER BY minute;

CREATE VIEW IF NOT EXISTS dead_letter_counts AS
SELECT topic, reason, count() AS messages, max(received_at) AS last_received_at
FROM dead_letters FINAL
WHERE received_at >= parseDateTimeBestEffort({since:String}, 'UTC') AND received_at < parseDateTimeBestEffort({until:String}, 'UTC')
GROUP BY topic, reason
ORDER BY messages DESC;
