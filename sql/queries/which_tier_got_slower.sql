-- Which tier got slower? Terminal (accepted) and passthrough (escalated) p95
-- per tier in a window against the baseline window before it.
-- Read the two populations separately: a slower verifier shows in passthrough
-- only; a slower model in both.
-- Parameters: since, until (DateTime, UTC): the window [since, until) looked at;
--   baseline_since (DateTime, UTC): the baseline is [baseline_since, since). The
--   cookbook command's default baseline is the window of the same length before since.
--   routerwatch cookbook which_tier_got_slower --since 2026-12-07T10:00 --until 2026-12-07T11:00 --baseline-since 2026-12-06T10:00
-- Each window is read through attempt_rollup (whole days and hours from the
-- coarser rollups, the edges from the minute rollup).
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
    FROM attempt_rollup(since = toString({since:DateTime('UTC')}), until = toString({until:DateTime('UTC')}))
    WHERE outcome IN ('accepted', 'escalated')
    UNION ALL
    SELECT tier, outcome, latency_q, false AS recent
    FROM attempt_rollup(since = toString({baseline_since:DateTime('UTC')}), until = toString({since:DateTime('UTC')}))
    WHERE outcome IN ('accepted', 'escalated')
) AS m
GROUP BY tier
ORDER BY greatest(ifNull(terminal_ratio, 0), ifNull(passthrough_ratio, 0)) DESC
