-- What did this request do? Every attempt of one request in order: tier,
-- model, provider, timing, gate decision, outcome and why, plus any grades.
-- Parameters: request_id (String).
--   routerwatch cookbook what_did_this_request_do --param request_id=req-0001
-- The decision is found through its request_id bloom filter; its minute and
-- event_id (the attempts' sorting key) then select the attempts' granules
-- instead of a scan of every attempt.
WITH d AS
(
    SELECT event_id, occurred_at, category, tenant, latency_ms, final_tier
    FROM decisions FINAL
    WHERE request_id = {request_id:String}
)
SELECT
    a.attempt_index,
    a.tier,
    a.model,
    a.provider,
    a.offset_ms,
    a.latency_ms,
    a.verify_latency_ms,
    a.outcome,
    a.gate_kind,
    a.gate_score,
    a.gate_threshold,
    a.escalation_reason,
    a.failure_mode,
    a.cost_usd + a.verify_cost_usd AS cost_usd,
    d.category                      AS category,
    d.tenant                        AS tenant,
    d.latency_ms                    AS request_latency_ms,
    d.final_tier                    AS final_tier,
    (SELECT groupArray((target, passed, score)) FROM feedback FINAL WHERE request_id = {request_id:String}) AS grades
FROM attempts AS a FINAL
INNER JOIN d USING (event_id)
WHERE a.request_id = {request_id:String}
  AND (toStartOfMinute(a.occurred_at), a.event_id) IN (SELECT toStartOfMinute(occurred_at), event_id FROM d)
ORDER BY a.attempt_index
