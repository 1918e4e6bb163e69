DROP VIEW IF EXISTS graded_summary;
