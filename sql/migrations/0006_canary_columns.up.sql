-- Canary results gain the boundary side, where the observed tier came from and why an
-- answer check failed. Added columns default to '' for rows written before.
ALTER TABLE canary_results ADD COLUMN IF NOT EXISTS side LowCardinality(String) AFTER category;
ALTER TABLE canary_results ADD COLUMN IF NOT EXISTS tier_source LowCardinality(String) AFTER observed_tier;
ALTER TABLE canary_results ADD COLUMN IF NOT EXISTS check_detail String AFTER answer_passed;
