// Search's corpus: a small catalog of made-up words, with the expected top
// results for every kind of query of the benchmark's mix (a word in a
// category, two words, one-letter typos including a transposition, a
// price cap with in stock, a prefix, a surname, a common word, an ISBN),
// the facets of a search, suggestions as you type, and the postings kept
// in step with the admin's changes and with popularity, in the same
// transaction (sql/008_search.sql, sql/014_search_speed.sql,
// sql/015_search_vocabulary.sql, sql/016_search_rare_words.sql,
// sql/022_search_dense_pairs.sql, sql/023_search_word_categories.sql).
//
// Every word is random per run, so other tests' books never interfere and
// the expected lists are exact.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { api, sql, registerUser } from './lib.mjs';

const LETTERS = 'bcdfghjklmnpqrstvwz';
// a made-up word of 9 letters, consonants and vowels alternating so that
// its typos are not other corpus words
const made = () => Array.from({ length: 9 }, (_, i) => (i % 2 ? 'aeiou'[randomInt(5)] : LETTERS[randomInt(LETTERS.length)])).join('');
const tag = () => randomBytes(4).toString('hex');
// a word in no book: 18 letters, so neither a prefix of nor one typo away
// from any word the suites make (made() words of other tests included,
// which a 9-letter query could be one letter away from)
const nowhere = () => made() + made();

let admin;
let warehouse;
const W = {};        // the corpus's words
const B = {};        // its books by name
const C = {};        // its categories

function isbn13() {
  const d = [9, 7, 9, ...Array.from({ length: 9 }, () => randomInt(10))];
  const s = d.reduce((a, x, i) => a + x * (i % 2 ? 3 : 1), 0);
  return d.join('') + String((10 - (s % 10)) % 10);
}

const asAdmin = (method, path, body) => api(method, path, body, { token: admin.token });

async function book(name, fields, onHand) {
  const r = await asAdmin('POST', '/api/v1/admin/books', {
    isbn: isbn13(), authors: ['Pat Plain'], price_cents: 1500, description: '', ...fields,
  });
  assert.equal(r.status, 201, r.text);
  B[name] = r.json.book;
  if (onHand != null) {
    const s = await asAdmin('PUT', `/api/v1/admin/inventory/${r.json.book.id}/${warehouse.id}`, { on_hand: onHand });
    assert.equal(s.status, 200, s.text);
  }
  return r.json.book;
}

async function category(name, parentId) {
  return Number(await sql(
    "INSERT INTO categories (parent_id, name, slug) VALUES (NULLIF(:'p1', '')::bigint, :'p2', :'p3') RETURNING id",
    parentId ?? '', name, `${name.toLowerCase().replace(/\W+/g, '-')}-${tag()}`));
}

async function search(query) {
  const r = await api('GET', `/api/v1/books/search?${query}`);
  assert.equal(r.status, 200, `${query}: ${r.text}`);
  return r.json;
}

const ids = async (query) => (await search(query)).books.map((b) => b.id);

// n books straight into SQL, titled format(title, i), with the description
// desc, popularity top - i (so the first is the most popular); their
// ISBNs a run from a random start (thousands of random ones would meet)
const ranked = (title, desc, n, top) => sql(
  `INSERT INTO books (isbn13, title, description, price_cents, popularity, title_doc, search_doc)
   SELECT '979' || lpad((:'p5'::bigint + i)::text, 10, '0'), t, :'p2', 1000,
          :'p4'::int - i, to_tsvector('simple', t), to_tsvector('simple', t || ' ' || :'p2')
     FROM (SELECT i, format(:'p1', i) AS t FROM generate_series(1, :'p3'::int) i) g`,
  title, desc, n, top, randomInt(9e8) * 10);

