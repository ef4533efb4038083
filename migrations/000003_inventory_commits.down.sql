DROP INDEX IF EXISTS stock_ledger_reference_idx;
DROP TABLE IF EXISTS inventory_commits;
