-- Operator stock changes sent with an Idempotency-Key (POST /admin/inventory/{id}/adjust,
-- PUT /admin/inventory/{id}) write their ledger row with the reference 'key:<hash of the
-- route and key>'. The unique index makes such a change apply at most once, even when its
-- first attempt committed and then its answer was lost (a crash, a timeout, a 503).
CREATE UNIQUE INDEX stock_ledger_key_uniq ON stock_ledger (reference) WHERE reference LIKE 'key:%';
