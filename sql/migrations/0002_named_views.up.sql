-- Named views for ad hoc SQL. `requests` and `request_attempts` hide canary
-- probes and collapse any duplicate not yet merged away (FINAL), so counts
-- from them are exact.

CREATE VIEW IF NOT EXISTS requests AS
SELECT * FROM decisions FINAL WHERE canary_id = '';

CREATE VIEW IF NOT EXISTS request_attempts AS
SELECT * FROM attempts FINAL WHERE canary_id = '';
