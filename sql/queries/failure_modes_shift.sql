-- Did the failure modes shift? Failure rate per tier and mode in a window
-- against the baseline window before it. Failures are
-- reliability events (timeouts, 429s, 5xx...), never pooled across tiers.
-- Parameters: since, until (DateTime, UTC): the window [since, until) looked at;
--   baseline_since (DateTime, UTC): the baseline is [baseline_since, since). The
--   cookbook command's default baseline is the window of the same length before since.
--   routerwatch cookbook failure_modes_shift --since 2026-12-07T10:00 --until 2026-12-07T11:00
-- Each window is read through attempt_rollup (whole days and hours from the
-- coarser rollups, the edges from the minute rollup).
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
        FROM attempt_rollup(since = toString({since:DateTime('UTC')}), until = toString({until:DateTime('UTC')}))
        UNION ALL
        SELECT tier, failure_mode, outcome, attempts, false AS recent
        FROM attempt_rollup(since = toString({baseline_since:DateTime('UTC')}), until = toString({since:DateTime('UTC')}))
    ) AS m
    GROUP BY tier, failure_mode
)
WHERE recent_failures + baseline_failures > 0
ORDER BY (ifNull(recent_rate, 0) - ifNull(baseline_rate, 0)) DESC
