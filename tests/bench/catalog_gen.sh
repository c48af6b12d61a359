#!/usr/bin/env bash
# Catalog data generator: N books with authors, categories, prices, stock
# in 3 warehouses and reviews, straight into PostgreSQL with
# generate_series (no API round trips), in batches that each commit and
# print progress.
#
#   tests/bench/catalog_gen.sh <conninfo> <books> [batch]
#   GEN_WORDS=0 tests/bench/catalog_gen.sh ...   # the hand-picked words only
#
# Deterministic and resumable: book i has the ISBN 9798<i as 8 digits><check>,
# so a re-run counts the generated books already there and only adds the
# missing ones (make run re-runs it on every start without duplicating).
# Sizes: books/4 authors (first + initial + last name, all distinct),
# 8 root categories with 6 children each, 3 warehouses (GEN-EU, GEN-US,
# GEN-AP), 300 reviewer accounts that cannot log in (password hash "!"),
# reviews on a third of the books.  One title in four contains "history":
# the common word of the search benchmark.  Popularity is skewed (a few
# books are very popular), as a shop's is.
#
# The vocabulary is a real catalog's size and spread: besides the few
# hundred hand-picked words the search benchmark asks for (the nouns,
# adjectives, places and surnames below), every book draws words from
# GEN_WORDS generated ones (default 80,000; two or three syllables,
# "natsha", "spondfrefrit") with Zipf-like frequencies: the word of rank r
# is drawn with a probability about 1/r (r = GEN_WORDS^u for u uniform),
# so a few are in a third of the books and most in a handful.  make run's
# demo books (conf/stack.sh) set GEN_WORDS=0: their titles read as titles.  Half of the
# titles' adjective and noun slots, one keyword and three words of each
# description come from it.  The query words of tests/bench/search_kinds.sh
# and catalog.sh stay as they were: the generated words are never equal
# to a hand-picked word, never start with a typo the benchmark asks for,
# and never within pg_trgm's similarity of a word a typo stands for, so
# every kind's query finds the same word (checked at the end).
#
# The search documents are computed in the INSERT itself, from the same
# names the author rows get, rather than by catalog_book_refresh() per
# book, which would cost minutes at a million.
set -euo pipefail

CONN=${1:?usage: catalog_gen.sh <conninfo> <books> [batch]}
N=${2:?usage: catalog_gen.sh <conninfo> <books> [batch]}
BATCH=${3:-50000}
AUTHORS=$(( N / 4 > 50 ? N / 4 : 50 ))
WORDS=${GEN_WORDS:-80000}
PSQL=(psql "$CONN" -XqAt -v ON_ERROR_STOP=1 -v words="$WORDS")

have=$("${PSQL[@]}" -c "SELECT count(*) FROM books WHERE isbn13 LIKE '9798%'")
done=$("${PSQL[@]}" -c "SELECT count(*) FROM catalog_words WHERE word = 'history'")
if (( have >= N && done > 0 )); then
    echo "catalog_gen: $have generated books already there (asked for $N)"
    exit 0
fi
echo "catalog_gen: $have generated books present, adding $(( N - have )) (batches of $BATCH)"
t0=$(date +%s)

