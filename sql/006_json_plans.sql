-- 006_json_plans.sql: cart_json and order_json as PL/pgSQL, so their
-- plans are cached per session.
--
-- Why.  As LANGUAGE sql functions that cannot be inlined (they aggregate
-- over a subquery), PostgreSQL parsed and planned their bodies again on
-- every call.  A checkout calls each once or twice (the cart after each
-- cart write, the order in the reserving and the settling statements),
-- and pg_stat_statements in the checkout benchmark put SELECT cart_json($1)
-- at 0.54 ms and the settling statement at 1.2 ms of execution, most of
-- it those bodies being planned: the largest share of PostgreSQL's CPU per
-- checkout, on a machine where PostgreSQL's CPU was the limit.  A PL/pgSQL
-- function plans each statement once per session and reuses the plan.
--
-- The results are the same jsonb, key for key; the functions keep their
-- names, arguments and volatility, so no caller changes.

CREATE OR REPLACE FUNCTION order_json(o orders) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    items jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'book_id', i.book_id, 'title', i.title,
               'quantity', i.quantity, 'price_cents', i.price_cents,
               'line_total_cents', i.price_cents * i.quantity)
               ORDER BY i.book_id), '[]'::jsonb)
      INTO items
      FROM order_items i WHERE i.order_id = o.id;

    RETURN jsonb_build_object(
        'id', o.id,
        'user_id', o.user_id,
        'status', o.status,
        'items', items,
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
        'cancelled_at', api_time(o.cancelled_at));
END
$$;

-- available = on hand and not promised, over every warehouse
CREATE OR REPLACE FUNCTION cart_json(uid bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    result jsonb;
BEGIN
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
      INTO result
      FROM lines;

    RETURN result;
END
$$;
