-- Per-variant low-stock threshold: when a reservation takes the available stock from at
-- least the threshold to below it, an inventory.low_stock event goes to the outbox (and
-- so to the events:orders stream). NULL or 0: no event.
ALTER TABLE inventory ADD COLUMN low_stock_threshold bigint CHECK (low_stock_threshold >= 0);
