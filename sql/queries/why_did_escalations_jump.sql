-- Why did escalations jump? Escalation rate per tier x category x reason in the
-- last {recent_minutes} minutes against the {baseline_minutes} minutes before,
-- biggest increase first. A jump confined to one reason at one tier usually
-- means a broken gate or verifier; a jump spread over reasons means the
-- traffic (or the cheap tier) changed.
-- Parameters: recent_minutes (e.g. 15), baseline_minutes (e.g. 120).
-- Each window is read through attempt_rollup (whole days and hours from the
-- coarser rollups, the edges from the minute rollup).
WITH
    now() - toIntervalMinute({recent_minutes:UInt32}) AS recent_start,
    recent_start - toIntervalMinute({baseline_minutes:UInt32}) AS baseline_start
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
    FROM attempt_rollup(since = toString(recent_start, 'UTC'), until = '2100-01-01 00:00:00')
    WHERE outcome IN ('accepted', 'escalated')
    UNION ALL
    SELECT tier, category, outcome, escalation_reason, attempts, false AS recent
    FROM attempt_rollup(since = toString(baseline_start, 'UTC'), until = toString(recent_start, 'UTC'))
    WHERE outcome IN ('accepted', 'escalated')
) AS m
GROUP BY tier, category
ORDER BY delta DESC NULLS LAST