// the definition's page of a tsquery: every live book that matches (in
// the category's subtree, when one is given), title matches first, then
// by popularity, then the newer
const rankedPage = async (tsq, cat = '') => (await sql(
  `SELECT coalesce(string_agg(id::text, ',' ORDER BY tier DESC, popularity DESC, id DESC), '')
     FROM (SELECT id, popularity, CASE WHEN title_doc @@ q THEN 2 ELSE 1 END AS tier
             FROM books, to_tsquery('simple', :'p1') q
            WHERE search_doc @@ q AND deleted_at IS NULL
              AND (:'p2' = '' OR category_ids && catalog_subtree(NULLIF(:'p2', '')::bigint))
            ORDER BY tier DESC, popularity DESC, id DESC LIMIT 20) m`, tsq, cat)).split(',').filter(Boolean).map(Number);
// ... of two words: every live book with both
const definitionPage = (a, b) => rankedPage(`${a} & ${b}`);
const names = (...xs) => xs.map((x) => B[x].id);

before(async () => {
  const u = await registerUser('search-admin');
  await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", u.user.id);
  const l = await api('POST', '/api/v1/auth/login', { email: u.email, password: u.password });
  assert.equal(l.status, 200, l.text);
  admin = l.json;
  const w = await asAdmin('POST', '/api/v1/admin/warehouses', { code: `S${tag()}`, name: 'Search', region: 'eu' });
  assert.equal(w.status, 201, w.text);
  warehouse = w.json.warehouse;

  for (const k of ['lamp', 'river', 'mill', 'common', 'surname', 'prefix', 'trans', 'rare1', 'rare2']) W[k] = made();
  C.fiction = await category(`Fiction ${tag()}`);
  C.fictionModern = await category(`Modern ${tag()}`, C.fiction);
  C.science = await category(`Science ${tag()}`);

  // a word in two categories; the title match ranks above the description one
  await book('lampFiction', { title: `The ${W.lamp} Keeper`, category_ids: [C.fictionModern], price_cents: 900 }, 5);
  await book('lampFictionDesc', { title: `Quiet ${tag()}`, description: `a ${W.lamp} in the window`, category_ids: [C.fiction], price_cents: 2500 }, 0);
  await book('lampScience', { title: `${W.lamp} optics`, category_ids: [C.science], price_cents: 1800 });
  // two words: both in the title, one in the title and one in the text, only one
  await book('both', { title: `${W.river} and the ${W.mill}` });
  await book('split', { title: `The ${W.river} road`, description: `near the ${W.mill}` });
  await book('onlyRiver', { title: `${W.river} alone` });
  // words that meet in no title but in one description
  await book('rareText', { title: `${W.rare1} days`, description: `then ${W.rare2}` });
  await book('rareOther', { title: `${W.rare2} nights` });
  // a surname: the author's book above a book that only mentions the name
  await book('byAuthor', { title: `Collected ${tag()}`, authors: [`Ines ${W.surname[0].toUpperCase()}${W.surname.slice(1)}`] });
  await book('aboutAuthor', { title: `Notes ${tag()}`, description: `letters to ${W.surname}` });
  // a common word: the most popular first
  for (let i = 0; i < 5; i++) await book(`common${i}`, { title: `${W.common} volume ${i}`, price_cents: 500 + i * 1000 }, i % 2 ? 3 : null);
  await sql("UPDATE books SET popularity = 100 WHERE id = :'p1'", B.common3.id);
  await sql("UPDATE books SET popularity = 50 WHERE id = :'p1'", B.common1.id);
  await book('prefix', { title: `${W.prefix} tales` });
  await book('trans', { title: `The ${W.trans} harbour` });
});

test('a word in a category (with its subcategories), title matches first', async () => {
  assert.deepEqual(await ids(`q=${W.lamp}&category=${C.fiction}`), names('lampFiction', 'lampFictionDesc'));
  assert.deepEqual(await ids(`q=${W.lamp}&category=${C.science}`), names('lampScience'));
  assert.deepEqual(await ids(`q=${W.lamp}&category=${C.fictionModern}`), names('lampFiction'));
  // equal popularity: the newer book first within a tier
  assert.deepEqual(await ids(`q=${W.lamp}`), names('lampScience', 'lampFiction', 'lampFictionDesc'));
});

