ALTER TABLE inventory DROP COLUMN IF EXISTS low_stock_threshold;
