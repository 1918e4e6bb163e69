-- Where is the money going? Spend per minute and tier over the last
-- {minutes} minutes: model calls and verifier calls, with escalations beside
-- them. A broken verifier shows as verifier spend and escalations rising
-- together; compare with cost_summary(...) for the flagship counterfactual.
-- Parameters: minutes.
SELECT
    minute,
    tier,
    sumIf(m.cost_usd, outcome != 'shadow')        AS model_cost_usd,
    sumIf(m.verify_cost_usd, outcome != 'shadow') AS verify_cost_usd,
    sumIf(m.attempts, outcome = 'escalated')      AS escalated
FROM attempt_minute AS m
WHERE minute >= now() - toIntervalMinute({minutes:UInt32})
GROUP BY minute, tier
ORDER BY minute, tier