test('two words: both in the title first, then one of them elsewhere; never only one', async () => {
  assert.deepEqual(await ids(`q=${W.river}%20${W.mill}`), names('both', 'split'));
  assert.deepEqual(await ids(`q=${W.mill}%20${W.river}`), names('both', 'split'), 'word order does not matter');
  assert.deepEqual(await ids(`q=${W.rare1}%20${W.rare2}`), names('rareText'));
});

test('two words past the merge bound: the index of titles finds what the merged postings did not reach', async () => {
  // The title tier of two words merges their title postings, each side
  // bounded (sql/014_search_speed.sql).  Bounded here to one posting a side
  // (p_scan 1): the first of the one word's is onlyRiver, of the other's
  // both, so the merge meets nothing and the GIN index of titles must find
  // both.  Unbounded, the merge itself finds it.
  const matches = (scan) => sql(
    `SELECT string_agg(m.tier || ':' || m.book_id, ',' ORDER BY m.popularity DESC, m.book_id DESC)
       FROM catalog_search_matches(catalog_search_tsquery('{1,2}', ARRAY[:'p1', :'p2']),
                                   ARRAY[:'p1'], 3, false, '{2}', ARRAY[:'p2'],
                                   NULL, NULL, NULL, false, NULL, NULL, NULL, 21, 21,
                                   NULLIF(:'p3', '')::int, 2) m`, W.river, W.mill, scan);
  assert.equal(await matches('1'), `2:${B.both.id}`, 'past the bound');
  assert.equal(await matches(''), `2:${B.both.id}`, 'within it');
});

test('two words whose first, short merge finds a few: the full merge or the index of titles completes the page', async () => {
  // The title tier of a pair first merges 300 postings a side
  // (catalog_search_merge_first_bound, sql/015_search_vocabulary.sql), then
  // the full depth when that found enough to promise a page, else the GIN
  // index of titles.  Here the first 300 of one word's titles hold 10 books
  // with both words (ranked first), then 400 with that word alone, then
  // 30 more with both: a page of 20 is the 10 and the first 10 of the 30.
  const x = made();
  const y = made();
  const insert = (title, n, popularity) => sql(
    `INSERT INTO books (isbn13, title, price_cents, popularity, title_doc, search_doc)
     SELECT '979' || lpad((floor(random() * 1e10))::bigint::text, 10, '0'), t, 1000, :'p3'::int,
            to_tsvector('simple', t), to_tsvector('simple', t)
       FROM (SELECT format(:'p1', i) AS t FROM generate_series(1, :'p2'::int) i) g
     RETURNING id`, title, n, popularity);
  const top = (await insert(`${x} ${y} first %s`, 10, 900000)).split('\n').map(Number);
  await insert(`${x} alone %s`, 400, 800000);
  const later = (await insert(`${x} ${y} later %s`, 30, 700000)).split('\n').map(Number);
  const desc = (a) => [...a].sort((m, n) => n - m);
  assert.deepEqual(await ids(`q=${x}%20${y}`), [...desc(top), ...desc(later).slice(0, 10)]);
  assert.deepEqual(await ids(`q=${y}%20${x}`), [...desc(top), ...desc(later).slice(0, 10)], 'either word walks');
});

