-- Catalog cache invalidations still to be published. Every product write inserts a row in
-- its own transaction; the row is deleted once Redis confirmed the invalidation (the
-- product's cache entry overwritten with a versioned fill, the listing generation bumped,
-- the near-cache message published). A row left behind (Redis failed during the write, or
-- the process died after the commit) is republished by the relay until Redis confirms.
CREATE TABLE catalog_invalidations (
    id         bigserial PRIMARY KEY,
    product_id uuid        NOT NULL,
    version    bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX catalog_invalidations_product_idx ON catalog_invalidations (product_id, version);
