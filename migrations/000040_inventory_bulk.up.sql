-- Bulk stock sync (POST /admin/inventory/bulk).
--
-- One row per Idempotency-Key: the key (hashed) and the request body's fingerprint, so a
-- key sent again with another body is refused, and the same body is applied again
-- without applying any line twice.
CREATE TABLE inventory_bulk_requests (
    key_hash    text PRIMARY KEY,
    fingerprint text NOT NULL,
    lines       integer NOT NULL CHECK (lines >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each applied line of a keyed request writes its ledger row with the reference
-- 'bulk:<key hash>:<line>'. The unique index makes a line apply at most once, whatever
-- retries, crashes or concurrent copies of the request do.
CREATE UNIQUE INDEX stock_ledger_bulk_line_uniq ON stock_ledger (reference) WHERE reference LIKE 'bulk:%';
