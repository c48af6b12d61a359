// The bookstore catalog through the whole stack (issue 4): browse pages
// every book exactly once while books are added, search finds by title
// word, surname, prefix, typo and ISBN with combined filters, one review
// per user with an exact rating summary, admin endpoints refuse
// non-admins and bad input without changing anything, and the edge's
// Redis cache never shows an old price once the admin's change is
// acknowledged.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { api, redis, sql, registerUser } from './lib.mjs';

let admin;        // {token, user}
let users;        // three plain users
let warehouse;    // {id}
let topCat;       // a category with a subcategory
let subCat;
let otherCat;

const tag = () => randomBytes(4).toString('hex');
// a word made of letters only, unlikely to exist anywhere else
const word = (prefix) => prefix + Array.from({ length: 7 }, () => 'abcdefghijklmnoprstuvw'[randomInt(22)]).join('');

// a fresh valid ISBN-10 and its ISBN-13 (the form the catalog stores)
function isbnPair() {
  const d = Array.from({ length: 9 }, () => randomInt(10));
  const s10 = d.reduce((s, x, i) => s + x * (10 - i), 0);
  const c10 = (11 - (s10 % 11)) % 11;
  const isbn10 = d.join('') + (c10 === 10 ? 'X' : String(c10));
  const d13 = [9, 7, 8, ...d];
  const s13 = d13.reduce((s, x, i) => s + x * (i % 2 ? 3 : 1), 0);
  const isbn13 = d13.join('') + String((10 - (s13 % 10)) % 10);
  return { isbn10, isbn13 };
}

const asAdmin = (method, path, body) => api(method, path, body, { token: admin.token });

