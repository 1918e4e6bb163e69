-- Grades resolve to the decision of their own router, whatever their clock says.
--
-- 0011/0012's resolve_grades matched a grade to attempts by request_id alone and kept one attempt
-- per (request_id, attempt_index): when two routers used the same request id, a grade landed on
-- whichever router's attempt survived LIMIT BY (the wrong one half of the time), or on both after
-- a redelivery. The grade's router_id was stored and ignored. graded_attempts (0004, read by
-- quality_by_tier, gate_calibration and the drift scheduler) ignored it too, so a grade could count
-- on both routers there.
--
-- The rule, the same here, in graded_attempts and in the sink (services/routerwatch/ingest/sink.py):
--   * a grade that carries router_id is about the decision of that router with that request_id,
--     and nothing else;
--   * a grade without router_id (the SDK always sets it; other producers may not) is about the
--     decision with that request_id when exactly one router recorded one. When several routers
--     did, the grade is ambiguous: it resolves to none of them, and `ambiguous_grades` lists it.
--     Counting it on every router would count one judgement of one answer several times, on
--     answers it never saw; picking one would be a guess. Resolved to nothing, it stays visible
--     (feedback, ambiguous_grades) and no figure is wrong because of it.
-- No view compares the grade's time with its request's: a grade may be stamped before its request
-- (grader and router clocks differ; a user rates a streamed answer before the router records the
-- decision). The sink's lookup of grades stored before their decision allows for that with a
-- clock-skew tolerance of 10 minutes (ClickHouseSink._resolve_early_grades).
--
-- The existing resolved_grades rows were made by the old rule: they are rebuilt from feedback
-- below (one scan of the graded requests' attempts, as 0011's backfill). Run it with ingest
-- stopped, or grades resolved during the rebuild may be missing until they are resolved again.

-- The rows of resolved_grades for the grades whose event ids are in `ids` (comma-separated UUIDs)
-- and whose attempt is stored:
--   INSERT INTO resolved_grades SELECT * FROM resolve_grades(ids = '<uuid>,<uuid>')
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
    SELECT event_id, request_id, router_id AS grade_router_id, occurred_at, target, score, passed, source, attempt_index
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
    -- Per router: two routers' attempts under one request id are two attempts.
    LIMIT 1 BY router_id, request_id, attempt_index
) AS a ON a.request_id = f.request_id
LEFT JOIN
(
    -- How many routers recorded each request id that a grade without router_id names.
    SELECT request_id, uniqExact(router_id) AS routers
    FROM decisions
    WHERE canary_id = ''
      AND request_id IN (SELECT request_id FROM feedback
                         WHERE event_id IN (SELECT toUUID(arrayJoin(splitByChar(',', {ids:String})))) AND router_id = '')
    GROUP BY request_id
) AS n ON n.request_id = f.request_id
WHERE (f.grade_router_id = a.router_id OR (f.grade_router_id = '' AND n.routers = 1))
  AND ((f.target = 'served' AND a.outcome = 'accepted' AND (f.attempt_index IS NULL OR f.attempt_index = a.attempt_index))
       OR (f.target != 'served' AND f.attempt_index = a.attempt_index));

-- The grades among `ids` that carry no router_id and whose request id was recorded by several
-- routers: resolved to none (see above). The sink asks after each resolve and removes any row such
-- a grade got while only one router's decision was stored. All ambiguous grades, for on-call:
--   SELECT * FROM feedback WHERE router_id = '' AND request_id IN (SELECT request_id FROM requests
--   WHERE request_id IN (SELECT request_id FROM feedback WHERE router_id = '') GROUP BY request_id
--   HAVING uniqExact(router_id) > 1)
CREATE VIEW IF NOT EXISTS ambiguous_grades AS
SELECT event_id AS grade_event_id, request_id, occurred_at AS graded_at
FROM feedback
WHERE event_id IN (SELECT toUUID(arrayJoin(splitByChar(',', {ids:String}))))
  AND router_id = ''
  AND request_id IN (
      SELECT request_id FROM decisions
      WHERE canary_id = ''
        AND request_id IN (SELECT request_id FROM feedback
                           WHERE event_id IN (SELECT toUUID(arrayJoin(splitByChar(',', {ids:String})))) AND router_id = '')
      GROUP BY request_id
      HAVING uniqExact(router_id) > 1)
LIMIT 1 BY event_id;

-- Grades joined to their request at query time (0004's graded_attempts, same columns), by the rule
-- above: quality_by_tier, gate_calibration and the report's sections (resolved_grades) agree.
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
    SELECT request_id, router_id AS grade_router_id, target, score, passed, source, attempt_index
    FROM feedback FINAL
) AS f
ON a.request_id = f.request_id
LEFT JOIN
(
    SELECT request_id, uniqExact(router_id) AS routers
    FROM requests
    WHERE request_id IN (SELECT request_id FROM feedback WHERE router_id = '')
    GROUP BY request_id
) AS n
ON n.request_id = f.request_id
WHERE (f.grade_router_id = a.router_id OR (f.grade_router_id = '' AND n.routers = 1))
  AND ((f.target = 'served' AND a.outcome = 'accepted' AND (f.attempt_index IS NULL OR f.attempt_index = a.attempt_index))
       OR (f.target != 'served' AND f.attempt_index = a.attempt_index));

-- Rebuild resolved_grades by the new rule: grades lost (stamped before their request and stored
-- before their decision) are found, grades on the wrong router or on two routers are corrected.
TRUNCATE TABLE IF EXISTS resolved_grades;

INSERT INTO resolved_grades
SELECT
    f.event_id AS grade_event_id, f.request_id AS request_id, a.occurred_at AS occurred_at, f.occurred_at AS graded_at,
    now64(3) AS resolved_at, a.router_id AS router_id, a.category AS category, a.experiment_id AS experiment_id,
    a.experiment_variant AS experiment_variant, a.attempt_index AS attempt_index, a.tier AS tier, a.tier_rank AS tier_rank,
    a.outcome AS outcome, a.gate_kind AS gate_kind, a.gate_score AS gate_score, a.gate_threshold AS gate_threshold,
    a.gate_passed AS gate_passed, f.target AS target, f.score AS grade_score, f.passed AS grade_passed,
    f.source AS grade_source
FROM
(
    SELECT event_id, request_id, router_id AS grade_router_id, occurred_at, target, score, passed, source, attempt_index
    FROM feedback
    LIMIT 1 BY event_id
) AS f
INNER JOIN
(
    SELECT request_id, occurred_at, attempt_index, router_id, category, experiment_id, experiment_variant, tier,
           tier_rank, outcome, gate_kind, gate_score, gate_threshold, gate_passed
    FROM attempts
    PREWHERE request_id IN (SELECT request_id FROM feedback)
    WHERE canary_id = ''
    LIMIT 1 BY router_id, request_id, attempt_index
) AS a ON a.request_id = f.request_id
LEFT JOIN
(
    SELECT request_id, uniqExact(router_id) AS routers
    FROM decisions
    WHERE canary_id = '' AND request_id IN (SELECT request_id FROM feedback WHERE router_id = '')
    GROUP BY request_id
) AS n ON n.request_id = f.request_id
WHERE (f.grade_router_id = a.router_id OR (f.grade_router_id = '' AND n.routers = 1))
  AND ((f.target = 'served' AND a.outcome = 'accepted' AND (f.attempt_index IS NULL OR f.attempt_index = a.attempt_index))
       OR (f.target != 'served' AND f.attempt_index = a.attempt_index));
