-- Did the failure modes shift? Failure rate per tier and mode, last
-- {recent_minutes} minutes against the {baseline_minutes} before. Failures are
-- reliability events (timeouts, 429s, 5xx...), never pooled across tiers.
-- Parameters: recent_minutes, baseline_minutes.
-- Each window is read through attempt_rollup (whole days and hours from the
-- coarser rollups, the edges from the minute rollup).
WITH
    now() - toIntervalMinute({recent_minutes:UInt32}) AS recent_start,
    recent_start - toIntervalMinute({baseline_minutes:UInt32}) AS baseline_start
SELECT
    tier,
    failure_mode,
    recent_failures,
    recent_failures / nullIf(recent_total, 0)                                          AS recent_rate,
    baseline_failures / nullIf(baseline_total, 0)                                      AS baseline_rate
FROM
(
    SELECT
        tier,
        failure_mode,
        sumIf(m.attempts, recent AND outcome = 'failed')                               AS recent_failures,
        sumIf(m.attempts, NOT recent AND outcome = 'failed')                           AS baseline_failures,
        sum(sumIf(m.attempts, recent AND outcome != 'shadow')) OVER (PARTITION BY tier)     AS recent_total,
        sum(sumIf(m.attempts, NOT recent AND outcome != 'shadow')) OVER (PARTITION BY tier) AS baseline_total
    FROM
    (
        SELECT tier, failure_mode, outcome, attempts, true AS recent
        FROM attempt_rollup(since = toString(recent_start, 'UTC'), until = '2100-01-01 00:00:00')
        UNION ALL
        SELECT tier, failure_mode, outcome, attempts, false AS recent
        FROM attempt_rollup(since = toString(baseline_start, 'UTC'), until = toString(recent_start, 'UTC'))
    ) AS m
    GROUP BY tier, failure_mode
)
WHERE recent_failures + baseline_failures > 0
ORDER BY (ifNull(recent_rate, 0) - ifNull(baseline_rate, 0)) DESC
