-- 017_message_search_doc_inline.sql: the message-search document of 013
-- as an expression PostgreSQL inlines, so inserting a message no longer
-- runs a SQL function.
--
-- 013's message_search_doc built its array with a sub-SELECT
-- (ARRAY(SELECT ... FROM unnest(...))).  A SQL function whose body holds a
-- sub-SELECT is never inlined, so every statement that inserts messages
-- evaluated the index expression through the SQL-function executor: the
-- body read back from pg_proc and planned once per statement, then run as
-- a query for each row.  With one message per transaction (chat at
-- ordinary rates sends batches of one or two) that was 5-10 % of the
-- PostgreSQL CPU of a send (tests/bench/README.md, figure 6).
--
-- The new body is one expression of strict, immutable functions, which the
-- planner inlines into the index expression and into msg.search's WHERE
-- alike (so the index still matches): the lexemes of strip(to_tsvector())
-- in tsvector's text form ('a' 'b'), "<conversation>." put after each
-- opening quote (one starts the text or follows the space between two
-- lexemes; a lexeme never holds a space, the parser splits on blanks, and
-- a quote inside a lexeme is doubled, never preceded by a space), read
-- back as a tsvector.
--
-- It must give the same value for every text, or the index 013 built
-- would disagree with new rows: checked below, before the function is
-- replaced, on texts made to break it and on the newest messages; any
-- difference stops the migration.

DO $$
DECLARE
    bad text;
BEGIN
    WITH texts (t) AS (
        VALUES ('Hello, wörld! foo-bar http://x.org/a?b=c me@x.org 3.14 /usr/bin ...'),
               ('!!! ...'), (''), (' '),
               ('it''s o''clock \ back\slash "quoted" ''''double'''''),
               ('a''b ''lead trail'' ''''x '' '' '),
               ('ÆØÅ 日本語 emoji 😀 tab	sep new
line'),
               ('C:\dir\file.txt -5 +3 1e10 0x1F 1.2.3 ~user $HOME 100%'),
               ('<b>tag</b> &amp; a_b a-b-c --x -- ''''''')
        UNION ALL
        (SELECT text FROM messages WHERE deleted_at IS NULL
          ORDER BY created_at DESC LIMIT 10000)
    )
    SELECT t INTO bad FROM texts
     WHERE array_to_tsvector(ARRAY(
               SELECT '42.' || w
                 FROM unnest(tsvector_to_array(to_tsvector('simple'::regconfig,
                                                           t))) AS w))
           IS DISTINCT FROM
           regexp_replace(strip(to_tsvector('simple'::regconfig, t))::text,
                          '(^| )''', '\1''' || '42.', 'g')::tsvector
     LIMIT 1;

    IF FOUND THEN
        RAISE EXCEPTION 'message_search_doc: the inlinable form differs for %',
            quote_literal(bad);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION message_search_doc(conversation_id bigint, body text)
    RETURNS tsvector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN regexp_replace(strip(to_tsvector('simple'::regconfig, body))::text,
                          '(^| )''', '\1''' || conversation_id::text || '.',
                          'g')::tsvector;
