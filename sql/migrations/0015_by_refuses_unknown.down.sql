-- Back to the views as 0008, 0004 and 0011 left them: an unknown `by` reads as ''.

-- tier_scoreboard, as in 0008.
CREATE OR REPLACE VIEW tier_scoreboard AS
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

-- request_latency, as in 0008.
CREATE OR REPLACE VIEW request_latency AS
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

-- routing_mix, as in 0008.
CREATE OR REPLACE VIEW routing_mix AS
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

-- cost_summary, as in 0008.
CREATE OR REPLACE VIEW cost_summary AS
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

-- quality_by_tier, as in 0004.
CREATE OR REPLACE VIEW quality_by_tier AS
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

-- graded_summary, as in 0011.
CREATE OR REPLACE VIEW graded_summary AS
SELECT
    multiIf(grouping(target) = 0, 'quality', grouping(score_bucket) = 0, 'gate_calibration', 'gate_scores') AS section,
    segment, tier, target, gate_kind, score_bucket, score,
    count()                                        AS graded,
    avg(grade_passed)                              AS pass_rate,
    avg(grade_score)                               AS mean_score,
    countIf(grade_passed)                          AS correct,
    countIf(gate_passed AND NOT grade_passed)      AS false_accepts,
    countIf(NOT gate_passed AND grade_passed)      AS false_escalates,
    countIf(gate_passed)                           AS gate_passed_n,
    countIf(NOT gate_passed)                       AS gate_rejected_n
FROM
(
    SELECT
        multiIf({by:String} = 'category', category, {by:String} = 'variant', concat(experiment_id, '/', experiment_variant),
                {by:String} = 'router', router_id, '') AS segment,
        tier, target, gate_kind, floor(gate_score * 10) / 10 AS score_bucket, round(gate_score, 2) AS score,
        gate_passed, grade_passed, grade_score
    FROM resolved_grades FINAL
    WHERE occurred_at >= parseDateTimeBestEffort({since:String}, 'UTC') AND occurred_at < parseDateTimeBestEffort({until:String}, 'UTC')
)
GROUP BY GROUPING SETS ((segment, tier, target), (tier, gate_kind, score_bucket), (tier, gate_kind, score))
ORDER BY section, segment, tier, target, gate_kind, score_bucket, score;
