-- Which tenant drives escalations (or spend)? Tenants over the last
-- {minutes} minutes whose escalation rate is furthest above the fleet's,
-- with their share of escalated spend. A tenant far above the fleet with
-- many requests may be probing the verifier.
-- Parameters: minutes.
WITH fleet AS
(
    SELECT sum(t.escalated_attempts) / nullIf(sum(t.escalated_attempts) + sum(t.accepted_attempts), 0) AS rate
    FROM tenant_rollup(since = toString(now() - toIntervalMinute({minutes:UInt32}), 'UTC'), until = '2100-01-01 00:00:00') AS t
)
SELECT
    tenant,
    sum(t.requests)                                                                        AS requests,
    sum(t.escalated_attempts) / nullIf(sum(t.escalated_attempts) + sum(t.accepted_attempts), 0) AS escalation_rate,
    (SELECT rate FROM fleet)                                                               AS fleet_rate,
    escalation_rate - fleet_rate                                                           AS excess,
    sum(t.cost_usd)                                                                        AS cost_usd
FROM tenant_rollup(since = toString(now() - toIntervalMinute({minutes:UInt32}), 'UTC'), until = '2100-01-01 00:00:00') AS t
GROUP BY tenant
HAVING requests >= 20
ORDER BY excess DESC, requests DESC
LIMIT 20
