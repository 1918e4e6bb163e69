-- Frozen, versioned baselines of the drift detectors: one row per (signal, series, version).
-- Re-baselining after an intended change inserts a new version; the newest version of a
-- series is the one in force. The body is the detector's own JSON (routerwatch.drift.baseline).
CREATE TABLE IF NOT EXISTS baselines
(
    signal        LowCardinality(String),
    series_key    String COMMENT 'canonical labels: router=...,tier=...,category=...',
    version       String,
    created_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    window_start  DateTime64(3, 'UTC'),
    window_end    DateTime64(3, 'UTC'),
    body          String COMMENT 'JSON'
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (signal, series_key, version);
