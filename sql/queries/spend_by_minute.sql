-- Where is the money going? Spend per minute and tier in a window: model calls and verifier calls, with escalations beside
-- them. A broken verifier shows as verifier spend and escalations rising
-- together; compare with cost_summary(...) for the flagship counterfactual.
-- Parameters: since, until (DateTime, UTC): the window [since, until).
--   routerwatch cookbook spend_by_minute --since 2026-12-07T10:00 --until 2026-12-07T11:00
SELECT
    minute,
    tier,
    sumIf(m.cost_usd, outcome != 'shadow')        AS model_cost_usd,
    sumIf(m.verify_cost_usd, outcome != 'shadow') AS verify_cost_usd,
    sumIf(m.attempts, outcome = 'escalated')      AS escalated
FROM attempt_minute AS m
WHERE minute >= {since:DateTime('UTC')} AND minute < {until:DateTime('UTC')}
GROUP BY minute, tier
ORDER BY minute, tier
