DROP INDEX IF EXISTS discounts_live_idx;
DROP INDEX IF EXISTS discounts_code_live_idx;
ALTER TABLE discounts ADD CONSTRAINT discounts_code_key UNIQUE (code);
