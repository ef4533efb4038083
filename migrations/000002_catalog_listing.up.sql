-- Catalog listing without a category filter: active products in created_at, id order.
-- (products_listing_idx of 000001 serves the per-category listing.)
CREATE INDEX IF NOT EXISTS products_active_created_idx ON products (created_at, id) WHERE status = 'active';