async function login(email, password) {
  const r = await api('POST', '/api/v1/auth/login', { email, password });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function category(name, parentId) {
  const slug = `${name.toLowerCase()}-${tag()}`;
  const id = await sql(
    "INSERT INTO categories (parent_id, name, slug) VALUES (NULLIF(:'p1', '')::bigint, :'p2', :'p3') RETURNING id",
    parentId ?? '', name, slug);
  return Number(id);
}

async function createBook(fields) {
  const { isbn13 } = isbnPair();
  const body = {
    isbn: isbn13, title: `Book ${tag()}`, authors: ['Anon Ymous'], price_cents: 999,
    ...fields,
  };
  const r = await asAdmin('POST', '/api/v1/admin/books', body);
  assert.equal(r.status, 201, r.text);
  return r.json.book;
}

before(async () => {
  const a = await registerUser('catalog-admin');
  await sql("UPDATE users SET role = 'admin' WHERE id = :'p1'", a.user.id);
  admin = await login(a.email, a.password);
  assert.equal(admin.user.role, 'admin');

  users = [];
  for (let i = 0; i < 3; i++) users.push(await registerUser(`catalog-user${i}`));

  const w = await asAdmin('POST', '/api/v1/admin/warehouses', { code: `W${tag()}`, name: 'Main', region: 'eu' });
  assert.equal(w.status, 201, w.text);
  warehouse = w.json.warehouse;

  topCat = await category('Top');
  subCat = await category('Sub', topCat);
  otherCat = await category('Other');
});

test('browse returns every book of a category (and its subcategories) exactly once while books are added', async () => {
  const cat = await category('Browse');
  const child = await category('BrowseChild', cat);
  const initial = new Set();
  for (let i = 0; i < 24; i++) {
    const b = await createBook({
      title: `${String.fromCharCode(65 + (i % 26))} browse ${tag()}`,
      price_cents: 100 + randomInt(5000),
      category_ids: [i % 3 === 0 ? child : cat],
    });
    initial.add(b.id);
  }

  for (const sort of ['title', 'price', 'newest', 'rating']) {
    // books keep arriving in the category while we page through it
    let adding = true;
    const added = [];
    // a bounded number, so that the walk ends even in the ascending sorts,
    // where new books keep landing ahead of the cursor
    const writer = (async () => {
      while (adding && added.length < 15) {
        const b = await createBook({
          title: `${String.fromCharCode(65 + randomInt(26))} late ${tag()}`,
          price_cents: 100 + randomInt(5000),
          category_ids: [randomInt(2) ? cat : child],
        });
        added.push(b.id);
      }
    })();

    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const q = `/api/v1/books?category=${cat}&sort=${sort}&limit=5${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = await api('GET', q);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.books.length <= 5);
      seen.push(...r.json.books.map((b) => b.id));
      cursor = r.json.next_cursor;
      pages++;
    } while (cursor && pages < 2000);
    adding = false;
    await writer;

    assert.equal(new Set(seen).size, seen.length, `${sort}: a book came twice`);
    for (const id of initial) assert.ok(seen.includes(id), `${sort}: book ${id} missing`);
    for (const id of seen) assert.ok(initial.has(id) || added.includes(id), `${sort}: stranger ${id}`);
    for (const id of added) initial.add(id);   // the next sort must see them too
  }
});

test('browse refuses a bad sort or cursor and answers 404 for an unknown category', async () => {
  assert.equal((await api('GET', '/api/v1/books?sort=colour')).status, 400);
  assert.equal((await api('GET', '/api/v1/books?cursor=notacursor')).status, 400);
  assert.equal((await api('GET', '/api/v1/books?category=999999999')).status, 404);
  const first = await api('GET', '/api/v1/books?sort=price&limit=1');
  assert.equal(first.status, 200);
  if (first.json.next_cursor) {
    // a cursor of one order is no good for another
    const r = await api('GET', `/api/v1/books?sort=title&cursor=${first.json.next_cursor}`);
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'invalid_cursor');
  }
});

test('search finds by title word, surname, prefix, typo, ISBN-10 and hyphenated ISBN-13', async () => {
  const titleWord = word('q');
  const surname = word('Sur');
  const { isbn10, isbn13 } = isbnPair();
  const book = await createBook({
    isbn: isbn10, title: `The ${titleWord} Chronicle`, authors: [`Ada ${surname}`],
    description: 'A long voyage.',
  });
  assert.equal(book.isbn13, isbn13, 'ISBN-10 stored as ISBN-13');

  const finds = async (q) => {
    const r = await api('GET', `/api/v1/books/search?q=${encodeURIComponent(q)}`);
    assert.equal(r.status, 200, r.text);
    return r.json.books.some((b) => b.id === book.id);
  };

  assert.ok(await finds(titleWord), 'title word');
  assert.ok(await finds(titleWord.toUpperCase()), 'case does not matter');
  assert.ok(await finds(surname.toLowerCase()), 'author surname');
  assert.ok(await finds(titleWord.slice(0, 5)), 'prefix');
  assert.ok(await finds(`chronicle ${titleWord.slice(0, 6)}`), 'words and a prefix');
  const typo = titleWord.slice(0, 4) + (titleWord[4] === 'x' ? 'y' : 'x') + titleWord.slice(5);
  assert.ok(await finds(typo), `one-letter typo ${typo}`);
  assert.ok(await finds(isbn10), 'ISBN-10');
  const hyphenated = `${isbn13.slice(0, 3)}-${isbn13.slice(3, 4)}-${isbn13.slice(4, 9)}-${isbn13.slice(9, 12)}-${isbn13.slice(12)}`;
  assert.ok(await finds(hyphenated), 'ISBN-13 with hyphens');
  assert.ok(!(await finds(word('nothing'))), 'an unrelated word finds nothing');

  const r = await api('GET', '/api/v1/books/search');
  assert.equal(r.status, 400, 'q is required');
});

test('search ranks title and author matches above description matches', async () => {
  const w = word('rank');
  const inDescription = await createBook({ title: `Plain ${tag()}`, description: `all about ${w} here` });
  const inTitle = await createBook({ title: `${w} itself` });
  const r = await api('GET', `/api/v1/books/search?q=${w}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.books.map((b) => b.id), [inTitle.id, inDescription.id]);
});

test('search filters combine: category (with subcategories), price range, in stock', async () => {
  const w = word('filt');
  const a = await createBook({ title: `${w} one`, price_cents: 500, category_ids: [subCat] });
  const b = await createBook({ title: `${w} two`, price_cents: 1500, category_ids: [subCat] });
  const c = await createBook({ title: `${w} three`, price_cents: 500, category_ids: [otherCat] });
  const d = await createBook({ title: `${w} four`, price_cents: 700, category_ids: [topCat] });
  for (const book of [a, b, c]) {
    const r = await asAdmin('PUT', `/api/v1/admin/inventory/${book.id}/${warehouse.id}`, { on_hand: 10 });
    assert.equal(r.status, 200, r.text);
  }

  const ids = async (query) => {
    const r = await api('GET', `/api/v1/books/search?q=${w}&${query}`);
    assert.equal(r.status, 200, r.text);
    return r.json.books.map((x) => x.id).sort((x, y) => x - y);
  };
  const sorted = (...xs) => xs.map((x) => x.id).sort((x, y) => x - y);

  assert.deepEqual(await ids(''), sorted(a, b, c, d));
  assert.deepEqual(await ids(`category=${topCat}`), sorted(a, b, d), 'subcategories included');
  assert.deepEqual(await ids(`category=${topCat}&max_price=1000`), sorted(a, d));
  assert.deepEqual(await ids(`category=${topCat}&max_price=1000&in_stock=true`), sorted(a));
  assert.deepEqual(await ids('min_price=600&max_price=2000'), sorted(b, d));
  assert.deepEqual(await ids('in_stock=true'), sorted(a, b, c));
  assert.equal((await api('GET', `/api/v1/books/search?q=${w}&in_stock=maybe`)).status, 400);
  assert.equal((await api('GET', `/api/v1/books/search?q=${w}&min_price=-5`)).status, 400);
});

test('search pages with a cursor, each match once', async () => {
  const w = word('page');
  const made = [];
  for (let i = 0; i < 7; i++) made.push((await createBook({ title: i % 2 ? `${w} t${i}` : `Other ${i}`, description: `${w}` })).id);
  const seen = [];
  let cursor = null;
  do {
    const r = await api('GET', `/api/v1/books/search?q=${w}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.text);
    seen.push(...r.json.books.map((b) => b.id));
    cursor = r.json.next_cursor;
  } while (cursor);
  assert.deepEqual([...seen].sort((x, y) => x - y), [...made].sort((x, y) => x - y));
});

test('one review per user per book (409 for a second); the rating summary is exact', async () => {
  const book = await createBook({});
  const ratings = [5, 2, 4];
  const results = await Promise.all(users.map((u, i) => api('POST', `/api/v1/books/${book.id}/reviews`,
    { rating: ratings[i], text: `review ${i}` }, { token: u.token })));
  for (const r of results) assert.equal(r.status, 201, r.text);

  // the same user again, also racing itself: always 409, never a second row
  const again = await Promise.all([0, 1].map(() => api('POST', `/api/v1/books/${book.id}/reviews`,
    { rating: 1, text: 'again' }, { token: users[0].token })));
  for (const r of again) {
    assert.equal(r.status, 409, r.text);
    assert.equal(r.json.error.code, 'already_reviewed');
  }

  const detail = await api('GET', `/api/v1/books/${book.id}`);
  assert.equal(detail.status, 200);
  assert.equal(detail.json.book.rating_count, 3);
  assert.equal(detail.json.book.rating_avg, 3.67);          // 11 / 3
  assert.equal(detail.json.book.reviews.length, 3);
  const stored = await sql("SELECT count(*) || ':' || sum(rating) FROM reviews WHERE book_id = :'p1'", book.id);
  assert.equal(stored, '3:11');

  for (const bad of [{ rating: 0 }, { rating: 6 }, { rating: 2.5 }, { rating: '5' }]) {
    const r = await api('POST', `/api/v1/books/${book.id}/reviews`, bad, { token: admin.token });
    assert.equal(r.status, 400, JSON.stringify(bad));
  }
  assert.equal((await api('POST', `/api/v1/books/${book.id}/reviews`, { rating: 3 })).status, 401);
  assert.equal((await api('POST', '/api/v1/books/999999999/reviews', { rating: 3 }, { token: admin.token })).status, 404);

  // the reviews list pages newest first
  const page1 = await api('GET', `/api/v1/books/${book.id}/reviews?limit=2`);
  assert.equal(page1.status, 200);
  assert.equal(page1.json.reviews.length, 2);
  const page2 = await api('GET', `/api/v1/books/${book.id}/reviews?limit=2&cursor=${page1.json.next_cursor}`);
  assert.equal(page2.json.reviews.length, 1);
  assert.equal(page2.json.next_cursor, null);
});

test('every admin endpoint answers 403 to a non-admin (and 401 to nobody) and changes nothing', async () => {
  const book = await createBook({ price_cents: 4242 });
  const before = await sql('SELECT (SELECT count(*) FROM books) || \':\' || (SELECT count(*) FROM warehouses) || \':\' || (SELECT count(*) FROM stock_ledger)');
  const calls = [
    ['POST', '/api/v1/admin/books', { isbn: isbnPair().isbn13, title: 'x', authors: ['y'], price_cents: 1 }],
    ['PUT', `/api/v1/admin/books/${book.id}`, { price_cents: 1 }],
    ['DELETE', `/api/v1/admin/books/${book.id}`, undefined],
    ['POST', '/api/v1/admin/warehouses', { code: `X${tag()}`, name: 'n', region: 'r' }],
    ['GET', '/api/v1/admin/warehouses', undefined],
    ['PUT', `/api/v1/admin/inventory/${book.id}/${warehouse.id}`, { on_hand: 5 }],
    ['POST', `/api/v1/admin/inventory/${book.id}/${warehouse.id}/adjust`, { delta: 5, reason: 'r' }],
  ];
  for (const [method, path, body] of calls) {
    const r = await api(method, path, body, { token: users[0].token });
    assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
    assert.equal(r.json.error.code, 'forbidden');
    const anon = await api(method, path, body);
    assert.equal(anon.status, 401, `${method} ${path} anonymous`);
  }
  const after = await sql('SELECT (SELECT count(*) FROM books) || \':\' || (SELECT count(*) FROM warehouses) || \':\' || (SELECT count(*) FROM stock_ledger)');
  assert.equal(after, before);
  const r = await api('GET', `/api/v1/books/${book.id}`);
  assert.equal(r.json.book.price_cents, 4242);
});

test('bad admin input is 400 and changes nothing', async () => {
  const book = await createBook({ price_cents: 777, category_ids: [otherCat] });
  const count = () => sql('SELECT count(*) FROM books');
  const n0 = await count();
  const good = { title: 'Fine', authors: ['Someone'], price_cents: 100 };

  const bad = [
    [{ ...good, isbn: isbnPair().isbn13, price_cents: -1 }, 'invalid_field'],
    [{ ...good, isbn: '978-0-306-40615-8' }, 'invalid_isbn'],              // bad check digit
    [{ ...good, isbn: '0306406153' }, 'invalid_isbn'],                     // bad ISBN-10
    [{ ...good, isbn: isbnPair().isbn13, category_ids: [999999999] }, 'unknown_category'],
    [{ ...good, isbn: isbnPair().isbn13, authors: [] }, 'invalid_field'],
    [{ ...good, isbn: isbnPair().isbn13, title: '' }, 'invalid_field'],
    [{ ...good, isbn: isbnPair().isbn13, format: 'scroll' }, 'invalid_field'],
    [{ ...good, isbn: isbnPair().isbn13, published_on: '2023-02-30' }, 'invalid_field'],
  ];
  for (const [body, code] of bad) {
    const r = await asAdmin('POST', '/api/v1/admin/books', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.code, code);
  }
  assert.equal(await count(), n0, 'no book was created');

  for (const [body, code] of [
    [{ price_cents: -5 }, 'invalid_field'],
    [{ isbn: '9780306406158' }, 'invalid_isbn'],
    [{ price_cents: 1, category_ids: [otherCat, 999999999] }, 'unknown_category'],
    [{ price_cents: 1, authors: [999999999] }, 'unknown_author'],
  ]) {
    const r = await asAdmin('PUT', `/api/v1/admin/books/${book.id}`, body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error.code, code);
  }
  const after = await api('GET', `/api/v1/books/${book.id}`);
  assert.equal(after.json.book.price_cents, 777, 'the price is untouched');
  assert.deepEqual(after.json.book.categories.map((c) => c.id), [otherCat]);
  assert.deepEqual(after.json.book.authors.map((a) => a.name), ['Anon Ymous']);

  // a duplicate ISBN is a conflict, a missing book 404
  const dup = await asAdmin('POST', '/api/v1/admin/books', { ...good, isbn: book.isbn13 });
  assert.equal(dup.status, 409);
  assert.equal((await asAdmin('PUT', '/api/v1/admin/books/999999999', { price_cents: 1 })).status, 404);

  // stock: negative on_hand, zero delta, no reason, below reserved
  const ledger = () => sql("SELECT count(*) FROM stock_ledger WHERE book_id = :'p1'", book.id);
  const l0 = await ledger();
  assert.equal((await asAdmin('PUT', `/api/v1/admin/inventory/${book.id}/${warehouse.id}`, { on_hand: -1 })).status, 400);
  assert.equal((await asAdmin('POST', `/api/v1/admin/inventory/${book.id}/${warehouse.id}/adjust`, { delta: 0, reason: 'x' })).status, 400);
  assert.equal((await asAdmin('POST', `/api/v1/admin/inventory/${book.id}/${warehouse.id}/adjust`, { delta: 3 })).status, 400);
  const below = await asAdmin('POST', `/api/v1/admin/inventory/${book.id}/${warehouse.id}/adjust`, { delta: -1, reason: 'lost' });
  assert.equal(below.status, 409);
  assert.equal(await ledger(), l0, 'no ledger row for refused changes');
  assert.equal((await asAdmin('PUT', `/api/v1/admin/inventory/${book.id}/999999999`, { on_hand: 1 })).status, 404);
});

test('stock changes are audited and drive stock_status', async () => {
  const book = await createBook({});
  const get = async () => (await api('GET', `/api/v1/books/${book.id}`)).json.book.stock_status;
  assert.equal(await get(), 'out_of_stock');
  let r = await asAdmin('PUT', `/api/v1/admin/inventory/${book.id}/${warehouse.id}`, { on_hand: 2 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.stock_status, 'low_stock');
  assert.equal(await get(), 'low_stock');
  r = await asAdmin('POST', `/api/v1/admin/inventory/${book.id}/${warehouse.id}/adjust`, { delta: 40, reason: 'delivery 17' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.stock.on_hand, 42);
  assert.equal(await get(), 'in_stock');
  const rows = await sql("SELECT delta_on_hand || ':' || reason || ':' || actor_id FROM stock_ledger WHERE book_id = :'p1' ORDER BY id", book.id);
  assert.equal(rows, `2:on_hand set by an admin:${admin.user.id}\n40:delivery 17:${admin.user.id}`);
});

test('after an admin price change is acknowledged, the next detail read shows it, cached or not', async () => {
  const book = await createBook({ price_cents: 1000 });
  const path = `/api/v1/books/${book.id}`;

  // fill the cache, and see it served from there
  const first = await api('GET', path);
  assert.equal(first.status, 200);
  const etag = first.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{16}"$/);
  assert.match(first.headers.get('cache-control'), /public/);
  const keys = await redis('KEYS', `cat:{b${book.id}}:*`);
  assert.match(keys, /:v\d+/, 'the detail page is in the cache');
  const hit = await api('GET', path, undefined, { headers: { 'if-none-match': etag } });
  assert.equal(hit.status, 304);

  // readers hammer the page the whole time, so fills race the updates
  let reading = true;
  const readers = Array.from({ length: 4 }, async () => {
    while (reading) await api('GET', path);
  });
  try {
    for (let price = 1001; price <= 1015; price++) {
      const r = await asAdmin('PUT', path.replace('/books/', '/admin/books/'), { price_cents: price });
      assert.equal(r.status, 200, r.text);
      const seen = await api('GET', path);
      assert.equal(seen.json.book.price_cents, price, 'a read after the ack shows the new price');
      const list = await api('GET', `/api/v1/books/search?q=${book.isbn13}`);
      assert.equal(list.json.books[0].price_cents, price, 'search shows it too');
    }
  } finally {
    reading = false;
    await Promise.all(readers);
  }

  // the old ETag no longer matches
  const changed = await api('GET', path, undefined, { headers: { 'if-none-match': etag } });
  assert.equal(changed.status, 200);

  // a deleted book is gone from details and search at once
  assert.equal((await asAdmin('DELETE', path.replace('/books/', '/admin/books/'))).status, 200);
  assert.equal((await api('GET', path)).status, 404);
  const gone = await api('GET', `/api/v1/books/search?q=${book.isbn13}`);
  assert.equal(gone.json.books.length, 0);
});

test('categories, authors and warehouses read back', async () => {
  const cats = await api('GET', '/api/v1/categories');
  assert.equal(cats.status, 200);
  const sub = cats.json.categories.find((c) => c.id === subCat);
  assert.equal(sub.parent_id, topCat);

  const surname = word('Auth');
  const book = await createBook({ authors: [`First ${surname}`, `Second ${surname}`] });
  assert.deepEqual(book.authors.map((a) => a.name), [`First ${surname}`, `Second ${surname}`]);
  const a = await api('GET', `/api/v1/authors/${book.authors[1].id}`);
  assert.equal(a.status, 200);
  assert.equal(a.json.author.name, `Second ${surname}`);
  assert.equal(a.json.author.book_count, 1);
  const byAuthor = await api('GET', `/api/v1/books?author=${book.authors[1].id}`);
  assert.deepEqual(byAuthor.json.books.map((b) => b.id), [book.id]);
  assert.equal((await api('GET', '/api/v1/authors/999999999')).status, 404);

  const list = await asAdmin('GET', '/api/v1/admin/warehouses');
  assert.equal(list.status, 200);
  assert.ok(list.json.warehouses.some((w) => w.id === warehouse.id));
  const dup = await asAdmin('POST', '/api/v1/admin/warehouses', { code: warehouse.code, name: 'n', region: 'r' });
  assert.equal(dup.status, 409);
});
