DROP TABLE IF EXISTS detector_statistics;
DROP TABLE IF EXISTS alert_events;
