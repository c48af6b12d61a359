-- 002_chat.sql: conversations, their members, and messages.
--
-- conversations is one row per direct or group conversation.  last_seq is
-- the sequence number of its newest message: msg.send raises it with an
-- UPDATE in the transaction that stores the message, so the row lock is
-- what orders a conversation's messages and seqs have no gaps.
-- last_activity_at moves with it and orders conv.list (newest first).  A
-- direct conversation carries its two members as direct_low < direct_high,
-- and a partial unique index on that pair makes "one direct conversation
-- per pair" a constraint: two concurrent creations cannot both win.
-- Groups have a title (1..200 characters, checked by the backend); direct
-- conversations have none.
--
-- conversation_members says who may see a conversation at all (anyone
-- else gets 404), who administers a group, and how far each member has
-- read (last_read_seq: unread = last_seq - last_read_seq).  The index on
-- user_id serves "my conversations" (conv.list, sync).
--
-- messages is keyed (conversation_id, seq) and partitioned by hash of
-- conversation_id into 16 partitions, so one conversation's history is
-- read from one partition's primary key and the table can grow (or be
-- re-split) without one huge index.  The unique (conversation_id,
-- sender_id, client_msg_id) is what makes a resent message a no-op; both
-- keys include the partition key, as PostgreSQL requires.  created_at is
-- set by the backend to the time of the insert (clock_timestamp()), not
-- the start of its transaction, since a worker commits many commands in
-- one transaction.
--
-- Sizes are CHECKed here as well as in the backend, so nothing written by
-- hand can break what clients are promised.

CREATE TABLE conversations (
    id                bigserial   PRIMARY KEY,
    type              text        NOT NULL
                                  CHECK (type IN ('direct', 'group')),
    title             text,
    last_seq          bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_activity_at  timestamptz NOT NULL DEFAULT now(),
    created_by        bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    direct_low        bigint,
    direct_high       bigint,

    CHECK (type = 'group' OR title IS NULL),
    CHECK (title IS NULL OR char_length(title) BETWEEN 1 AND 200),
    CHECK ((type = 'direct') = (direct_low IS NOT NULL
                                AND direct_high IS NOT NULL)),
    CHECK (direct_low < direct_high)
);

CREATE UNIQUE INDEX conversations_direct_pair_key
    ON conversations (direct_low, direct_high) WHERE type = 'direct';

CREATE TABLE conversation_members (
    conversation_id  bigint      NOT NULL
                                 REFERENCES conversations (id)
                                 ON DELETE CASCADE,
    user_id          bigint      NOT NULL
                                 REFERENCES users (id) ON DELETE CASCADE,
    role             text        NOT NULL DEFAULT 'member'
                                 CHECK (role IN ('member', 'admin')),
    last_read_seq    bigint      NOT NULL DEFAULT 0
                                 CHECK (last_read_seq >= 0),
    joined_at        timestamptz NOT NULL DEFAULT now(),

    PRIMARY KEY (conversation_id, user_id)
);

CREATE INDEX conversation_members_user_id_idx
    ON conversation_members (user_id);

CREATE TABLE messages (
    conversation_id  bigint      NOT NULL REFERENCES conversations (id),
    seq              bigint      NOT NULL CHECK (seq > 0),
    sender_id        bigint      NOT NULL REFERENCES users (id),
    client_msg_id    text        NOT NULL
                                 CHECK (length(client_msg_id)
                                        BETWEEN 1 AND 64),
    text             text        NOT NULL
                                 CHECK (char_length(text) BETWEEN 1 AND 4000),
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),

    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_msg_id)
) PARTITION BY HASH (conversation_id);

CREATE TABLE messages_p00 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE messages_p01 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE messages_p02 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE messages_p03 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE messages_p04 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE messages_p05 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE messages_p06 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE messages_p07 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE messages_p08 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE messages_p09 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE messages_p10 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE messages_p11 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE messages_p12 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE messages_p13 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE messages_p14 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE messages_p15 PARTITION OF messages
    FOR VALUES WITH (MODULUS 16, REMAINDER 15);