{
cat <<'SQL'
-- word lists and a hash, for this session only
CREATE FUNCTION pg_temp.h(i bigint, salt int) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT ((i * 2654435761 + salt * 40503) # ((i * 2654435761 + salt * 40503) >> 15)) & 2147483647
$$;
CREATE FUNCTION pg_temp.pick(a text[], x bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT a[1 + (x % array_length(a, 1))::int] $$;
-- the rank (1 .. V) of a generated word drawn Zipf-like from x, with V
-- words: V^u with u uniform in [0, 1) is log-uniform, P(r) about 1/(r ln V)
CREATE FUNCTION pg_temp.zipf(x bigint, v int) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT least(floor(exp((x % 1000003) / 1000003.0 * ln(greatest(v, 1)))), v)::int
$$;

CREATE TEMP TABLE w AS SELECT
 ARRAY['silent','hidden','last','broken','golden','secret','forgotten','burning','quiet','wild',
       'crimson','distant','lost','frozen','endless','little','bright','northern','stolen','painted',
       'midnight','iron','velvet','hollow','sunken','wandering','glass','final','restless','ancient'] AS adj,
 ARRAY['garden','river','kingdom','daughter','city','house','winter','ocean','mountain','shadow',
       'empire','letter','island','forest','machine','journey','promise','storm','library','orchard',
       'harbor','lighthouse','dragon','clockmaker','cartographer','station','mirror','orchid','voyage','engine',
       'desert','bridge','memory','circus','detective','physician','violin','compass','lantern','meadow'] AS noun,
 ARRAY['Paris','Lisbon','Kyoto','the North','Babylon','Vienna','the Andes','Carthage','Oslo','Samarkand'] AS place,
 ARRAY['Maria','James','Aiko','Omar','Elena','Kwame','Sofia','Liam','Priya','Mateo','Ingrid','Chen',
       'Amara','Lucas','Yara','Noah','Fatima','Hugo','Zara','Ivan','Leila','Oscar','Nadia','Felix',
       'Ana','Tomas','Mei','Rafael','Hana','Victor','Clara','Jonas','Alma','Emil','Rosa','Dmitri',
       'Lena','Pablo','Iris','Kenji','Sara','Malik','Eva','Arjun','Nora','Bruno','Ada','Leon','Greta','Ravi'] AS first,
 ARRAY['Okafor','Lindqvist','Moreau','Tanaka','Haddad','Novak','Silva','Kowalski','Mensah','Ferreira',
       'Nakamura','Rossi','Petrov','Andersen','Costa','Yilmaz','Schmidt','Oliveira','Dubois','Ivanova',
       'Murphy','Kim','Nguyen','Santos','Fischer','Bauer','Horvat','Mbeki','Laurent','Ortiz',
       'Keller','Berg','Sato','Rahman','Castillo','Weber','Jansen','Romano','Kaur','Mendes',
       'Hartmann','Eriksen','Popescu','Abe','Varga','Nieminen','Dimitrov','Aziz','Quinn','Bianchi'] AS last,
 -- the query words of the benchmark's typos (search_kinds.sh, catalog.sh)
 ARRAY['lighthouse','cartographer','orchard','harbor','compass','lantern'] AS typo_target,
 ARRAY['lighthuose','cartographar','orchad','hrabor','compas','lanterm'] AS typo,
 ARRAY['Harbor Press','Lantern Books','North & Vale','Quill House','Blue Door','Meridian','Oakleaf','Paper Moon'] AS publisher,
 ARRAY['hardcover','paperback','ebook','audiobook'] AS format,
 ARRAY['Fiction','History','Science','Children','Mystery','Travel','Poetry','Business'] AS root,
 ARRAY['Classics','Modern','Essays','Illustrated','Guides','Collections'] AS child;

-- the generated vocabulary: syllable x of 34 onsets, 10 vowels and 12
-- codas; a word is two syllables (a third for one in four), from a
-- scrambled k so that neighbouring ranks do not look alike; distinct, kept
-- apart from the hand-picked words (see the header), ranked by k
CREATE FUNCTION pg_temp.syl(x bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT (ARRAY['b','c','d','f','g','h','k','l','m','n','p','r','s','t','v','w','z','br',
                  'cr','dr','fr','gr','pr','tr','st','sh','ch','th','pl','bl','cl','sl','sp','j'])[1 + (x % 34)::int]
        || (ARRAY['a','e','i','o','u','ai','ea','oo','ou','ie'])[1 + ((x / 34) % 10)::int]
        || (ARRAY['','','','n','r','l','s','m','t','nd','rt','ck'])[1 + ((x / 340) % 12)::int]
$$;
CREATE TEMP TABLE gen_vocab AS
SELECT (row_number() OVER (ORDER BY k))::int AS r, word
  FROM (SELECT min(k) AS k, word
          FROM (SELECT k, pg_temp.syl(x % 4080) || pg_temp.syl(x / 4080)
                          || CASE WHEN k % 4 = 3 THEN pg_temp.syl(pg_temp.h(k, 7) % 4080) ELSE '' END AS word
                  FROM generate_series(0, :words * 5 / 4) k, LATERAL (SELECT (k * 7919 + 104729) % 16646400 AS x) s) c
         GROUP BY word) d
 WHERE NOT EXISTS (SELECT 1 FROM w, unnest(w.adj || w.noun || w.first || w.last || w.place || w.root
                                           || w.child || ARRAY['history','story','of','the','and','in','it',
                                                               'tells','read','press','books']) x
                    WHERE lower(x) = d.word)
   AND NOT EXISTS (SELECT 1 FROM w, unnest(w.typo) t WHERE d.word LIKE t || '%')
   AND NOT EXISTS (SELECT 1 FROM w, unnest(w.typo_target) t WHERE similarity(d.word, t) >= 0.25)
 ORDER BY k
 LIMIT :words;
CREATE UNIQUE INDEX ON gen_vocab (r);
ANALYZE gen_vocab;
SET gen.words = :'words';
DO $$ BEGIN
    IF (SELECT count(*) FROM gen_vocab) <> current_setting('gen.words')::int THEN
        RAISE EXCEPTION 'catalog_gen: % generated words, not %', (SELECT count(*) FROM gen_vocab),
            current_setting('gen.words');
    END IF;
END $$;

-- author k: first name, initial, last name (and a second last name from
-- k = 65000 on), all distinct; k is scrambled first (7919 is prime to
-- 65000) so that a small catalog still gets varied surnames
CREATE FUNCTION pg_temp.author_name(k bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT w.first[1 + (s % 50)::int] || ' ' || chr(65 + ((s / 50) % 26)::int) || '. '
           || w.last[1 + ((s / 1300) % 50)::int]
           || CASE WHEN k >= 65000 THEN '-' || w.last[1 + ((k / 65000) % 50)::int] ELSE '' END
      FROM w, (SELECT ((k % 65000) * 7919) % 65000 AS s) x
$$;

INSERT INTO categories (name, slug)
SELECT r, 'gen-' || lower(r) FROM w, unnest(w.root) r
ON CONFLICT (slug) DO NOTHING;
INSERT INTO categories (parent_id, name, slug)
SELECT p.id, r || ' ' || c, 'gen-' || lower(r) || '-' || lower(c)
  FROM w, unnest(w.root) r, unnest(w.child) c
  JOIN categories p ON true
 WHERE p.slug = 'gen-' || lower(r)
ON CONFLICT (slug) DO NOTHING;
CREATE TEMP TABLE gen_cats AS
SELECT (row_number() OVER (ORDER BY slug)) - 1 AS k, id FROM categories
 WHERE slug LIKE 'gen-%-%';

INSERT INTO warehouses (code, name, region) VALUES
    ('GEN-EU', 'Rotterdam', 'eu'), ('GEN-US', 'Memphis', 'us'), ('GEN-AP', 'Singapore', 'ap')
ON CONFLICT (code) DO NOTHING;
CREATE TEMP TABLE gen_wh AS
SELECT (row_number() OVER (ORDER BY code)) - 1 AS k, id FROM warehouses WHERE code LIKE 'GEN-%';

INSERT INTO users (email, display_name, password_hash)
SELECT 'reader' || k || '@generated.invalid', pg_temp.author_name(k * 7 + 3), '!'
  FROM generate_series(0, 299) k
 WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(email) = 'reader' || k || '@generated.invalid');
CREATE TEMP TABLE gen_users AS
SELECT (row_number() OVER (ORDER BY id)) - 1 AS k, id FROM users WHERE email LIKE 'reader%@generated.invalid';
SQL

cat <<SQL
\\echo catalog_gen: authors
INSERT INTO authors (name)
SELECT pg_temp.author_name(k) FROM generate_series(0, $AUTHORS - 1) k
 WHERE NOT EXISTS (SELECT 1 FROM authors a WHERE a.name = pg_temp.author_name(k));
ANALYZE authors;
CREATE TEMP TABLE gen_authors AS
SELECT k, (SELECT min(a.id) FROM authors a WHERE a.name = pg_temp.author_name(k)) AS id, pg_temp.author_name(k) AS name
  FROM generate_series(0, $AUTHORS - 1) k;
CREATE UNIQUE INDEX ON gen_authors (k);
ANALYZE gen_authors;
SQL

for (( lo = have; lo < N; lo += BATCH )); do
    hi=$(( lo + BATCH < N ? lo + BATCH : N ))
    cat <<SQL
BEGIN;
CREATE TEMP TABLE gen_b ON COMMIT DROP AS
SELECT i,
       '9798' || lpad(i::text, 8, '0') AS p12,
       pg_temp.h(i, 1) AS h1, pg_temp.h(i, 2) AS h2, pg_temp.h(i, 3) AS h3,
       pg_temp.h(i, 4) AS h4, pg_temp.h(i, 5) AS h5,
       pg_temp.zipf(pg_temp.h(i, 51), $WORDS) AS z1, pg_temp.zipf(pg_temp.h(i, 52), $WORDS) AS z2,
       pg_temp.zipf(pg_temp.h(i, 53), $WORDS) AS z3, pg_temp.zipf(pg_temp.h(i, 54), $WORDS) AS z4,
       pg_temp.zipf(pg_temp.h(i, 55), $WORDS) AS z5, pg_temp.zipf(pg_temp.h(i, 56), $WORDS) AS z6,
       pg_temp.h(i, 57) % 4 AS hv
  FROM generate_series($lo, $hi - 1) i;

CREATE TEMP TABLE gen_t ON COMMIT DROP AS
SELECT g.i, g.h1, g.h2, g.h3, g.h4, g.h5,
       g.p12 || ((10 - (SELECT sum(substr(g.p12, d, 1)::int * CASE WHEN d % 2 = 0 THEN 3 ELSE 1 END)
                        FROM generate_series(1, 12) d) % 10) % 10)::text AS isbn13,
       CASE g.h1 % 4
            WHEN 0 THEN 'A History of the ' || initcap(g.adj) || ' ' || initcap(g.noun)
            WHEN 1 THEN 'The ' || initcap(g.adj) || ' ' || initcap(g.noun)
            WHEN 2 THEN initcap(g.noun2) || ' of ' || pg_temp.pick(w.place, g.h3)
            ELSE 'The ' || initcap(g.noun) || ' and the ' || initcap(pg_temp.pick(w.noun, g.h2))
       END || CASE WHEN g.h4 % 7 = 0 THEN ' ' || (2 + g.h4 % 5)::text ELSE '' END AS title,
       a1.name AS a1, CASE WHEN g.h5 % 5 = 0 THEN a2.name END AS a2,
       a1.id AS a1id, CASE WHEN g.h5 % 5 = 0 AND a2.id <> a1.id THEN a2.id END AS a2id,
       'A ' || pg_temp.pick(w.adj, g.h4) || ' story of a ' || pg_temp.pick(w.noun, g.h5) || ' and a '
           || pg_temp.pick(w.noun, g.h1 / 7) || ' in ' || pg_temp.pick(w.place, g.h2 / 5)
           || coalesce('. It tells of ' || v3.word || ', ' || v4.word || ' and ' || v5.word, '')
           || '.' AS description,
       ARRAY[pg_temp.pick(w.noun, g.h4 / 3), coalesce(v6.word, pg_temp.pick(w.adj, g.h5 / 3))] AS keywords
  FROM (SELECT b.*,
               -- half of the titles' adjectives and nouns from the long vocabulary
               -- (GEN_WORDS=0: none, so always the hand-picked word)
               coalesce(CASE WHEN b.hv % 2 = 0 THEN v1.word END, pg_temp.pick(w.adj, b.h2)) AS adj,
               coalesce(CASE WHEN b.hv / 2 = 0 THEN v2.word END, pg_temp.pick(w.noun, b.h3)) AS noun,
               coalesce(CASE WHEN b.hv / 2 = 0 THEN v2.word END, pg_temp.pick(w.noun, b.h2)) AS noun2
          FROM gen_b b CROSS JOIN w
          LEFT JOIN gen_vocab v1 ON v1.r = b.z1
          LEFT JOIN gen_vocab v2 ON v2.r = b.z2) g
  CROSS JOIN w
  LEFT JOIN gen_vocab v3 ON v3.r = g.z3
  LEFT JOIN gen_vocab v4 ON v4.r = g.z4
  LEFT JOIN gen_vocab v5 ON v5.r = g.z5
  LEFT JOIN gen_vocab v6 ON v6.r = g.z6
  JOIN gen_authors a1 ON a1.k = g.h2 % $AUTHORS
  JOIN gen_authors a2 ON a2.k = g.h3 % $AUTHORS;

CREATE TEMP TABLE gen_ins ON COMMIT DROP AS
WITH ins AS (
    INSERT INTO books (isbn13, title, description, keywords, language, pages, published_on,
                       publisher, format, price_cents, currency, popularity, title_doc, search_doc,
                       category_ids)
    SELECT t.isbn13, t.title, t.description, t.keywords, 'en', 80 + (t.h1 % 900)::int,
           date '1950-01-01' + (t.h2 % 27000)::int,
           pg_temp.pick(w.publisher, t.h3), pg_temp.pick(w.format, t.h4),
           (3 + t.h5 % 48) * 100 - 1, 'USD',
           (100000 / (1 + (t.h1 / 3) % 5000))::int,
           setweight(to_tsvector('simple', t.title || ' ' || t.a1 || ' ' || coalesce(t.a2, '')), 'A'),
           setweight(to_tsvector('simple', t.title || ' ' || t.a1 || ' ' || coalesce(t.a2, '')), 'A')
           || setweight(to_tsvector('simple', array_to_string(t.keywords, ' ')), 'B')
           || setweight(to_tsvector('simple', t.description), 'C'),
           ARRAY(SELECT DISTINCT c.id FROM gen_cats c
                  WHERE c.k = t.h3 % 48 OR (t.h4 % 10 = 0 AND c.k = t.h4 % 48) ORDER BY 1)
      FROM gen_t t CROSS JOIN w
    ON CONFLICT (isbn13) WHERE deleted_at IS NULL DO NOTHING
    RETURNING id, isbn13)
SELECT ins.id, t.* FROM ins JOIN gen_t t ON t.isbn13 = ins.isbn13;

INSERT INTO book_authors (book_id, author_id, position)
SELECT id, a1id, 0 FROM gen_ins
UNION ALL
SELECT id, a2id, 1 FROM gen_ins WHERE a2id IS NOT NULL;

INSERT INTO book_categories (book_id, category_id)
SELECT g.id, c.id FROM gen_ins g JOIN gen_cats c ON c.k = g.h3 % 48
UNION
SELECT g.id, c.id FROM gen_ins g JOIN gen_cats c ON c.k = g.h4 % 48 WHERE g.h4 % 10 = 0;

INSERT INTO stock (book_id, warehouse_id, on_hand, reserved)
SELECT g.id, wh.id,
       CASE WHEN pg_temp.h(g.i, 10 + wh.k::int) % 7 = 0 THEN 0
            ELSE (pg_temp.h(g.i, 20 + wh.k::int) % 40)::int END, 0
  FROM gen_ins g CROSS JOIN gen_wh wh
 WHERE g.h5 % 8 <> 0;          -- one book in eight is in no warehouse at all

INSERT INTO reviews (book_id, user_id, rating, text)
SELECT g.id, u.id, 1 + (pg_temp.h(g.i, 30 + r) % 5)::int,
       'A ' || pg_temp.pick(w.adj, pg_temp.h(g.i, 40 + r)) || ' read.'
  FROM gen_ins g CROSS JOIN generate_series(0, 2) r CROSS JOIN w
  JOIN gen_users u ON u.k = (g.h1 + r * 97) % 300
 WHERE g.h2 % 3 = 0 AND r <= g.h3 % 3
ON CONFLICT (book_id, user_id) DO NOTHING;

UPDATE books b SET rating_count = s.n, rating_sum = s.total
  FROM (SELECT r.book_id, count(*) AS n, sum(r.rating) AS total
          FROM reviews r JOIN gen_ins g ON g.id = r.book_id GROUP BY r.book_id) s
 WHERE b.id = s.book_id;
COMMIT;
\\echo catalog_gen: $hi / $N books
SQL
done

cat <<'SQL'
\echo catalog_gen: vocabulary and statistics
INSERT INTO catalog_words (word)
SELECT DISTINCT lower(x) FROM w, unnest(w.adj || w.noun || w.first || w.last || w.place
                                        || ARRAY['history', 'story', 'of', 'the', 'and', 'in']) x
UNION
SELECT DISTINCT lower(p) FROM w, unnest(w.place) pl, regexp_split_to_table(pl, ' ') p
ON CONFLICT DO NOTHING;
INSERT INTO catalog_words (word)
SELECT word FROM ts_stat('SELECT title_doc FROM books WHERE isbn13 LIKE ''9798%''')
 WHERE length(word) BETWEEN 2 AND 64
ON CONFLICT DO NOTHING;
ANALYZE books; ANALYZE book_authors; ANALYZE book_categories; ANALYZE stock; ANALYZE reviews;
ANALYZE authors; ANALYZE catalog_words;
-- search's dense words now, not at the catalog task's next run
-- (sql/022_search_dense_pairs.sql)
SELECT 'catalog_gen: ' || search_dense_pairs_refresh()
       || ' words joined or left the dense words of search';
-- every typo of the benchmark still stands for the word it was made from
DO $$
DECLARE
    k int;
BEGIN
    FOR k IN 1 .. 6 LOOP
        IF NOT EXISTS (SELECT 1 FROM w, catalog_search_terms(w.typo[k]) t
                        WHERE t.word = w.typo_target[k]) THEN
            RAISE EXCEPTION 'catalog_gen: the typo % no longer finds %',
                (SELECT typo[k] FROM w), (SELECT typo_target[k] FROM w);
        END IF;
    END LOOP;
END $$;
SELECT 'catalog_gen: ' || count(*) || ' words in the vocabulary, '
       || count(*) FILTER (WHERE ndoc > 0) || ' in some book'
  FROM catalog_words;
SQL
} | "${PSQL[@]}" -f - | sed -u 's/^/  /'

echo "catalog_gen: $N books in the catalog ($(( $(date +%s) - t0 )) s)"
