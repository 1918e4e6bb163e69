-- Requests by the tier that served them (the routing mix) in a window, kept vs
-- escalated. A kept request was served by its entry tier with no escalation.
-- Parameters: since, until (DateTime, UTC): the window [since, until).
--   routerwatch cookbook requests_by_final_tier --since 2026-12-07T10:00 --until 2026-12-07T11:00
-- Read through request_rollup (whole days and hours from the coarser rollups, the
-- edges from the minute rollup): counts without scanning every request.
SELECT
    if(served, final_tier, '(not served)')            AS final_tier,
    sum(r.requests)                                   AS requests,
    round(requests / sum(sum(r.requests)) OVER (), 4) AS share,
    sumIf(r.requests, path = 'kept')                  AS kept,
    sumIf(r.requests, path = 'escalated')             AS escalated,
    round(sum(r.cost_usd), 6)                         AS cost_usd
FROM request_rollup(since = toString({since:DateTime('UTC')}), until = toString({until:DateTime('UTC')})) AS r
GROUP BY final_tier, served
ORDER BY min(final_tier_rank), final_tier