test('two words that meet in few texts or in many: the same page as every match ranked', async () => {
  // The walk of a tier first checks 100 candidates per word and tier
  // (catalog_search_walk_first_bound, sql/016_search_rare_words.sql): few
  // matches there promise few in all, and the GIN indexes answer at once;
  // more, and the full walk goes on.  Either way the page must be the
  // definition's: every book with both words, title matches first, then by
  // popularity.  Two corpora: one where the words meet in one text in ten
  // of the walked word's 6,000 books (the full walk), one where they meet
  // in 12 of 600 (the GIN indexes), and one where the short walk's page
  // is not the best one.
  const [x, y, u, v] = [made(), made(), made(), made()];
  const insert = (title, desc, n, every) => sql(
    `INSERT INTO books (isbn13, title, description, price_cents, popularity, title_doc, search_doc)
     SELECT '979' || lpad((:'p5'::bigint + i)::text, 10, '0'), t, d, 1000,
            (i * 7919) % 100003, to_tsvector('simple', t), to_tsvector('simple', t || ' ' || d)
       FROM (SELECT i, format(:'p1', i) AS t,
                    CASE WHEN i % :'p4'::int = 0 THEN :'p2' ELSE '' END AS d
               FROM generate_series(1, :'p3'::int) i) g`, title, desc, n, every, randomInt(9e8) * 10);
  await insert(`${x} vol %s`, `about ${y}`, 6000, 10);
  await insert(`${y} part %s`, '', 6600, 1);
  await insert(`${u} vol %s`, `about ${v}`, 600, 50);
  await insert(`${v} part %s`, '', 700, 1);
  // a walk of two streams (s's title postings, s's text postings) whose
  // short pass finds a page in one while the other's first 100 match
  // nothing and its better matches lie past them: that page is not exact,
  // and the full walk must find the better ones
  const [s1, s2] = [made(), made()];
  await ranked('Plain %s', `of ${s1}`, 100, 990000);
  await ranked('Better %s', `of ${s1} and ${s2}`, 30, 900000);
  await ranked(`${s1} %s`, `of ${s2}`, 150, 800000);
  await ranked(`${s2} %s`, '', 300, 700000);
  for (const [a, b, n] of [[x, y, 20], [y, x, 20], [u, v, 12], [v, u, 12], [s1, s2, 20], [s2, s1, 20]]) {
    const want = await definitionPage(a, b);
    assert.equal(want.length, n, `${a} ${b}: the definition's page`);
    assert.deepEqual(await ids(`q=${a}%20${b}`), want, `${a} ${b}`);
  }
});

test("a short walk whose page is not the best: the full walk finds the better matches", async () => {
  // The short walk (sql/016_search_rare_words.sql) runs where the other
  // word is in so few books that the full walk would expect less than a
  // page (its share of the books, from the planner's count, times 1,000
  // candidates under 21).  Here s2 walks (280 books) with two streams:
  // its title postings, whose first 100 all match, and its text postings,
  // whose first 100 match nothing and whose better matches lie past them.
  // The short walk's page is then not exact, and the full walk must find
  // the better ones.
  const [s1, s2] = [made(), made()];
  await ranked('Plain %s', `of ${s2}`, 100, 990000);
  await ranked('Better %s', `of ${s2} and ${s1}`, 30, 900000);
  await ranked(`${s2} %s`, `of ${s1}`, 150, 800000);
  await ranked(`${s1} solo %s`, '', 200, 600000);
  // s1's 380 books under 1.5 % of the catalog, the count analyzed
  const n = Number(await sql('SELECT count(*) FROM books'));
  if (n < 26000) await ranked(`${made()} filler %s`, '', 26000 - n, 1000);
  await sql('ANALYZE books');
  const better = (await sql(`SELECT string_agg(id::text, ',' ORDER BY popularity DESC) FROM books WHERE title LIKE 'Better %' AND search_doc @@ to_tsquery('simple', :'p1')`, s1)).split(',').map(Number);
  for (const [a, b] of [[s1, s2], [s2, s1]]) {
    const want = await definitionPage(a, b);
    assert.deepEqual(want, better.slice(0, 20), 'the definition: the 30 better ones first');
    assert.deepEqual(await ids(`q=${a}%20${b}`), want, `${a} ${b}`);
  }
});

test('typos: a transposition, a missing, an extra and a wrong letter', async () => {
  const w = W.trans;
  const typos = {
    transposition: w.slice(0, 3) + w[4] + w[3] + w.slice(5),
    missing: w.slice(0, 4) + w.slice(5),
    extra: w.slice(0, 4) + w[4] + w.slice(4),
    wrong: w.slice(0, 5) + (w[5] === 'z' ? 'x' : 'z') + w.slice(6),
  };
  for (const [kind, typo] of Object.entries(typos)) {
    assert.deepEqual(await ids(`q=${typo}`), names('trans'), `${kind}: ${typo}`);
    assert.deepEqual(await ids(`q=the%20${typo}`), names('trans'), `${kind} after another word: the ${typo}`);
    assert.deepEqual(await ids(`q=${typo}%20harbour`), names('trans'), `${kind} before another word: ${typo} harbour`);
  }
});

