-- Attempts per tier and outcome, with the escalation rate of each tier.
-- Escalation rate = escalated / (accepted + escalated): shadow attempts and
-- failures (reliability, not quality) are outside it by definition.
SELECT
    tier,
    tier_rank,
    count()                              AS attempts,
    countIf(outcome = 'accepted')        AS accepted,
    countIf(outcome = 'escalated')       AS escalated,
    countIf(outcome = 'failed')          AS failed,
    countIf(outcome = 'shadow')          AS shadow,
    round(escalated / nullIf(accepted + escalated, 0), 4) AS escalation_rate
FROM request_attempts
GROUP BY tier, tier_rank
ORDER BY tier_rank, tier
