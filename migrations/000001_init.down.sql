DROP TABLE IF EXISTS payment_events, outbox, order_lines, orders, checkouts, preferences,
    customer_carts, discount_ruleset, discounts, stock_ledger, inventory, variants, products;
DROP SEQUENCE IF EXISTS order_number_seq;
