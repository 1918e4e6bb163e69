-- What is being rejected at the door? Dead-lettered messages received in a
-- window, by source topic and reason, with one example detail.
-- The original bytes are on the DLQ topic at the stored partition/offset
-- (`routerwatch dlq`).
-- Parameters: since, until (DateTime, UTC): the window [since, until) of received_at.
--   routerwatch cookbook dead_letters_recent --since 2026-12-07T10:00 --until 2026-12-07T11:00
SELECT
    topic,
    reason,
    count()                 AS messages,
    any(detail)             AS example_detail,
    min(received_at)        AS first_seen,
    max(received_at)        AS last_seen
FROM dead_letters FINAL
WHERE received_at >= {since:DateTime('UTC')} AND received_at < {until:DateTime('UTC')}
GROUP BY topic, reason
ORDER BY messages DESC
