-- Canary figures: how the fixed canary queries fare on each side of the routing boundary.
-- Call the parameterised views like tables with arguments, e.g.
--   SELECT * FROM canary_scoreboard(since = '2026-11-22 00:00:00', until = '2026-11-23 00:00:00')
--   SELECT * FROM canary_series(since = '2026-11-22 00:00:00', until = '2026-11-23 00:00:00', step_minutes = 60)
-- since/until accept any ISO-like UTC time. Canary results are read raw (FINAL), not from a rollup:
-- probes are few, and exact counts and quantiles are cheap at that volume.
-- Vocabulary: a probe is answered when it has no error (the router gave a usable answer); pass and
-- tier-flip rates are over answered probes and NULL when none was answered, never NaN.
-- A tier flip is an answered probe whose observed tier is not the canary's expected tier.
-- Canary probes' own routing decisions stay out of every production figure (0002, 0003);
-- canary_decisions, canary_attempts and canary_tier_traffic are where they can be looked at.

CREATE VIEW IF NOT EXISTS canary_scoreboard AS
SELECT
    router_id,
    side,
    canary_id,
    category,
    expected_tier,
    count()                                                        AS probes,
    countIf(error = '')                                            AS answered,
    countIf(error != '')                                           AS no_answer,
    countIf(error = '' AND ifNull(answer_passed, false))           AS passed,
    passed / nullIf(answered, 0)                                   AS pass_rate,
    countIf(error = '' AND observed_tier != expected_tier)         AS tier_flips,
    tier_flips / nullIf(answered, 0)                               AS tier_flip_rate,
    -- Exact counts per observed tier. The mode breaks ties towards the expected tier, then the first
    -- name (map keys come sorted), so a 50/50 split never reads as a flip.
    CAST(sumMapIf([toString(observed_tier)], [toUInt64(1)], error = ''), 'Map(String, UInt64)') AS observed_tiers,
    multiIf(answered = 0, NULL,
            observed_tiers[toString(expected_tier)] = arrayMax(mapValues(observed_tiers)), toString(expected_tier),
            arrayElement(mapKeys(observed_tiers), indexOf(mapValues(observed_tiers), arrayMax(mapValues(observed_tiers)))))
                                                                   AS most_common_observed_tier,
    -- Answered probes that report a latency: the population of the latency quantiles.
    countIf(error = '' AND latency_ms IS NOT NULL)                 AS timed,
    -- quantileExact: the sorted value at index floor(level * n), so figures can be checked exactly.
    if(timed = 0, NULL, quantileExactIf(0.5)(assumeNotNull(latency_ms), error = '' AND latency_ms IS NOT NULL))  AS latency_p50_ms,
    if(timed = 0, NULL, quantileExactIf(0.95)(assumeNotNull(latency_ms), error = '' AND latency_ms IS NOT NULL)) AS latency_p95_ms,
    max(occurred_at)                                               AS last_probe_at,
    if(no_answer = 0, NULL, maxIf(occurred_at, error != ''))       AS last_error_at,
    argMaxIf(error, occurred_at, error != '')                      AS last_error,
    argMaxIf(check_detail, occurred_at, error = '' AND NOT ifNull(answer_passed, true)) AS last_check_detail
FROM canary_results FINAL
WHERE occurred_at >= parseDateTime64BestEffort({since:String}, 3, 'UTC')
  AND occurred_at < parseDateTime64BestEffort({until:String}, 3, 'UTC')
GROUP BY router_id, side, canary_id, category, expected_tier
ORDER BY router_id, side, canary_id, category, expected_tier;

CREATE VIEW IF NOT EXISTS canary_series AS
SELECT
    -- Buckets of step_minutes aligned on the Unix epoch (so 60 gives whole UTC hours).
    toDateTime(intDiv(toUnixTimestamp(occurred_at), greatest({step_minutes:UInt32}, 1) * 60) * greatest({step_minutes:UInt32}, 1) * 60, 'UTC')
                                                                   AS bucket,
    router_id,
    side,
    count()                                                        AS probes,
    countIf(error = '')                                            AS answered,
    countIf(error != '')                                           AS no_answer,
    countIf(error = '' AND ifNull(answer_passed, false))           AS passed,
    passed / nullIf(answered, 0)                                   AS pass_rate,
    countIf(error = '' AND observed_tier != expected_tier)         AS tier_flips,
    tier_flips / nullIf(answered, 0)                               AS tier_flip_rate
FROM canary_results FINAL
WHERE occurred_at >= parseDateTime64BestEffort({since:String}, 3, 'UTC')
  AND occurred_at < parseDateTime64BestEffort({until:String}, 3, 'UTC')
GROUP BY bucket, router_id, side
ORDER BY bucket, router_id, side;

-- The routing decisions and attempts of canary probes, which `requests` and `request_attempts` hide.
CREATE VIEW IF NOT EXISTS canary_decisions AS
SELECT * FROM decisions FINAL WHERE canary_id != '';

CREATE VIEW IF NOT EXISTS canary_attempts AS
SELECT * FROM attempts FINAL WHERE canary_id != '';

CREATE VIEW IF NOT EXISTS canary_tier_traffic AS
SELECT
    router_id,
    canary_id,
    if(served, final_tier, '(not served)')                         AS final_tier,
    min(final_tier_rank)                                           AS final_tier_rank,
    count()                                                        AS requests,
    requests / sum(count()) OVER (PARTITION BY router_id, canary_id) AS share,
    countIf(escalation_count > 0)                                  AS escalated,
    quantileExact(0.5)(latency_ms)                                 AS latency_p50_ms,
    sum(cost_usd)                                                  AS cost_usd
FROM canary_decisions
WHERE occurred_at >= parseDateTime64BestEffort({since:String}, 3, 'UTC')
  AND occurred_at < parseDateTime64BestEffort({until:String}, 3, 'UTC')
GROUP BY router_id, canary_id, final_tier
ORDER BY router_id, canary_id, final_tier_rank, final_tier;
