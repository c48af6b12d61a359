-- 010_media.sql: uploaded files (chat attachments and book covers), the
-- conversations they were sent in, and books' covers.
--
-- The bytes are never in PostgreSQL: the edge hashes an upload, moves it
-- into the content-addressed store (backend/media/README.md) and sends
-- only its metadata, which media.upload records here as one attachments
-- row per upload.  Two uploads of the same bytes are two rows (each with
-- its own uploader, name and id) over one stored file.
--
-- kind says what became of an image's thumbnail: 'pending' until the
-- admin lane's thumbnail task made it (thumb_sha256 set, 'ready'), or
-- 'failed' when the image could not be read or was too large to decode
-- (the original is still served; only the preview is missing).  Files
-- that are not images have thumb_state 'none'.
--
-- attachment_links says in which conversations an attachment was sent:
-- the download check is "the caller uploaded it, or is a member of one of
-- these conversations", so leaving a conversation ends access to what
-- was shared there (unless it was also shared elsewhere).  A message
-- keeps a copy of its attachments' public fields in messages.attachments
-- (jsonb, NULL when none), read with the message in one row for history,
-- sync and the live event.
--
-- books.cover_sha256 is the cover's original in the store; cover_url and
-- cover_thumb_url are the public renditions made once from it (made by
-- admin.book.cover, backend/media/op_media.c), NULL while a book has no
-- cover.

CREATE TABLE attachments (
    id            bigserial   PRIMARY KEY,
    uploader_id   bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sha256        char(64)    NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size          bigint      NOT NULL CHECK (size > 0),
    content_type  text        NOT NULL CHECK (length(content_type) BETWEEN 1 AND 100),
    name          text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    thumb_state   text        NOT NULL DEFAULT 'none'
                              CHECK (thumb_state IN ('none', 'pending',
                                                     'ready', 'failed')),
    thumb_sha256  char(64)    CHECK (thumb_sha256 ~ '^[0-9a-f]{64}$'),
    width         int,
    height        int,
    created_at    timestamptz NOT NULL DEFAULT now(),

    CHECK ((thumb_state = 'ready') = (thumb_sha256 IS NOT NULL))
);

-- a user's uploads (the quota sums them) and the thumbnail task's queue
CREATE INDEX attachments_uploader_idx ON attachments (uploader_id);
CREATE INDEX attachments_thumb_pending_idx ON attachments (id)
    WHERE thumb_state = 'pending';

CREATE TABLE attachment_links (
    attachment_id    bigint      NOT NULL REFERENCES attachments (id)
                                 ON DELETE CASCADE,
    conversation_id  bigint      NOT NULL REFERENCES conversations (id)
                                 ON DELETE CASCADE,
    PRIMARY KEY (attachment_id, conversation_id)
);

ALTER TABLE messages ADD COLUMN attachments jsonb;

ALTER TABLE books
    ADD COLUMN cover_sha256    char(64) CHECK (cover_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN cover_url       text,
    ADD COLUMN cover_thumb_url text;

-- The attachment object of the API, as messages carry it and uploads
-- answer it: {id, url, content_type, size, name}, and thumb_url for an
-- image (its thumbnail once made, the original until then).  url is the
-- download route: it answers only the uploader and the members of a
-- conversation the attachment was sent in.
CREATE FUNCTION attachment_json(a attachments) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
               'id', a.id,
               'url', '/api/v1/attachments/' || a.id,
               'content_type', a.content_type,
               'size', a.size,
               'name', a.name)
           || CASE WHEN a.content_type LIKE 'image/%'
                   THEN jsonb_build_object(
                            'thumb_url',
                            '/api/v1/attachments/' || a.id || '?size=thumb')
                   ELSE '{}'::jsonb END
$$;
