-- Attempts per tier and outcome in a window, with the escalation rate of each tier.
-- Escalation rate = escalated / (accepted + escalated): shadow attempts and
-- failures (reliability, not quality) are outside it by definition.
-- Parameters: since, until (DateTime, UTC): the window [since, until).
--   routerwatch cookbook attempts_by_tier_outcome --since 2026-12-07T10:00 --until 2026-12-07T11:00
-- Read through attempt_rollup (whole days and hours from the coarser rollups, the
-- edges from the minute rollup): counts without scanning every attempt.
SELECT
    tier,
    tier_rank,
    sum(m.attempts)                              AS attempts,
    sumIf(m.attempts, outcome = 'accepted')      AS accepted,
    sumIf(m.attempts, outcome = 'escalated')     AS escalated,
    sumIf(m.attempts, outcome = 'failed')        AS failed,
    sumIf(m.attempts, outcome = 'shadow')        AS shadow,
    round(escalated / nullIf(accepted + escalated, 0), 4) AS escalation_rate
FROM attempt_rollup(since = toString({since:DateTime('UTC')}), until = toString({until:DateTime('UTC')})) AS m
GROUP BY tier, tier_rank
ORDER BY tier_rank, tier
