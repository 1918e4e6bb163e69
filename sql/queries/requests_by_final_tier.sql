-- Requests by the tier that served them (the routing mix), kept vs escalated.
-- A kept request was served by its entry tier with no escalation.
SELECT
    if(served, final_tier, '(not served)')          AS final_tier,
    count()                                         AS requests,
    round(count() / sum(count()) OVER (), 4)        AS share,
    countIf(served AND escalation_count = 0 AND final_tier = entry_tier) AS kept,
    countIf(escalation_count > 0)                   AS escalated,
    round(sum(cost_usd), 6)                         AS cost_usd
FROM requests
GROUP BY final_tier, served
ORDER BY min(final_tier_rank), final_tier
