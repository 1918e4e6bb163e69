-- Why did escalations jump? Escalation rate per tier x category x reason in the
-- last {recent_minutes} minutes against the {baseline_minutes} minutes before,
-- biggest increase first. A jump confined to one reason at one tier usually
-- means a broken gate or verifier; a jump spread over reasons means the
-- traffic (or the cheap tier) changed.
-- Parameters: recent_minutes (e.g. 15), baseline_minutes (e.g. 120).
WITH
    now() - toIntervalMinute({recent_minutes:UInt32}) AS recent_start,
    recent_start - toIntervalMinute({baseline_minutes:UInt32}) AS baseline_start
SELECT
    tier,
    category,
    sumIf(m.attempts, outcome = 'escalated' AND minute >= recent_start)
        / nullIf(sumIf(m.attempts, outcome IN ('accepted', 'escalated') AND minute >= recent_start), 0)   AS recent_rate,
    sumIf(m.attempts, outcome = 'escalated' AND minute < recent_start)
        / nullIf(sumIf(m.attempts, outcome IN ('accepted', 'escalated') AND minute < recent_start), 0)    AS baseline_rate,
    recent_rate - baseline_rate                                                                             AS delta,
    topKWeightedIf(1)(escalation_reason, toUInt64(m.attempts), outcome = 'escalated' AND minute >= recent_start)[1] AS top_recent_reason,
    sumIf(m.attempts, outcome IN ('accepted', 'escalated') AND minute >= recent_start)                     AS recent_gated_attempts
FROM attempt_minute AS m
WHERE minute >= baseline_start AND outcome IN ('accepted', 'escalated')
GROUP BY tier, category
ORDER BY delta DESC NULLS LAST
