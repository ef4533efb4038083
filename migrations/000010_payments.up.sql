-- Real payments: the intent's client secret for client-side confirmation, order status
-- and refunds, per-line restock counts, and the payment actions (refunds and voids)
-- decided in PostgreSQL and carried out at the provider by a relay.
ALTER TABLE checkouts ADD COLUMN payment_client_secret text;

ALTER TABLE orders ADD COLUMN refunded_total bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN cancel_reason text;
ALTER TABLE orders ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('placed', 'partially_refunded', 'refunded', 'cancelled'));
ALTER TABLE orders ADD CONSTRAINT orders_refunded_total_check
    CHECK (refunded_total >= 0 AND refunded_total <= total);
CREATE INDEX orders_status_idx ON orders (status, created_at DESC);
CREATE INDEX orders_created_idx ON orders (created_at DESC, number DESC);
CREATE INDEX orders_payment_intent_idx ON orders (payment_intent_id) WHERE payment_intent_id IS NOT NULL;

ALTER TABLE order_lines ADD COLUMN restocked bigint NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD CONSTRAINT order_lines_restocked_check
    CHECK (restocked >= 0 AND restocked <= quantity);

-- A payment action is decided (status pending) in the transaction that makes the
-- decision; the relay calls the provider with the action id as idempotency key until the
-- provider confirms (provider_ref set), so a crash never loses one and a retry never
-- repeats one. kind void: cancel an intent that took no money (turned into a full refund
-- when the provider says the intent succeeded). cause says why; flagged marks those an
-- operator must look at (an intent whose amount or currency was not the checkout's).
CREATE TABLE payment_actions (
    id                uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('refund', 'void')),
    checkout_id       uuid NOT NULL REFERENCES checkouts (id),
    order_id          uuid REFERENCES orders (id),
    payment_intent_id text NOT NULL,
    amount            bigint NOT NULL CHECK (amount >= 0),
    currency          char(3) NOT NULL,
    reason            text NOT NULL,
    cause             text NOT NULL CHECK (cause IN ('operator', 'order_cancelled', 'checkout_ended', 'stock_gone',
                                                    'amount_mismatch', 'provider')),
    status            text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    flagged           boolean NOT NULL DEFAULT false,
    provider_ref      text,
    attempts          integer NOT NULL DEFAULT 0,
    last_error        text,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_actions_due_idx ON payment_actions (next_attempt_at)
    WHERE status = 'pending' AND provider_ref IS NULL;
CREATE INDEX payment_actions_order_idx ON payment_actions (order_id, created_at) WHERE order_id IS NOT NULL;
CREATE INDEX payment_actions_flagged_idx ON payment_actions (created_at) WHERE flagged;
CREATE INDEX payment_actions_provider_ref_idx ON payment_actions (provider_ref) WHERE provider_ref IS NOT NULL;
-- One action per checkout outside its order: ending a checkout never decides twice.
CREATE UNIQUE INDEX payment_actions_checkout_once_idx ON payment_actions (checkout_id) WHERE order_id IS NULL;
