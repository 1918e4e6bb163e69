-- Which tenant drives escalations (or spend)? Tenants in a window whose
-- escalation rate is furthest above the fleet's,
-- with their share of escalated spend. A tenant far above the fleet with
-- many requests may be probing the verifier.
-- Parameters: since, until (DateTime, UTC): the window [since, until).
--   routerwatch cookbook which_tenant_drives_escalations --since 2026-12-07T10:00 --until 2026-12-07T11:00
WITH fleet AS
(
    SELECT sum(t.escalated_attempts) / nullIf(sum(t.escalated_attempts) + sum(t.accepted_attempts), 0) AS rate
    FROM tenant_rollup(since = toString({since:DateTime('UTC')}), until = toString({until:DateTime('UTC')})) AS t
)
SELECT
    tenant,
    sum(t.requests)                                                                        AS requests,
    sum(t.escalated_attempts) / nullIf(sum(t.escalated_attempts) + sum(t.accepted_attempts), 0) AS escalation_rate,
    (SELECT rate FROM fleet)                                                               AS fleet_rate,
    escalation_rate - fleet_rate                                                           AS excess,
    sum(t.cost_usd)                                                                        AS cost_usd
FROM tenant_rollup(since = toString({since:DateTime('UTC')}), until = toString({until:DateTime('UTC')})) AS t
GROUP BY tenant
HAVING requests >= 20
ORDER BY excess DESC, requests DESC
LIMIT 20
