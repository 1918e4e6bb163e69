-- Why did escalations jump? Escalation rate per tier x category x reason in a
-- window against the baseline window before it, biggest increase first. A
-- jump confined to one reason at one tier usually means a broken gate or
-- verifier; a jump spread over reasons means the traffic (or the cheap tier)
-- changed.
-- Parameters: since, until (DateTime, UTC): the window [since, until) looked at;
--   baseline_since (DateTime, UTC): the baseline is [baseline_since, since). The
--   cookbook command's default baseline is the window of the same length before since.
--   routerwatch cookbook why_did_escalations_jump --since 2026-12-07T10:00 --until 2026-12-07T10:15 --baseline-since 2026-12-07T08:00
--   routerwatch cookbook why_did_escalations_jump --since 15m --baseline-since 120m
--     (the last 15 minutes against the 120 minutes before them)
-- Each window is read through attempt_rollup (whole days and hours from the
-- coarser rollups, the edges from the minute rollup).
SELECT
    tier,
    category,
    sumIf(m.attempts, outcome = 'escalated' AND recent)
        / nullIf(sumIf(m.attempts, recent), 0)                                                   AS recent_rate,
    sumIf(m.attempts, outcome = 'escalated' AND NOT recent)
        / nullIf(sumIf(m.attempts, NOT recent), 0)                                               AS baseline_rate,
    recent_rate - baseline_rate                                                                  AS delta,
    topKWeightedIf(1)(escalation_reason, toUInt64(m.attempts), outcome = 'escalated' AND recent)[1] AS top_recent_reason,
    sumIf(m.attempts, recent)                                                                    AS recent_gated_attempts
FROM
(
    SELECT tier, category, outcome, escalation_reason, attempts, true AS recent
    FROM attempt_rollup(since = toString({since:DateTime('UTC')}), until = toString({until:DateTime('UTC')}))
    WHERE outcome IN ('accepted', 'escalated')
    UNION ALL
    SELECT tier, category, outcome, escalation_reason, attempts, false AS recent
    FROM attempt_rollup(since = toString({baseline_since:DateTime('UTC')}), until = toString({since:DateTime('UTC')}))
    WHERE outcome IN ('accepted', 'escalated')
) AS m
GROUP BY tier, category
ORDER BY delta DESC NULLS LAST
