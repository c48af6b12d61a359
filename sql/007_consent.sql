-- 007_consent.sql: contacts and consent: message requests and blocks.
--
-- conversation_members.accepted says whether the member has agreed to be
-- in the conversation.  A direct conversation opened by someone who shares
-- no conversation in which you accepted them is a *request* for you
-- (accepted false) until you answer in it (msg.send) or accept it
-- (conv.accept).  Until then the one who opened it gets none of your
-- presence, last_seen, typing or read and delivery receipts: those follow
-- only from members who accepted (backend/README.md, Contacts and
-- consent).  Every member row that existed before this migration is
-- accepted: those conversations were made before consent existed, and
-- taking presence away from them now would surprise everyone at once.
-- Groups are made accepted too (a group add is not a request yet).
--
-- user_blocks: blocker_id has blocked blocked_id.  Nothing of the blocked
-- user reaches the blocker: their messages are not fanned out to the
-- blocker (and show without their text in the blocker's history), their
-- typing, receipts and presence are dropped, and presence goes neither
-- way.  The blocked user is told nothing: their sends succeed as before.
-- A block of an id that is no user is not stored (the answer is the same,
-- so the endpoint does not tell which ids exist).

ALTER TABLE conversation_members
    ADD COLUMN accepted boolean NOT NULL DEFAULT true;

CREATE TABLE user_blocks (
    blocker_id  bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);

-- "who blocked this sender": the fan-out and presence ask it that way
CREATE INDEX user_blocks_blocked_id_idx ON user_blocks (blocked_id);
