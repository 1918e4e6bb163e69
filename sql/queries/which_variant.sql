-- Which variant is better, honestly? Per experiment variant in a window: the
-- routing mix and, within each slice (served by the
-- entry tier, escalated, shadow), requests, p95 latency and cost. Compare
-- variants slice by slice: pooled figures mix different shares of tiers.
-- Parameters: since, until (DateTime, UTC): the window [since, until).
--   routerwatch cookbook which_variant --since 24h
SELECT
    experiment_id,
    experiment_variant,
    multiIf(shadow, 'shadow', path = 'kept', 'entry_tier', path = 'escalated', 'escalated', 'other') AS slice,
    sum(r.requests)                                                        AS requests,
    requests / sum(sum(r.requests)) OVER (PARTITION BY experiment_id, experiment_variant) AS share,
    quantilesTDigestMerge(0.95)(latency_q)[1]                              AS p95_latency_ms,
    sum(r.cost_usd) / nullIf(requests, 0)                                  AS cost_per_request_usd
FROM request_rollup(since = toString({since:DateTime('UTC')}), until = toString({until:DateTime('UTC')})) AS r
WHERE experiment_id != ''
GROUP BY experiment_id, experiment_variant, slice
ORDER BY experiment_id, slice, experiment_variant
