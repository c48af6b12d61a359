-- 009_chat_people.sql: edited and deleted messages, message search, and
-- finding people by name.
--
-- Edits and deletes.  A sender may change the text of their message
-- (edited_at) or delete it (deleted_at; its text becomes '' so nothing of
-- it is kept, and it keeps its seq so no client sees a gap).  Every change
-- takes the conversation's row lock (like msg.send) and raises
-- conversations.last_edit_seq by one; the message's edit_seq becomes that
-- value.  So within a conversation edit_seq orders the changes, commits in
-- that order (the lock is held until the commit), and is what clients
-- compare: the copy with the higher edit_seq is the newer one.  sync
-- answers the changes a client has not seen with "edit_cursors" (the
-- partial index below finds them: only changed messages are in it).
--
-- Search.  A GIN index over to_tsvector('simple', text) of the messages
-- that are not deleted: 'simple' (lowercased words, no stemming, no stop
-- words) because a chat is written in any language, and the search
-- matches word prefixes, which covers most of what stemming would.  It is
-- a partial index, so a deleted message is neither found nor indexed.
-- Built per partition, like every index of messages.
--
-- People.  users.display_name gets a prefix index on its lower case for
-- GET /api/v1/users?q=, which looks among the people who share a
-- conversation with the caller.

ALTER TABLE messages
    ADD COLUMN edited_at   timestamptz,
    ADD COLUMN deleted_at  timestamptz,
    ADD COLUMN edit_seq    bigint NOT NULL DEFAULT 0 CHECK (edit_seq >= 0);

-- a deleted message has no text; any other has 1 to 4000 characters
ALTER TABLE messages DROP CONSTRAINT messages_text_check;
ALTER TABLE messages ADD CONSTRAINT messages_text_check
    CHECK (CASE WHEN deleted_at IS NULL
                THEN char_length(text) BETWEEN 1 AND 4000
                ELSE text = '' END);

ALTER TABLE conversations
    ADD COLUMN last_edit_seq bigint NOT NULL DEFAULT 0
                             CHECK (last_edit_seq >= 0);

-- sync: the changes of a conversation after a client's edit cursor
CREATE INDEX messages_edit_seq_idx
    ON messages (conversation_id, edit_seq) WHERE edit_seq > 0;

-- msg.search: full text over what is not deleted
CREATE INDEX messages_text_search_idx
    ON messages USING gin (to_tsvector('simple', text))
    WHERE deleted_at IS NULL;

-- user.find by name prefix (LIKE 'prefix%' on the lower case)
CREATE INDEX users_display_name_lower_idx
    ON users (lower(display_name) text_pattern_ops);
