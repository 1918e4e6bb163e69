-- Are the canaries healthy? Per router, side of the routing boundary and canary
-- in a window: probes, probes without an answer, pass rate
-- and tier-flip rate (both over answered probes), the expected tier against the
-- tiers actually seen, and whether the latest probe was fine. Worst first.
-- A cheap-side canary flipping to the strong tier means the router over-escalates
-- (cost); a strong-side canary served by the cheap tier means it under-escalates
-- (quality). Probe traffic never counts in production figures: see
-- canary_decisions / canary_tier_traffic(...) for the probes' routing.
-- Parameters: since, until (DateTime, UTC): the window [since, until).
--   routerwatch cookbook canary_health --since 60m
SELECT
    router_id,
    side,
    canary_id,
    expected_tier,
    count()                                                         AS probes,
    countIf(error != '')                                            AS no_answer,
    countIf(error = '' AND ifNull(answer_passed, false)) / nullIf(countIf(error = ''), 0)      AS pass_rate,
    countIf(error = '' AND observed_tier != expected_tier) / nullIf(countIf(error = ''), 0)    AS tier_flip_rate,
    topKIf(3)(toString(observed_tier), error = '')                  AS observed_tiers,
    -- The newest probe: answered, passed and on the expected tier.
    argMax(error = '' AND ifNull(answer_passed, false) AND observed_tier = expected_tier, occurred_at) AS last_probe_ok,
    max(occurred_at)                                                AS last_probe_at,
    argMaxIf(error, occurred_at, error != '')                       AS last_error,
    argMaxIf(check_detail, occurred_at, error = '' AND NOT ifNull(answer_passed, true)) AS last_check_detail
FROM canary_results FINAL
WHERE occurred_at >= {since:DateTime('UTC')} AND occurred_at < {until:DateTime('UTC')}
GROUP BY router_id, side, canary_id, expected_tier
ORDER BY last_probe_ok, pass_rate NULLS FIRST, tier_flip_rate DESC NULLS FIRST, no_answer DESC, router_id, side, canary_id
