-- What is being rejected at the door? Dead-lettered messages of the last
-- {minutes} minutes by source topic and reason, with one example detail.
-- The original bytes are on the DLQ topic at the stored partition/offset
-- (`routerwatch dlq`).
-- Parameters: minutes.
SELECT
    topic,
    reason,
    count()                 AS messages,
    any(detail)             AS example_detail,
    min(received_at)        AS first_seen,
    max(received_at)        AS last_seen
FROM dead_letters FINAL
WHERE received_at >= now() - toIntervalMinute({minutes:UInt32})
GROUP BY topic, reason
ORDER BY messages DESC
