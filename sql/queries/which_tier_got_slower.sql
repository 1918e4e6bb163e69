-- Which tier got slower? Terminal (accepted) and passthrough (escalated) p95
-- per tier, last {recent_minutes} minutes against the {baseline_minutes} before.
-- Read the two populations separately: a slower verifier shows in passthrough
-- only; a slower model in both.
-- Parameters: recent_minutes, baseline_minutes.
-- Each window is read through attempt_rollup (whole days and hours from the
-- coarser rollups, the edges from the minute rollup).
WITH
    now() - toIntervalMinute({recent_minutes:UInt32}) AS recent_start,
    recent_start - toIntervalMinute({baseline_minutes:UInt32}) AS baseline_start
SELECT
    tier,
    quantilesTDigestMergeIf(0.95)(latency_q, outcome = 'accepted' AND recent)       [1]   AS terminal_p95_recent_ms,
    quantilesTDigestMergeIf(0.95)(latency_q, outcome = 'accepted' AND NOT recent)   [1]   AS terminal_p95_baseline_ms,
    quantilesTDigestMergeIf(0.95)(latency_q, outcome = 'escalated' AND recent)      [1]   AS passthrough_p95_recent_ms,
    quantilesTDigestMergeIf(0.95)(latency_q, outcome = 'escalated' AND NOT recent)  [1]   AS passthrough_p95_baseline_ms,
    terminal_p95_recent_ms / nullIf(terminal_p95_baseline_ms, 0)                           AS terminal_ratio,
    passthrough_p95_recent_ms / nullIf(passthrough_p95_baseline_ms, 0)                     AS passthrough_ratio
FROM
(
    SELECT tier, outcome, latency_q, true AS recent
    FROM attempt_rollup(since = toString(recent_start, 'UTC'), until = '2100-01-01 00:00:00')
    WHERE outcome IN ('accepted', 'escalated')
    UNION ALL
    SELECT tier, outcome, latency_q, false AS recent
    FROM attempt_rollup(since = toString(baseline_start, 'UTC'), until = toString(recent_start, 'UTC'))
    WHERE outcome IN ('accepted', 'escalated')
) AS m
GROUP BY tier
ORDER BY greatest(ifNull(terminal_ratio, 0), ifNull(passthrough_ratio, 0)) DESC
