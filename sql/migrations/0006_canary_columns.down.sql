ALTER TABLE canary_results DROP COLUMN IF EXISTS check_detail;
ALTER TABLE canary_results DROP COLUMN IF EXISTS tier_source;
ALTER TABLE canary_results DROP COLUMN IF EXISTS side;
