-- Back to the hour key of 0001 (the same copy-and-exchange: stop ingest while it runs).

DROP TABLE IF EXISTS decisions_rekey;
CREATE TABLE decisions_rekey AS decisions
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id);
INSERT INTO decisions_rekey SELECT * FROM decisions;
EXCHANGE TABLES decisions AND decisions_rekey;
DROP TABLE decisions_rekey;

DROP TABLE IF EXISTS attempts_rekey;
CREATE TABLE attempts_rekey AS attempts
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id, attempt_index);
INSERT INTO attempts_rekey SELECT * FROM attempts;
EXCHANGE TABLES attempts AND attempts_rekey;
DROP TABLE attempts_rekey;

DROP TABLE IF EXISTS feedback_rekey;
CREATE TABLE feedback_rekey AS feedback
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id);
INSERT INTO feedback_rekey SELECT * FROM feedback;
EXCHANGE TABLES feedback AND feedback_rekey;
DROP TABLE feedback_rekey;

DROP TABLE IF EXISTS canary_results_rekey;
CREATE TABLE canary_results_rekey AS canary_results
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toStartOfHour(occurred_at), event_id);
INSERT INTO canary_results_rekey SELECT * FROM canary_results;
EXCHANGE TABLES canary_results AND canary_results_rekey;
DROP TABLE canary_results_rekey;

-- resolve_grades as 0011 made it, for the hour key.
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
      AND (toStartOfHour(occurred_at), event_id) IN (
          SELECT toStartOfHour(occurred_at), event_id FROM decisions
          WHERE request_id IN (SELECT request_id FROM feedback WHERE event_id IN (SELECT toUUID(arrayJoin(splitByChar(',', {ids:String}))))))
    LIMIT 1 BY request_id, attempt_index
) AS a ON a.request_id = f.request_id
WHERE (f.target = 'served' AND a.outcome = 'accepted' AND (f.attempt_index IS NULL OR f.attempt_index = a.attempt_index))
   OR (f.target != 'served' AND f.attempt_index = a.attempt_index);
