// admin.js: the admin pages: books (add, edit, delete), warehouses, and
// stock per book and warehouse (set on hand, adjust by a delta).  The API
// checks the role; this page only hides itself from non-admins.

import { api, requireUser, describe } from './api.js';
import { $, el, money, showError } from './dom.js';
import { header } from './nav.js';
import { coverCell } from './admin-cover.js';

const me = await requireUser();
header(me);
if (me.role !== 'admin') {
  showError('admin pages: your account is not an admin (403)');
  $('main').classList.add('hidden');
}

const list = (s) => String(s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
const guard = (what, fn) => async (e) => {
  e?.preventDefault?.();
  if (e) showError(null);
  try {
    await fn(e);
  } catch (err) {
    // a form's error replaces the line; the page's first loads add up
    const before = e ? '' : $('#error').textContent;
    showError([before, `${what}: ${describe(err)}`].filter(Boolean).join(' · '));
  }
};

let booksCursor = null;
async function loadBooks(reset) {
  const table = $('#admin-books');
  if (reset) {
    booksCursor = null;
    table.replaceChildren(el('tr', {}, ...['id', 'title', 'ISBN', 'price', 'stock', ''].map((h) => el('th', {}, h))));
  }
  const r = await api('GET', `/api/v1/books?sort=newest&limit=50${booksCursor ? `&cursor=${encodeURIComponent(booksCursor)}` : ''}`);
  for (const b of r.books) {
    table.append(el('tr', { dataset: { bookId: b.id } },
      el('td', {}, String(b.id)), el('td', {}, b.title), el('td', {}, b.isbn13 ?? ''),
      el('td', {}, money(b.price_cents, b.currency)), el('td', {}, b.stock_status ?? ''),
      el('td', {},
        coverCell(b, () => loadBooks(true)), ' ',
        el('button', { onclick: () => edit(b) }, 'Edit'), ' ',
        el('button', { onclick: guard('delete book', async () => {
          if (!confirm(`Delete “${b.title}”?`)) return;
          await api('DELETE', `/api/v1/admin/books/${b.id}`);
          await loadBooks(true);
        }) }, 'Delete'))));
  }
  booksCursor = r.next_cursor;
  $('#books-more').classList.toggle('hidden', !booksCursor);
}

function edit(b) {
  const f = $('#book-form');
  f.id.value = b.id;
  f.title.value = b.title;
  f.authors.value = (b.authors ?? []).map((a) => (typeof a === 'string' ? a : a.name)).join(', ');
  f.isbn13.value = b.isbn13 ?? '';
  f.price_cents.value = b.price_cents;
  f.currency.value = b.currency ?? 'USD';
  f.categories.value = (b.categories ?? []).map((c) => (typeof c === 'string' ? c : c.name)).join(', ');
  f.description.value = b.description ?? '';
}

$('#book-form').addEventListener('submit', guard('save book', async (e) => {
  const f = Object.fromEntries(new FormData(e.target));
  const body = { title: f.title, authors: list(f.authors), isbn13: f.isbn13.replace(/-/g, ''),
    price_cents: Number(f.price_cents), currency: f.currency, categories: list(f.categories), description: f.description };
  if (f.id) await api('PUT', `/api/v1/admin/books/${f.id}`, body);
  else await api('POST', '/api/v1/admin/books', body);
  e.target.reset();
  e.target.id.value = '';
  await loadBooks(true);
}));
$('#books-more').addEventListener('click', guard('books', () => loadBooks(false)));

async function loadWarehouses() {
  const r = await api('GET', '/api/v1/admin/warehouses');
  $('#warehouses').replaceChildren(el('tr', {}, ...['id', 'code', 'name', 'region'].map((h) => el('th', {}, h))),
    ...r.warehouses.map((w) => el('tr', {}, el('td', {}, String(w.id)), el('td', {}, w.code), el('td', {}, w.name), el('td', {}, w.region))));
}

$('#warehouse-form').addEventListener('submit', guard('add warehouse', async (e) => {
  await api('POST', '/api/v1/admin/warehouses', Object.fromEntries(new FormData(e.target)));
  e.target.reset();
  await loadWarehouses();
}));

$('#stock-set').addEventListener('submit', guard('set stock', async (e) => {
  const f = Object.fromEntries(new FormData(e.target));
  const r = await api('PUT', `/api/v1/admin/inventory/${f.book_id}/${f.warehouse_id}`, { on_hand: Number(f.on_hand) });
  $('#stock-result').textContent = `Book #${f.book_id} in warehouse #${f.warehouse_id}: ${JSON.stringify(r.inventory ?? r)}`;
}));

$('#stock-adjust').addEventListener('submit', guard('adjust stock', async (e) => {
  const f = Object.fromEntries(new FormData(e.target));
  const r = await api('POST', `/api/v1/admin/inventory/${f.book_id}/${f.warehouse_id}/adjust`,
    { delta: Number(f.delta), reason: f.reason });
  $('#stock-result').textContent = `Book #${f.book_id} in warehouse #${f.warehouse_id}: ${JSON.stringify(r.inventory ?? r)}`;
}));

if (me.role === 'admin') {
  await guard('books', () => loadBooks(true))();
  await guard('warehouses', () => loadWarehouses())();
}
