DROP INDEX IF EXISTS stock_ledger_bulk_line_uniq;
DROP TABLE IF EXISTS inventory_bulk_requests;
