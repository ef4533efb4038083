DROP INDEX IF EXISTS products_active_created_idx;
