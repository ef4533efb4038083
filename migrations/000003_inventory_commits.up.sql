-- Commit attempts of the inventory protocol (internal/inventory). A sale's transaction
-- inserts its attempt as 'committed'; recovery of a crashed commit inserts it as
-- 'aborted' (ON CONFLICT DO NOTHING) and reads which one won. The primary key is the
-- fence: a late transaction cannot commit after recovery returned its units, and
-- recovery cannot return the units of a sale that committed.
CREATE TABLE inventory_commits (
    attempt    text PRIMARY KEY,
    holder     text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('committed', 'aborted')),
    -- variant id -> inventory version written by the sale ('{}' when aborted)
    versions   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_commits_created_idx ON inventory_commits (created_at);

-- Sales and adjustments are looked up by their reference (a checkout id, an operator
-- request id).
CREATE INDEX stock_ledger_reference_idx ON stock_ledger (reference, variant_id);
