-- 001_accounts.sql: accounts and the idempotency log.
--
-- users holds every account.  E-mail is unique case-insensitively (the
-- index is on lower(email); the backend also stores it lowercased), the
-- password is only ever a self-describing scrypt string written by
-- backend/password.c, and role is the whole authorisation model so far:
-- 'user' or 'admin'.  last_seen is for presence and is written later.
--
-- command_log is what makes commands idempotent.  The command bus delivers
-- at least once, so every command that writes carries a key; the worker
-- inserts the key in the same transaction as the command's effects, with
-- the SHA-256 of op "\n" body, and stores the final status and reply there
-- too.  A redelivery finds the row and gets the stored reply; the same key
-- with a different body gets 409.  The primary key is what serialises two
-- concurrent attempts.  Rows are pruned by created_at (index below) once
-- no client can retry that old a command.

CREATE TABLE users (
    id             bigserial   PRIMARY KEY,
    email          text        NOT NULL,
    display_name   text        NOT NULL,
    password_hash  text        NOT NULL,
    role           text        NOT NULL DEFAULT 'user'
                               CHECK (role IN ('user', 'admin')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE command_log (
    key            text        PRIMARY KEY,
    op             text        NOT NULL,
    user_id        bigint,
    request_hash   bytea       NOT NULL,
    status         int,
    reply          text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX command_log_created_at_idx ON command_log (created_at);
