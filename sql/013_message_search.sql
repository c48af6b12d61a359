-- 013_message_search.sql: message search whose cost follows the matches
-- in the searcher's conversations, not the size of those conversations.
--
-- Before, msg.search read every message of every conversation the caller
-- is in and parsed each one (to_tsvector per row): the GIN index of
-- 009_chat_people.sql was never used by the worker's generic plan, and a
-- plan that did use it would walk the word's matches in the whole table
-- (4 % of all messages for a common word) before keeping the caller's.
--
-- The index now holds each word of a message *prefixed with its
-- conversation*: "meeting" in conversation 42 is the lexeme "42.meeting".
-- The search asks for '42.meet':* | '97.meet':* | ... (one term per
-- conversation the caller is in), so each prefix walks only that
-- conversation's words in the index and fetches only its matching rows:
-- the cost is (the caller's conversations x a B-tree descent per
-- partition) + (the matches in them), whatever the table's size.  Word
-- prefixes keep working ("42.meet":* finds "42.meeting") and cannot cross
-- conversations: a conversation id has no '.', so "4.2x" can only be
-- conversation 4.  A plain (conversation_id, tsvector) index with
-- btree_gin was the other candidate; it is not enough, because every
-- query word is a prefix, and GIN collects a prefix's matches over the
-- whole partition before intersecting them with the conversation, so its
-- cost would follow the word's matches in the whole table
-- (tests/bench/README.md, figure 9, has the earlier trial of it).
--
-- It replaces 009's index (nothing else used it), so a message insert
-- still maintains one GIN index with one entry per distinct word.  Still
-- partial: a deleted message is neither indexed nor found.
--
-- message_search_doc is IMMUTABLE (to_tsvector with a fixed
-- configuration is), as an index expression must be; op_search.c writes
-- the same expression in its WHERE clause so the planner matches it.

CREATE FUNCTION message_search_doc(conversation_id bigint, body text)
    RETURNS tsvector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN array_to_tsvector(ARRAY(
        SELECT conversation_id::text || '.' || w
          FROM unnest(tsvector_to_array(to_tsvector('simple'::regconfig,
                                                    body))) AS w));

DROP INDEX messages_text_search_idx;

-- fastupdate off: with it on, every scan reads the whole pending list of
-- its partition (up to gin_pending_list_limit, 4 MB = 512 pages), and a
-- search makes one scan per conversation of the caller: at 10 M messages
-- right after a load that was 0.5-1 s per search instead of tens of ms.
-- Off, each insert puts its words into the index at once; a single insert
-- measured the same either way (tests/bench/README.md, figure 9).
CREATE INDEX messages_search_doc_idx
    ON messages USING gin (message_search_doc(conversation_id, text))
    WITH (fastupdate = off)
    WHERE deleted_at IS NULL;