test('a price cap with in stock', async () => {
  assert.deepEqual(await ids(`q=${W.lamp}&max_price=2000&in_stock=true`), names('lampFiction'));
  assert.deepEqual(await ids(`q=${W.common}&max_price=2500&in_stock=true`), names('common1'));
  assert.deepEqual(await ids(`q=${W.common}&min_price=1500&max_price=3500`), names('common3', 'common1', 'common2'));
});

test('a prefix, a surname, a common word by popularity, an ISBN', async () => {
  assert.deepEqual(await ids(`q=${W.prefix.slice(0, 5)}`), names('prefix'));
  assert.deepEqual(await ids(`q=tales%20${W.prefix.slice(0, 6)}`), names('prefix'));
  assert.deepEqual(await ids(`q=${W.surname}`), names('byAuthor', 'aboutAuthor'));
  assert.deepEqual(await ids(`q=${W.surname.toUpperCase()}`), names('byAuthor', 'aboutAuthor'));
  const common = await ids(`q=${W.common}`);
  assert.deepEqual(common.slice(0, 2), names('common3', 'common1'), 'the most popular first');
  assert.equal(common.length, 5);
  const i = B.common4.isbn13;
  assert.deepEqual(await ids(`q=${i.slice(0, 3)}-${i.slice(3, 4)}-${i.slice(4, 9)}-${i.slice(9, 12)}-${i.slice(12)}`), names('common4'));
  assert.deepEqual(await ids(`q=${i}&max_price=100`), [], 'filters apply to an ISBN too');
  assert.deepEqual(await ids(`q=${nowhere()}`), [], 'a word in no book finds nothing');
});

test('completions of a prefix of any length: the 8 most frequent words, as a scan of the vocabulary finds them', async () => {
  // catalog_words_completions (sql/015_search_vocabulary.sql) answers from
  // indexes by the first one or two letters and by byte-order range; each
  // branch must agree with the plain definition, a LIKE over the whole
  // vocabulary, under the worker's generic plans
  const prefixes = [...new Set(Object.values(W).flatMap((w) => Array.from({ length: w.length }, (_, k) => w.slice(0, k + 1))))];
  const differ = await sql(
    `SET plan_cache_mode = force_generic_plan;
     SELECT string_agg(p, ',') FROM unnest(string_to_array(:'p1', ',')) AS p
      WHERE (SELECT array_agg(x.word ORDER BY x.ndoc DESC, x.word)
               FROM (SELECT cw.word, cw.ndoc FROM catalog_words cw
                      WHERE (cw.word COLLATE "C") LIKE p || '%' AND cw.ndoc > 0
                      ORDER BY cw.ndoc DESC, cw.word LIMIT 8) x)
            IS DISTINCT FROM
            (SELECT array_agg(c.word ORDER BY c.ndoc DESC, c.word) FROM catalog_words_completions(p) c)`,
    prefixes.join(','));
  assert.equal(differ, '', `prefixes whose completions differ: ${differ}`);
  assert.ok(prefixes.some((p) => p.length === 1) && prefixes.some((p) => p.length === 2) && prefixes.some((p) => p.length > 2));
});

