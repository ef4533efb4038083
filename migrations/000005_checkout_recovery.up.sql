-- Checkout recovery and lookups.
--   holds_expire_at: when the stock holds taken for the checkout lapse (Redis TIME based
--     TTL, recorded from the PostgreSQL clock at reservation); complete re-takes holds that
--     are about to lapse before it charges the payment.
--   cleaned_at: when the side effects of reaching a final state were done (cart cleared or
--     unfrozen, holds released). NULL on a final checkout means a crash came in between;
--     the recovery job finishes the work.
ALTER TABLE checkouts ADD COLUMN holds_expire_at timestamptz;
ALTER TABLE checkouts ADD COLUMN cleaned_at timestamptz;
UPDATE checkouts SET cleaned_at = updated_at WHERE state IN ('completed', 'cancelled', 'expired');

CREATE INDEX checkouts_cleanup_idx ON checkouts (updated_at)
    WHERE cleaned_at IS NULL AND state IN ('completed', 'cancelled', 'expired');
CREATE INDEX checkouts_inflight_idx ON checkouts (updated_at)
    WHERE state IN ('reserving', 'completing');
CREATE INDEX checkouts_payment_intent_idx ON checkouts (payment_intent_id)
    WHERE payment_intent_id IS NOT NULL;
