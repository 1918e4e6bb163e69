-- The bucketed series views go; no table changes.
DROP VIEW IF EXISTS canary_history;
DROP VIEW IF EXISTS request_series;
DROP VIEW IF EXISTS attempt_latency_series;
DROP VIEW IF EXISTS attempt_series;