test('pages of a two-word search with a cursor: each match once, in order', async () => {
  const all = await ids(`q=${W.river}%20${W.mill}`);
  const seen = [];
  let cursor = null;
  do {
    const r = await search(`q=${W.river}%20${W.mill}&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
    seen.push(...r.books.map((b) => b.id));
    assert.ok(r.facets, 'every page has its facets');
    cursor = r.next_cursor;
  } while (cursor && seen.length < 10);
  assert.deepEqual(seen, all);
});

test('facets: top-level categories, price bands and in stock over the whole match set', async () => {
  const { facets } = await search(`q=${W.lamp}`);
  assert.equal(facets.approximate, false);
  assert.deepEqual(facets.categories.map((c) => [c.id, c.count]).sort(), [[C.fiction, 2], [C.science, 1]].sort(),
    'subcategories count under their top-level category');
  assert.ok(facets.categories.every((c) => typeof c.name === 'string'));
  const band = (min) => facets.price_bands.find((b) => b.min === min);
  assert.equal(band(0).count, 1, '9.00');
  assert.equal(band(1000).count, 1, '18.00');
  assert.equal(band(2000).count, 1, '25.00');
  assert.equal(band(1000).max, 2000);
  assert.equal(facets.price_bands.at(-1).max, null, 'the last band has no top');
  assert.equal(facets.in_stock, 1);

  const filtered = await search(`q=${W.lamp}&category=${C.fiction}`);
  assert.deepEqual(filtered.facets.categories.map((c) => [c.id, c.count]), [[C.fiction, 2]], 'facets follow the filters');
  const none = await search(`q=${nowhere()}`);
  assert.deepEqual(none.facets.categories, []);
  assert.equal(none.facets.in_stock, 0);
});

test('suggestions: titles and authors by prefix', async () => {
  const r = await api('GET', `/api/v1/books/suggest?q=${W.prefix.slice(0, 6)}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.suggestions, [{ kind: 'title', text: B.prefix.title, book_id: B.prefix.id }]);

  const a = await api('GET', `/api/v1/books/suggest?q=ines%20${W.surname.slice(0, 5)}`);
  assert.equal(a.status, 200, a.text);
  const author = a.json.suggestions.find((s) => s.kind === 'author');
  assert.ok(author, a.text);
  assert.equal(author.author_id, B.byAuthor.authors[0].id);
  assert.match(author.text, /^Ines /);

  const none = await api('GET', `/api/v1/books/suggest?q=${nowhere()}`);
  assert.deepEqual(none.json, { suggestions: [] });
  assert.equal((await api('GET', '/api/v1/books/suggest')).status, 400, 'q is required');
  assert.equal((await api('GET', `/api/v1/books/suggest?q=${'a'.repeat(101)}`)).status, 400, 'q too long');
});

test('bad input: 4xx in the error shape', async () => {
  const cases = [
    ['q=x&category=999999999', 404, 'not_found'],
    ['q=x&category=abc', 400, null],
    ['q=x&in_stock=maybe', 400, null],
    ['q=x&max_price=-1', 400, null],
    ['q=x&cursor=bogus', 400, 'invalid_cursor'],
    [`q=${'a'.repeat(201)}`, 400, null],
    ['q=', 400, null],
  ];
  for (const [query, status, code] of cases) {
    const r = await api('GET', `/api/v1/books/search?${query}`);
    assert.equal(r.status, status, `${query}: ${r.text}`);
    assert.equal(typeof r.json.error?.code, 'string', query);
    if (code) assert.equal(r.json.error.code, code, query);
  }
});

test("the admin's changes reach search in the same transaction", async () => {
  const old = made();
  const fresh = made();
  const b = await book('changing', { title: `${old} story`, price_cents: 1200 });
  assert.deepEqual(await ids(`q=${old}`), [b.id]);

  let r = await asAdmin('PUT', `/api/v1/admin/books/${b.id}`, { title: `${fresh} story`, price_cents: 3000 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await ids(`q=${old}`), [], 'the old word is gone at once');
  assert.deepEqual(await ids(`q=${fresh}`), [b.id]);
  assert.deepEqual(await ids(`q=${fresh}&max_price=2000`), [], 'the new price filters');
  const s = await api('GET', `/api/v1/books/suggest?q=${fresh.slice(0, 5)}`);
  assert.deepEqual(s.json.suggestions.map((x) => x.book_id), [b.id]);

  // stock reaches the in-stock filter and facet without touching the book
  assert.deepEqual(await ids(`q=${fresh}&in_stock=true`), []);
  assert.equal((await search(`q=${fresh}`)).facets.in_stock, 0);
  r = await asAdmin('PUT', `/api/v1/admin/inventory/${b.id}/${warehouse.id}`, { on_hand: 2 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await ids(`q=${fresh}&in_stock=true`), [b.id]);
  assert.equal((await search(`q=${fresh}`)).facets.in_stock, 1);
  r = await asAdmin('PUT', `/api/v1/admin/inventory/${b.id}/${warehouse.id}`, { on_hand: 0 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await ids(`q=${fresh}&in_stock=true`), [], 'the last copy gone');
  assert.equal((await search(`q=${fresh}`)).facets.in_stock, 0);
  r = await asAdmin('PUT', `/api/v1/admin/inventory/${b.id}/${warehouse.id}`, { on_hand: 2 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await ids(`q=${fresh}&in_stock=true`), [b.id], 'and back');

  r = await asAdmin('DELETE', `/api/v1/admin/books/${b.id}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await ids(`q=${fresh}`), [], 'a deleted book is gone');
  const postings = await sql("SELECT count(*) FROM search_postings WHERE book_id = :'p1'", b.id);
  assert.equal(Number(postings), 0, 'and so are its postings');
});

test('a dense word and a word its titles never share: the same page as every match ranked, and the pair counts follow every writer', async () => {
  // sql/022_search_dense_pairs.sql.  A pair with a dense word starts at the
  // rest tier when search_dense_pairs says no title holds both.  The word
  // is made dense by hand with the function the periodic refresh calls,
  // and leaves the set at the end.
  const dense = made();
  const other = made();
  const third = made();
  const pairs = async (w) => sql(
    "SELECT coalesce(sum(n), 0) FROM search_dense_pairs WHERE dense = :'p1' AND word = :'p2'", dense, w);
  // what the books say, counted from their titles: the table must agree
  const recount = async () => sql(
    `SELECT count(*) FROM (
       SELECT w.word, count(*) AS n
         FROM books b, unnest(tsvector_to_array(b.title_doc)) w(word)
        WHERE b.deleted_at IS NULL AND b.title_doc @@ to_tsquery('simple', :'p1')
          AND w.word <> :'p1' AND length(w.word) BETWEEN 2 AND 64
        GROUP BY w.word) t
       FULL JOIN (SELECT word, n FROM search_dense_pairs WHERE dense = :'p1' AND n <> 0) s USING (word)
      WHERE t.n IS DISTINCT FROM s.n`, dense);

  const a = await book('denseA', { title: `${dense} ${third} one`, description: `about ${other}` });
  await book('denseB', { title: `${dense} two`, description: `${other} again` });
  await book('otherA', { title: `${other} far`, description: `no ${dense} here` });
  await book('otherOnly', { title: `${other} only` });
  await sql("SELECT search_dense_words_set(ARRAY[:'p1'], '{}')", dense);
  try {
    assert.equal(await sql("SELECT count(*) FROM search_dense_words WHERE word = :'p1'", dense), '1');
    assert.equal(await pairs(other), '0', 'no title holds both');
    assert.equal(await pairs(third), '1');
    assert.equal(await recount(), '0');

    // the title tier is empty: every book with both, in the rest tier
    let page = await ids(`q=${dense}%20${other}`);
    assert.deepEqual(page, await definitionPage(dense, other));
    assert.deepEqual([...page].sort(), names('denseA', 'denseB', 'otherA').sort());
    assert.deepEqual(await ids(`q=${other}%20${dense}`), page, 'word order does not matter');

    // a title with both, from the admin: counted at once, and first
    const both = await book('denseBoth', { title: `${other} of ${dense}` });
    assert.equal(await pairs(other), '1');
    page = await ids(`q=${dense}%20${other}`);
    assert.equal(page[0], both.id);
    assert.deepEqual(page, await definitionPage(dense, other));

    // its title changed: the pair leaves with it
    let r = await asAdmin('PUT', `/api/v1/admin/books/${both.id}`, { title: `${dense} plain` });
    assert.equal(r.status, 200, r.text);
    assert.equal(await pairs(other), '0');
    assert.deepEqual(await ids(`q=${dense}%20${other}`), await definitionPage(dense, other));

    // a deleted book's title leaves its pairs; a popularity change moves nothing
    await sql("UPDATE books SET popularity = popularity + 7 WHERE id = :'p1'", B.denseB.id);
    r = await asAdmin('DELETE', `/api/v1/admin/books/${a.id}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(await pairs(third), '0');
    assert.equal(await recount(), '0');
    assert.deepEqual(await ids(`q=${dense}%20${other}`), await definitionPage(dense, other));
  } finally {
    await sql("SELECT search_dense_words_set('{}', ARRAY[:'p1'])", dense);
  }
  assert.equal(await sql("SELECT count(*) FROM search_dense_pairs WHERE dense = :'p1'", dense), '0');
});

test("a word inside a category: a tier the category does not hold is skipped, the same page as every match ranked, and the counts follow every writer", async () => {
  // sql/023_search_word_categories.sql.  search_word_categories counts a
  // word's postings per tier and category; a query of one position inside
  // a category skips a tier that none of the category's subtree holds.
  const w = made();
  const top = await category(`Top ${tag()}`);
  const sub = await category(`Sub ${tag()}`, top);
  const other = await category(`Other ${tag()}`);
  const empty = await category(`Empty ${tag()}`);
  // what the postings say, counted per tier and category: the table must agree
  const recount = async () => sql(
    `SELECT count(*) FROM (
       SELECT p.tier, c.id AS category_id, count(*) AS n
         FROM search_postings p, unnest(p.category_ids) c(id)
        WHERE p.word = :'p1' GROUP BY p.tier, c.id) t
       FULL JOIN (SELECT tier, category_id, n FROM search_word_categories
                   WHERE word = :'p1' AND n <> 0) s USING (tier, category_id)
      WHERE t.n IS DISTINCT FROM s.n`, w);
  // the page from the API, or from catalog_search itself where a change
  // made in SQL has not passed the catalog's cache
  const page = async (cat, direct) => (direct
    ? (await sql(`SELECT coalesce(string_agg(s.id::text, ',' ORDER BY s.ord), '')
                    FROM catalog_search(:'p1', NULL, :'p2'::bigint, NULL, NULL, false,
                                        NULL, NULL, NULL, 21) WITH ORDINALITY AS s(tier, popularity, id, facets, ord)
                   WHERE s.id IS NOT NULL`, w, cat)).split(',').filter(Boolean).map(Number)
    : await ids(`q=${w}&category=${cat}`));
  const check = async (what, direct = false) => {
    assert.equal(await recount(), '0', `${what}: the counts`);
    for (const cat of [top, sub, other, empty]) {
      assert.deepEqual(await page(cat, direct), await rankedPage(w, String(cat)), `${what}: category ${cat}`);
    }
  };

  const inTitle = await book('wcTitle', { title: `The ${w} road`, category_ids: [sub] });
  const inText = await book('wcText', { title: `Quiet ${tag()}`, description: `a ${w} at dusk`, category_ids: [top] });
  const elsewhere = await book('wcOther', { title: `${w} elsewhere`, category_ids: [other] });
  await check('inserted');
  assert.deepEqual(await ids(`q=${w}&category=${top}`), [inTitle.id, inText.id], 'the title tier, then the rest');
  assert.deepEqual(await ids(`q=${w}&category=${other}`), [elsewhere.id], 'no rest tier there');
  assert.deepEqual(await ids(`q=${w}&category=${empty}`), [], 'neither tier');

  // a book moved to another category, a title changed, a popularity changed
  let r = await asAdmin('PUT', `/api/v1/admin/books/${elsewhere.id}`, { category_ids: [sub, other] });
  assert.equal(r.status, 200, r.text);
  r = await asAdmin('PUT', `/api/v1/admin/books/${inTitle.id}`, { title: `The long road ${tag()}`, description: `past the ${w}` });
  assert.equal(r.status, 200, r.text);
  await sql("UPDATE books SET popularity = popularity + 9 WHERE id = :'p1'", inText.id);
  await check('changed');
  assert.equal((await ids(`q=${w}&category=${sub}`))[0], elsewhere.id, 'the moved book leads its new category');

  // deleted, then restored
  r = await asAdmin('DELETE', `/api/v1/admin/books/${elsewhere.id}`);
  assert.equal(r.status, 200, r.text);
  await check('deleted');
  assert.deepEqual(await ids(`q=${w}&category=${other}`), []);
  await sql("UPDATE books SET deleted_at = NULL WHERE id = :'p1'", elsewhere.id);
  await check('restored', true);
});
