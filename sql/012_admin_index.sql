-- 012_admin_index.sql: the admins, found without reading every user.
--
-- An admin's change (a book, stock, an order) is told to every admin's
-- open back office (backend/engine/admin_event.c), which looks the admins
-- up at each change.  Without an index that is a scan of users, millions
-- of rows in a real store; this partial index holds only the admins.

CREATE INDEX users_admins_idx ON users (id) WHERE role = 'admin';
