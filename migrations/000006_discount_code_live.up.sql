-- A coupon code is unique among the discounts that are not deleted: a soft-deleted
-- discount must not keep its code from being reused. Codes are stored upper-case.
ALTER TABLE discounts DROP CONSTRAINT IF EXISTS discounts_code_key;
CREATE UNIQUE INDEX discounts_code_live_idx ON discounts (code) WHERE deleted_at IS NULL;
CREATE INDEX discounts_live_idx ON discounts (priority DESC, id) WHERE deleted_at IS NULL;
