-- Catalog -------------------------------------------------------------------
CREATE TABLE products (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,127}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    category    text NOT NULL DEFAULT '',
    status      text NOT NULL CHECK (status IN ('draft', 'active', 'archived')),
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_listing_idx ON products (status, category, created_at, id);

CREATE TABLE variants (
    id           uuid PRIMARY KEY,
    product_id   uuid NOT NULL REFERENCES products (id),
    sku          text NOT NULL UNIQUE,
    name         text NOT NULL,
    price_amount bigint NOT NULL CHECK (price_amount >= 0),
    currency     char(3) NOT NULL,
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb,
    position     int NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX variants_product_idx ON variants (product_id, position);

-- Inventory (source of truth for on_hand) ------------------------------------
CREATE TABLE inventory (
    variant_id uuid PRIMARY KEY REFERENCES variants (id),
    on_hand    bigint NOT NULL CHECK (on_hand >= 0),
    version    bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stock_ledger (
    id            bigserial PRIMARY KEY,
    variant_id    uuid NOT NULL REFERENCES variants (id),
    delta         bigint NOT NULL,
    on_hand_after bigint NOT NULL,
    version       bigint NOT NULL,
    reason        text NOT NULL,
    reference     text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_ledger_variant_idx ON stock_ledger (variant_id, id);

-- Discounts -----------------------------------------------------------------
CREATE TABLE discounts (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    code                  text UNIQUE,
    kind                  text NOT NULL CHECK (kind IN ('percentage', 'fixed_amount')),
    value                 bigint NOT NULL CHECK (value > 0),
    currency              char(3),
    scope_type            text NOT NULL CHECK (scope_type IN ('cart', 'product', 'category', 'variant')),
    scope_ids             text[] NOT NULL DEFAULT '{}',
    min_subtotal_amount   bigint,
    min_subtotal_currency char(3),
    starts_at             timestamptz,
    ends_at               timestamptz,
    priority              int NOT NULL DEFAULT 0,
    stackable             boolean NOT NULL DEFAULT true,
    active                boolean NOT NULL DEFAULT true,
    deleted_at            timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- One row: the ruleset version every discount write bumps.
CREATE TABLE discount_ruleset (
    id      int PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO discount_ruleset (id, version) VALUES (1, 1);

-- Carts and preferences (snapshots behind Redis) ------------------------------
CREATE TABLE customer_carts (
    customer_id text PRIMARY KEY,
    lines       jsonb NOT NULL DEFAULT '{}'::jsonb,
    coupon_code text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE preferences (
    customer_id text PRIMARY KEY,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Checkout and orders ------------------------------------------------------------
CREATE TABLE checkouts (
    id                uuid PRIMARY KEY,
    cart_key          text NOT NULL,
    owner_type        text NOT NULL CHECK (owner_type IN ('session', 'customer')),
    owner_id          text NOT NULL,
    state             text NOT NULL CHECK (state IN ('reserving', 'awaiting_payment', 'completing', 'completed', 'cancelled', 'expired')),
    email             text,
    lines             jsonb NOT NULL,
    applied_discounts jsonb NOT NULL DEFAULT '[]'::jsonb,
    coupon_code       text,
    currency          char(3) NOT NULL,
    subtotal          bigint NOT NULL,
    discount_total    bigint NOT NULL,
    total             bigint NOT NULL,
    discount_version  bigint NOT NULL,
    payment_intent_id text,
    payment_status    text,
    order_id          uuid,
    version           bigint NOT NULL DEFAULT 1,
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- At most one active checkout per cart.
CREATE UNIQUE INDEX checkouts_active_cart_idx ON checkouts (cart_key)
    WHERE state IN ('reserving', 'awaiting_payment', 'completing');
CREATE INDEX checkouts_expiry_idx ON checkouts (expires_at)
    WHERE state IN ('reserving', 'awaiting_payment');

CREATE SEQUENCE order_number_seq START 100001;
CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    number           bigint NOT NULL UNIQUE DEFAULT nextval('order_number_seq'),
    checkout_id      uuid NOT NULL UNIQUE REFERENCES checkouts (id),
    owner_type       text NOT NULL,
    owner_id         text NOT NULL,
    status           text NOT NULL DEFAULT 'placed',
    email            text,
    lines            jsonb NOT NULL,
    applied_discounts jsonb NOT NULL DEFAULT '[]'::jsonb,
    currency         char(3) NOT NULL,
    subtotal         bigint NOT NULL,
    discount_total   bigint NOT NULL,
    total            bigint NOT NULL,
    discount_version bigint NOT NULL,
    payment_intent_id text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_owner_idx ON orders (owner_type, owner_id, created_at DESC);

CREATE TABLE order_lines (
    order_id   uuid NOT NULL REFERENCES orders (id),
    variant_id uuid NOT NULL REFERENCES variants (id),
    quantity   bigint NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, variant_id)
);

CREATE TABLE outbox (
    id           uuid PRIMARY KEY,
    topic        text NOT NULL,
    aggregate_id text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;

CREATE TABLE payment_events (
    id                text PRIMARY KEY,
    type              text NOT NULL,
    payment_intent_id text NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now()
);
