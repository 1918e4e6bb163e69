DROP VIEW IF EXISTS request_attempts;
DROP VIEW IF EXISTS requests;
