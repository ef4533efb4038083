DROP INDEX IF EXISTS checkouts_payment_intent_idx;
DROP INDEX IF EXISTS checkouts_inflight_idx;
DROP INDEX IF EXISTS checkouts_cleanup_idx;
ALTER TABLE checkouts DROP COLUMN IF EXISTS cleaned_at;
ALTER TABLE checkouts DROP COLUMN IF EXISTS holds_expire_at;
