-- 024_api_time_stable.sql: api_time() declared STABLE, as its body is, so
-- PostgreSQL inlines it instead of running it as a query for each call.
--
-- 005 declared api_time IMMUTABLE, but its body calls to_char(timestamp,
-- text), which is STABLE (its TM patterns follow lc_time).  The planner
-- never inlines an IMMUTABLE SQL function whose body holds something less
-- than immutable, so every call went through the SQL-function executor:
-- an executor started and ended per call.  order_json() makes eight
-- (the order's eight times) and one more per refund, so a checkout's
-- paid statement ran eight of them, and an order list eight per order.
-- pg_stat_statements on the checkout benchmark counted 177,880 runs of
-- api_time's body for 22,235 checkouts.
--
-- Declared STABLE (the truth: same answer within a statement), it is
-- inlined into order_json's expressions.  Measured on 20,000 orders,
-- order_json(o) over all of them: 600-640 ms before, 485-491 ms after
-- (30 -> 24 us an order).  Nothing indexes api_time: no index, generated
-- column or constraint names it, so its volatility can change.

ALTER FUNCTION api_time(timestamptz) STABLE;
