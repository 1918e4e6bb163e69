DROP VIEW IF EXISTS canary_tier_traffic;
DROP VIEW IF EXISTS canary_attempts;
DROP VIEW IF EXISTS canary_decisions;
DROP VIEW IF EXISTS canary_series;
DROP VIEW IF EXISTS canary_scoreboard;
