-- 005_orders.sql: carts, orders, stock reservations and payment attempts.
--
-- cart_items: one row per (user, book) with a quantity of 1..99; the cart
-- lives here, so it is the same on every device and survives sessions.
-- Prices are not stored in the cart: it is always shown at the current
-- catalog price.
--
-- orders: one row per checkout, tied to the checkout's idempotency key
-- (checkout_key, unique: the same key can never make a second order).
-- Prices are frozen in order_items at checkout.  Status moves
--   pending_payment -> paid | payment_failed | cancelled (reservation expired)
--   paid -> shipped | refunded,  shipped -> delivered | refunded
-- and nothing else (the backend checks; the CHECK lists the names).
-- reserved_until is when a pending_payment order's reservation lapses if
-- the provider never saw its payment.
--
-- order_reservations: which warehouse each reserved copy came from, so
-- release and ship undo exactly what checkout did.  state: held (counted
-- in stock.reserved), released (given back), shipped (taken off on_hand).
--
-- payment_attempts: one row per call we make to the payment provider
-- (kind charge or refund) with the idempotency key the provider sees.  A
-- pending attempt's outcome is not known yet: the reconciler asks the
-- provider once lease_until has passed.  claims counts who asked last:
-- whoever settles an attempt on the strength of its own question checks
-- that nobody has claimed it since.  No card number is stored anywhere:
-- only the provider's id and the last four digits (orders.card_last4).
--
-- The checkout's in-flight state is its command_log row (001): inserted
-- with status NULL in the reservation's transaction, completed with the
-- final reply when the payment is settled.
--
-- order_json / cart_json build the API's objects in one round trip.

CREATE TABLE cart_items (
    user_id        bigint      NOT NULL REFERENCES users (id),
    book_id        bigint      NOT NULL REFERENCES books (id),
    quantity       int         NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at       timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, book_id)
);

CREATE TABLE orders (
    id               bigserial   PRIMARY KEY,
    user_id          bigint      NOT NULL REFERENCES users (id),
    status           text        NOT NULL
                                 CHECK (status IN ('pending_payment',
                                     'payment_failed', 'paid', 'shipped',
                                     'delivered', 'cancelled', 'refunded')),
    checkout_key     text        NOT NULL UNIQUE,
    total_cents      bigint      NOT NULL CHECK (total_cents >= 0),
    currency         char(3)     NOT NULL,
    shipping_address jsonb       NOT NULL,
    region           text,
    card_last4       char(4),
    payment_ref      text,
    failure_code     text,
    reserved_until   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    paid_at          timestamptz,
    shipped_at       timestamptz,
    refunded_at      timestamptz,
    cancelled_at     timestamptz
);

CREATE INDEX orders_user_idx ON orders (user_id, id DESC);
CREATE INDEX orders_status_idx ON orders (status, id DESC);

CREATE TABLE order_items (
    order_id       bigint      NOT NULL REFERENCES orders (id),
    book_id        bigint      NOT NULL REFERENCES books (id),
    title          text        NOT NULL,
    quantity       int         NOT NULL CHECK (quantity > 0),
    price_cents    bigint      NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (order_id, book_id)
);

CREATE TABLE order_reservations (
    order_id       bigint      NOT NULL REFERENCES orders (id),
    book_id        bigint      NOT NULL,
    warehouse_id   bigint      NOT NULL,
    quantity       int         NOT NULL CHECK (quantity > 0),
    state          text        NOT NULL DEFAULT 'held'
                               CHECK (state IN ('held', 'released', 'shipped')),
    PRIMARY KEY (order_id, book_id, warehouse_id),
    FOREIGN KEY (book_id, warehouse_id) REFERENCES stock (book_id, warehouse_id)
);

CREATE TABLE payment_attempts (
    id               bigserial   PRIMARY KEY,
    order_id         bigint      NOT NULL REFERENCES orders (id),
    kind             text        NOT NULL CHECK (kind IN ('charge', 'refund')),
    idempotency_key  text        NOT NULL UNIQUE,
    amount_cents     bigint      NOT NULL CHECK (amount_cents >= 0),
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'succeeded',
                                     'failed', 'abandoned')),
    provider_id      text,
    failure_code     text,
    last_error       text,
    lease_until      timestamptz NOT NULL,
    claims           int         NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payment_attempts_order_idx ON payment_attempts (order_id);
CREATE INDEX payment_attempts_due_idx ON payment_attempts (lease_until)
    WHERE status = 'pending';

CREATE FUNCTION api_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE FUNCTION order_json(o orders) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', o.id,
        'user_id', o.user_id,
        'status', o.status,
        'items', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'book_id', i.book_id, 'title', i.title,
                       'quantity', i.quantity, 'price_cents', i.price_cents,
                       'line_total_cents', i.price_cents * i.quantity)
                   ORDER BY i.book_id)
              FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb),
        'total_cents', o.total_cents,
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
        'refunded_at', api_time(o.refunded_at),
        'cancelled_at', api_time(o.cancelled_at))
$$;

-- available = on hand and not promised, over every warehouse
CREATE FUNCTION cart_json(uid bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH lines AS (
        SELECT c.book_id, c.quantity, b.title, b.price_cents, b.currency,
               b.deleted_at IS NOT NULL AS gone,
               coalesce((SELECT sum(s.on_hand - s.reserved) FROM stock s
                          WHERE s.book_id = c.book_id), 0)::int AS available
          FROM cart_items c JOIN books b ON b.id = c.book_id
         WHERE c.user_id = uid
    )
    SELECT jsonb_build_object(
        'items', coalesce(jsonb_agg(jsonb_build_object(
                     'book_id', book_id, 'title', title, 'quantity', quantity,
                     'price_cents', price_cents, 'currency', currency,
                     'line_total_cents', price_cents * quantity,
                     'available', CASE WHEN gone THEN 0 ELSE available END,
                     'out_of_stock', gone OR available < quantity)
                 ORDER BY book_id), '[]'::jsonb),
        'total_cents', coalesce(sum(price_cents * quantity), 0))
      FROM lines
$$;
