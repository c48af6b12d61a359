-- 004_presence.sql: presence, delivery markers, coalesced group receipts,
-- mutes.
--
-- users.presence is the last presence transition the backend's presence
-- process published ('online' or 'offline'); users.last_seen (from 001) is
-- when the user was last seen connected.  Both are written only by that
-- process, from the transitions the edge and the sweeper put on the
-- chat:presence:changes stream (see backend/presence.c), and read by
-- presence.get.  The truth of "is a device connected right now" lives in
-- Redis (chat:online:{uid}); these columns are its durable, queryable echo.
--
-- conversation_members.last_delivered_seq is how far the member's devices
-- confirmed delivery (the `delivered` frame).  Like last_read_seq it only
-- moves forward, and reading implies delivery: a CHECK says so.  The
-- statements of this project that move markers keep it (conv.read and
-- msg.send move both), and a trigger on insert and on any change of
-- last_read_seq lifts the delivery marker to the read marker, so a new
-- member (conv.member.add starts them at last_seq) or any other statement
-- that moves only the read marker keeps it too, and never fails on it.  muted: no offline notifications for
-- this member in this conversation.
--
-- receipt_pending holds the group conversations whose markers moved and
-- whose coalesced receipt is due at due_at: many markers moving within the
-- window cost one row (ON CONFLICT DO NOTHING).  group_receipts remembers,
-- per group, the highest seq that every member had delivered / read when
-- the last coalesced receipt went out, so the next one goes only to the
-- senders of the messages newly covered.

ALTER TABLE users
    ADD COLUMN presence text NOT NULL DEFAULT 'offline'
        CHECK (presence IN ('online', 'offline'));

ALTER TABLE conversation_members
    ADD COLUMN last_delivered_seq bigint NOT NULL DEFAULT 0
        CHECK (last_delivered_seq >= 0),
    ADD COLUMN muted boolean NOT NULL DEFAULT false;

-- what was read was delivered
UPDATE conversation_members SET last_delivered_seq = last_read_seq;

ALTER TABLE conversation_members
    ADD CONSTRAINT conversation_members_delivered_covers_read
        CHECK (last_delivered_seq >= last_read_seq);

CREATE FUNCTION conversation_members_delivered_from_read() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_delivered_seq := GREATEST(NEW.last_delivered_seq,
                                       NEW.last_read_seq);
    RETURN NEW;
END
$$;

CREATE TRIGGER conversation_members_delivered_from_read
    BEFORE INSERT OR UPDATE OF last_read_seq ON conversation_members
    FOR EACH ROW EXECUTE FUNCTION conversation_members_delivered_from_read();

CREATE TABLE receipt_pending (
    conversation_id  bigint      PRIMARY KEY
                                 REFERENCES conversations (id)
                                 ON DELETE CASCADE,
    due_at           timestamptz NOT NULL
);

CREATE INDEX receipt_pending_due_at_idx ON receipt_pending (due_at);

CREATE TABLE group_receipts (
    conversation_id  bigint      PRIMARY KEY
                                 REFERENCES conversations (id)
                                 ON DELETE CASCADE,
    delivered_all    bigint      NOT NULL DEFAULT 0,
    read_all         bigint      NOT NULL DEFAULT 0
);
