-- Did the failure modes shift? Failure rate per tier and mode, last
-- {recent_minutes} minutes against the {baseline_minutes} before. Failures are
-- reliability events (timeouts, 429s, 5xx...), never pooled across tiers.
-- Parameters: recent_minutes, baseline_minutes.
WITH
    now() - toIntervalMinute({recent_minutes:UInt32}) AS recent_start,
    recent_start - toIntervalMinute({baseline_minutes:UInt32}) AS baseline_start
SELECT
    tier,
    failure_mode,
    sumIf(m.attempts, minute >= recent_start)                                          AS recent_failures,
    recent_failures / nullIf(any(recent_total), 0)                                     AS recent_rate,
    sumIf(m.attempts, minute < recent_start) / nullIf(any(baseline_total), 0)          AS baseline_rate
FROM attempt_minute AS m
INNER JOIN
(
    SELECT tier,
           sumIf(attempts, minute >= recent_start AND outcome != 'shadow') AS recent_total,
           sumIf(attempts, minute < recent_start AND outcome != 'shadow')  AS baseline_total
    FROM attempt_minute
    WHERE minute >= baseline_start
    GROUP BY tier
) AS totals USING (tier)
WHERE minute >= baseline_start AND outcome = 'failed'
GROUP BY tier, failure_mode
ORDER BY (ifNull(recent_rate, 0) - ifNull(baseline_rate, 0)) DESC
