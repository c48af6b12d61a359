-- 011_store.sql: the order lifecycle after payment (delivery, refunds by
-- line, late charges refunded on their own) and a reusable ISBN.
--
-- Delivery.  orders.delivered_at is set with status delivered, by an
-- admin or by the carrier's webhook; carrier_events keeps each webhook
-- event id once, so a carrier that retries (they all do) changes nothing
-- the second time.  The role "carrier" is the webhook's account: it may
-- report deliveries and nothing else.
--
-- Refunds.  A refund names lines and quantities (none: everything not yet
-- refunded).  order_items.refunded_quantity counts what was given back
-- per line and can never pass what was bought (CHECK), and
-- orders.refunded_cents can never pass what was charged (CHECK): those
-- two constraints are the "never more than the charge" rule, whatever
-- the code above them does.  A refund attempt is a payment_attempts row
-- of kind refund with the lines in items and the provider's payment id
-- in payment_ref (a late charge has no order payment_ref); order_refunds
-- is the money ledger: one row per refund the provider confirmed, unique
-- per attempt, so a refund is never counted twice.  The order becomes
-- refunded once every line is.
--
-- Late charges.  A charge the provider records after we cancelled the
-- order (its reservation lapsed: the request reached the provider late)
-- is money taken for nothing.  A cancelled order's charge attempt keeps
-- being looked up until watch_until; when the provider says it charged,
-- a refund attempt (reason late_charge) is made and the reconciler
-- carries it out.
--
-- ISBNs.  A deleted book keeps its row (orders point at it), but its ISBN
-- is free again: unique only among books not deleted.
--
-- order_release_lines gives back part of an order's held copies (a
-- partial refund before shipping): the reservations of each line shrink,
-- warehouse by warehouse, with stock.reserved and a ledger row each.

ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('user', 'admin', 'carrier'));

ALTER TABLE books DROP CONSTRAINT books_isbn13_key;
CREATE UNIQUE INDEX books_isbn13_live_key ON books (isbn13)
    WHERE deleted_at IS NULL;
CREATE INDEX books_isbn13_idx ON books (isbn13);

ALTER TABLE orders ADD COLUMN delivered_at timestamptz;
ALTER TABLE orders ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD CONSTRAINT orders_refund_within_charge
    CHECK (refunded_cents BETWEEN 0 AND total_cents);

ALTER TABLE order_items ADD COLUMN refunded_quantity int NOT NULL DEFAULT 0;
ALTER TABLE order_items ADD CONSTRAINT order_items_refund_within_line
    CHECK (refunded_quantity BETWEEN 0 AND quantity);

ALTER TABLE payment_attempts ADD COLUMN items jsonb;
ALTER TABLE payment_attempts ADD COLUMN payment_ref text;
ALTER TABLE payment_attempts ADD COLUMN reason text;
ALTER TABLE payment_attempts ADD COLUMN watch_until timestamptz;

CREATE INDEX payment_attempts_watch_idx ON payment_attempts (lease_until)
    WHERE status = 'abandoned' AND watch_until IS NOT NULL;

CREATE TABLE order_refunds (
    id             bigserial   PRIMARY KEY,
    order_id       bigint      NOT NULL REFERENCES orders (id),
    attempt_id     bigint      NOT NULL UNIQUE REFERENCES payment_attempts (id),
    amount_cents   bigint      NOT NULL CHECK (amount_cents > 0),
    items          jsonb       NOT NULL DEFAULT '[]',
    reason         text        NOT NULL CHECK (reason IN ('admin', 'late_charge')),
    provider_id    text,
    actor_id       bigint,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX order_refunds_order_idx ON order_refunds (order_id);

CREATE TABLE carrier_events (
    event_id       text        PRIMARY KEY,
    order_id       bigint      NOT NULL REFERENCES orders (id),
    status         text        NOT NULL,
    actor_id       bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION order_release_lines(oid bigint, lines jsonb, actor bigint,
    why text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    line record;
    r record;
    left_ int;
    take int;
BEGIN
    -- stock rows first, in the one lock order
    PERFORM 1 FROM stock s JOIN order_reservations x
        ON x.book_id = s.book_id AND x.warehouse_id = s.warehouse_id
     WHERE x.order_id = oid AND x.state = 'held'
     ORDER BY s.book_id, s.warehouse_id FOR UPDATE OF s;

    FOR line IN SELECT (e->>'book_id')::bigint AS book_id,
                       (e->>'quantity')::int AS quantity
                  FROM jsonb_array_elements(lines) e
    LOOP
        left_ := line.quantity;
        FOR r IN SELECT warehouse_id, quantity FROM order_reservations
                  WHERE order_id = oid AND book_id = line.book_id
                    AND state = 'held'
                  ORDER BY warehouse_id
        LOOP
            EXIT WHEN left_ <= 0;
            take := least(left_, r.quantity);
            IF take = r.quantity THEN
                UPDATE order_reservations SET state = 'released'
                 WHERE order_id = oid AND book_id = line.book_id
                   AND warehouse_id = r.warehouse_id;
            ELSE
                UPDATE order_reservations SET quantity = quantity - take
                 WHERE order_id = oid AND book_id = line.book_id
                   AND warehouse_id = r.warehouse_id;
            END IF;
            UPDATE stock SET reserved = reserved - take, updated_at = now()
             WHERE book_id = line.book_id AND warehouse_id = r.warehouse_id;
            INSERT INTO stock_ledger (book_id, warehouse_id, delta_reserved,
                reason, actor_id, order_id)
            VALUES (line.book_id, r.warehouse_id, -take, why, actor, oid);
            left_ := left_ - take;
        END LOOP;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION order_json(o orders) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    items jsonb;
    refunds jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'book_id', i.book_id, 'title', i.title,
               'quantity', i.quantity, 'price_cents', i.price_cents,
               'line_total_cents', i.price_cents * i.quantity,
               'refunded_quantity', i.refunded_quantity)
               ORDER BY i.book_id), '[]'::jsonb)
      INTO items
      FROM order_items i WHERE i.order_id = o.id;

    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', r.id, 'amount_cents', r.amount_cents,
               'items', r.items, 'reason', r.reason,
               'created_at', api_time(r.created_at))
               ORDER BY r.id), '[]'::jsonb)
      INTO refunds
      FROM order_refunds r WHERE r.order_id = o.id;

    RETURN jsonb_build_object(
        'id', o.id,
        'user_id', o.user_id,
        'status', o.status,
        'items', items,
        'total_cents', o.total_cents,
        'refunded_cents', o.refunded_cents,
        'refunds', refunds,
        'currency', o.currency,
        'shipping_address', o.shipping_address,
        'payment', jsonb_build_object('card_last4', o.card_last4,
                                      'provider_ref', o.payment_ref,
                                      'failure_code', o.failure_code),
        'reserved_until', api_time(o.reserved_until),
        'created_at', api_time(o.created_at),
        'updated_at', api_time(o.updated_at),
        'paid_at', api_time(o.paid_at),
        'shipped_at', api_time(o.shipped_at),
        'delivered_at', api_time(o.delivered_at),
        'refunded_at', api_time(o.refunded_at),
        'cancelled_at', api_time(o.cancelled_at));
END
$$;
