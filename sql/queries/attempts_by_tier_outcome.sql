-- Attempts per tier and outcome, with the escalation rate of each tier.
-- Escalation rate = escalated / (accepted + escalated): shadow attempts and
-- failures (reliability, not quality) are outside it by definition.
-- All stored traffic, read from the daily rollup (every rollup level holds all of
-- it): the counts of request_attempts without scanning every attempt.
SELECT
    tier,
    tier_rank,
    sum(m.attempts)                              AS attempts,
    sumIf(m.attempts, outcome = 'accepted')      AS accepted,
    sumIf(m.attempts, outcome = 'escalated')     AS escalated,
    sumIf(m.attempts, outcome = 'failed')        AS failed,
    sumIf(m.attempts, outcome = 'shadow')        AS shadow,
    round(escalated / nullIf(accepted + escalated, 0), 4) AS escalation_rate
FROM attempt_day AS m
GROUP BY tier, tier_rank
ORDER BY tier_rank, tier
