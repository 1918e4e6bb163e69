-- Requests by the tier that served them (the routing mix), kept vs escalated.
-- A kept request was served by its entry tier with no escalation.
-- All stored traffic, read from the daily rollup (every rollup level holds all of
-- it): the counts of `requests` without scanning every request.
SELECT
    if(served, final_tier, '(not served)')            AS final_tier,
    sum(r.requests)                                   AS requests,
    round(requests / sum(sum(r.requests)) OVER (), 4) AS share,
    sumIf(r.requests, path = 'kept')                  AS kept,
    sumIf(r.requests, path = 'escalated')             AS escalated,
    round(sum(r.cost_usd), 6)                         AS cost_usd
FROM request_day AS r
GROUP BY final_tier, served
ORDER BY min(final_tier_rank), final_tier
