-- Back to 0010's graded_summary (grades joined to the range's attempts at query time).
CREATE OR REPLACE VIEW graded_summary AS
SELECT
    multiIf(grouping(target) = 0, 'quality', grouping(score_bucket) = 0, 'gate_calibration', 'gate_scores') AS section,
    segment, tier, target, gate_kind, score_bucket, score,
    count()                                        AS graded,
    avg(grade_passed)                              AS pass_rate,
    avg(grade_score)                               AS mean_score,
    countIf(grade_passed)                          AS correct,
    countIf(gate_passed AND NOT grade_passed)      AS false_accepts,
    countIf(NOT gate_passed AND grade_passed)      AS false_escalates,
    countIf(gate_passed)                           AS gate_passed_n,
    countIf(NOT gate_passed)                       AS gate_rejected_n
FROM
(
    SELECT
        multiIf({by:String} = 'category', a.category, {by:String} = 'variant', concat(a.experiment_id, '/', a.experiment_variant),
                {by:String} = 'router', a.router_id, '') AS segment,
        a.tier AS tier, f.target AS target, a.gate_kind AS gate_kind,
        floor(a.gate_score * 10) / 10 AS score_bucket, round(a.gate_score, 2) AS score,
        a.gate_passed AS gate_passed, f.passed AS grade_passed, f.score AS grade_score
    FROM
    (
        SELECT request_id, attempt_index, router_id, category, experiment_id, experiment_variant, tier, outcome,
               gate_kind, gate_score, gate_passed
        FROM attempts
        PREWHERE request_id IN (SELECT request_id FROM feedback)
        WHERE canary_id = ''
          AND occurred_at >= parseDateTimeBestEffort({since:String}, 'UTC') AND occurred_at < parseDateTimeBestEffort({until:String}, 'UTC')
        LIMIT 1 BY request_id, attempt_index
    ) AS a
    INNER JOIN (SELECT request_id, target, score, passed, attempt_index FROM feedback FINAL) AS f ON a.request_id = f.request_id
    WHERE (f.target = 'served' AND a.outcome = 'accepted' AND (f.attempt_index IS NULL OR f.attempt_index = a.attempt_index))
       OR (f.target != 'served' AND f.attempt_index = a.attempt_index)
)
GROUP BY GROUPING SETS ((segment, tier, target), (tier, gate_kind, score_bucket), (tier, gate_kind, score))
ORDER BY section, segment, tier, target, gate_kind, score_bucket, score;

DROP VIEW IF EXISTS resolve_grades;
DROP TABLE IF EXISTS resolved_grades;
