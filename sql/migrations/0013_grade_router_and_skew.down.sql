-- Back to 0012's resolve_grades and 0004's graded_attempts (grades matched by request_id alone).
-- resolved_grades keeps the rows resolved by 0013's rule (each grade on its own router); grades
-- stored after the revert are resolved by the old rule again.
DROP VIEW IF EXISTS ambiguous_grades;

CREATE OR REPLACE VIEW resolve_grades AS
SELECT
    f.event_id AS grade_event_id, f.request_id AS request_id, a.occurred_at AS occurred_at, f.occurred_at AS graded_at,
    now64(3) AS resolved_at, a.router_id AS router_id, a.category AS category, a.experiment_id AS experiment_id,
    a.experiment_variant AS experiment_variant, a.attempt_index AS attempt_index, a.tier AS tier, a.tier_rank AS tier_rank,
    a.outcome AS outcome, a.gate_kind AS gate_kind, a.gate_score AS gate_score, a.gate_threshold AS gate_threshold,
    a.gate_passed AS gate_passed, f.target AS target, f.score AS grade_score, f.passed AS grade_passed,
    f.source AS grade_source
FROM
(
    SELECT event_id, request_id, occurred_at, target, score, passed, source, attempt_index
    FROM feedback
    WHERE event_id IN (SELECT toUUID(arrayJoin(splitByChar(',', {ids:String}))))
    LIMIT 1 BY event_id
) AS f
INNER JOIN
(
    SELECT request_id, occurred_at, attempt_index, router_id, category, experiment_id, experiment_variant, tier,
           tier_rank, outcome, gate_kind, gate_score, gate_threshold, gate_passed
    FROM attempts
    WHERE canary_id = ''
      -- The graded requests' decisions, found by the request_id bloom filter, then their attempts
      -- by the sorting key: no scan of the attempts' request ids.
      AND (toStartOfMinute(occurred_at), event_id) IN (
          SELECT toStartOfMinute(occurred_at), event_id FROM decisions
          WHERE request_id IN (SELECT request_id FROM feedback WHERE event_id IN (SELECT toUUID(arrayJoin(splitByChar(',', {ids:String}))))))
    LIMIT 1 BY request_id, attempt_index
) AS a ON a.request_id = f.request_id
WHERE (f.target = 'served' AND a.outcome = 'accepted' AND (f.attempt_index IS NULL OR f.attempt_index = a.attempt_index))
   OR (f.target != 'served' AND f.attempt_index = a.attempt_index);

CREATE OR REPLACE VIEW graded_attempts AS
SELECT
    a.occurred_at                  AS occurred_at,
    a.request_id                   AS request_id,
    a.router_id                    AS router_id,
    a.category                     AS category,
    a.experiment_id                AS experiment_id,
    a.experiment_variant           AS experiment_variant,
    a.attempt_index                AS attempt_index,
    a.tier                         AS tier,
    a.tier_rank                    AS tier_rank,
    a.outcome                      AS outcome,
    a.gate_kind                    AS gate_kind,
    a.gate_score                   AS gate_score,
    a.gate_threshold               AS gate_threshold,
    a.gate_passed                  AS gate_passed,
    f.target                       AS target,
    f.score                        AS grade_score,
    f.passed                       AS grade_passed,
    f.source                       AS grade_source
FROM request_attempts AS a
INNER JOIN
(
    -- A served grade without attempt_index is about the accepted attempt.
    SELECT request_id, target, score, passed, source, attempt_index
    FROM feedback FINAL
) AS f
ON a.request_id = f.request_id
WHERE (f.target = 'served' AND a.outcome = 'accepted' AND (f.attempt_index IS NULL OR f.attempt_index = a.attempt_index))
   OR (f.target != 'served' AND f.attempt_index = a.attempt_index);
