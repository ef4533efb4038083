DROP INDEX IF EXISTS stock_ledger_key_uniq;
