// admin.js: the back office in four tabs (#books, #orders, #catalog,
// #warehouses):
//   - books: find by title, author or ISBN (the catalog's search), add and
//     edit the full record (Edit loads the book itself, so no field is
//     lost), prices in dollars, categories picked from the tree, stock per
//     warehouse in a grid (by name) with the book's recent ledger;
//   - orders: by status, an order opened with its lines; ship, deliver,
//     refund in full or by line;
//   - categories (add, rename, move, merge) and authors (add, rename,
//     merge);
//   - warehouses.
// Every error is shown in words as the API gives it.  Another admin's
// changes show live (the end of this file): the server tells every admin's
// connection what changed, and the page fetches that record again.
// The API checks the role; this page only hides itself from non-admins.

import { api, requireUser, describe, token } from './api.js';
import { ChatClient, newId } from './chat-client.js';
import { $, el, money, showError } from './dom.js';
import { header } from './nav.js';
import { coverCell } from './admin-cover.js';

const me = await requireUser();
header(me);
if (me.role !== 'admin') {
  showError('admin pages: your account is not an admin (403)');
  $('main').classList.add('hidden');
}

const STATUS_TEXT = {
  pending_payment: 'Awaiting payment', payment_failed: 'Payment failed', paid: 'Paid', shipped: 'Shipped',
  delivered: 'Delivered', cancelled: 'Cancelled', refunded: 'Refunded',
};
const list = (s) => String(s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
const when = (t) => (t ? new Date(t).toLocaleString() : '');

function done(text) {
  const p = $('#done');
  p.textContent = text;
  p.classList.toggle('hidden', !text);
}

// runs fn, showing a failure as "<what>: <the API's words> (status code)"
const guard = (what, fn) => async (e) => {
  e?.preventDefault?.();
  showError(null);
  try {
    await fn(e);
  } catch (err) {
    done('');
    showError(`${what}: ${describe(err)}`);
  }
};

// ------------------------------------------------------------ tabs

const TABS = ['books', 'orders', 'catalog', 'warehouses'];
const loaders = {};

async function showTab() {
  const tab = TABS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'books';
  for (const t of TABS) {
    $(`#${t}`).classList.toggle('hidden', t !== tab);
    $(`#tab-${t}`).setAttribute('aria-current', t === tab ? 'page' : 'false');
  }
  await guard(tab, loaders[tab])();
}

// ------------------------------------------------------------ categories

let categories = [];            // [{id, name, parent_id, depth, path}] in tree order

async function loadCategories() {
  const r = await api('GET', '/api/v1/categories');
  const byParent = new Map();
  for (const c of r.categories) {
    if (!byParent.has(c.parent_id ?? null)) byParent.set(c.parent_id ?? null, []);
    byParent.get(c.parent_id ?? null).push(c);
  }
  const ids = new Set(r.categories.map((c) => c.id));
  const out = [];
  const walk = (parent, depth, path) => {
    for (const c of (byParent.get(parent) ?? []).sort((a, b) => a.name.localeCompare(b.name))) {
      out.push({ ...c, depth, path: [...path, c.name].join(' › ') });
      walk(c.id, depth + 1, [...path, c.name]);
    }
  };
  walk(null, 0, []);
  for (const c of r.categories) if (c.parent_id && !ids.has(c.parent_id)) out.push({ ...c, depth: 0, path: c.name });
  categories = out;
  return out;
}

const categoryOptions = (selected = [], skip = null) => categories
  .filter((c) => c.id !== skip)
  .map((c) => el('option', { value: c.id, selected: selected.includes(c.id) }, `${'  '.repeat(c.depth)}${c.depth ? '└ ' : ''}${c.name}`));

// ------------------------------------------------------------ books

let booksQuery = null;
let booksCursor = null;

async function loadBooks(reset) {
  const table = $('#admin-books');
  if (reset) {
    booksCursor = null;
    table.replaceChildren(el('tr', {}, ...['Id', 'Title', 'Authors', 'ISBN', 'Price', 'Stock', ''].map((h) => el('th', {}, h))));
  }
  const path = booksQuery
    ? `/api/v1/books/search?q=${encodeURIComponent(booksQuery)}&limit=50`
    : '/api/v1/books?sort=newest&limit=50';
  const r = await api('GET', `${path}${booksCursor ? `&cursor=${encodeURIComponent(booksCursor)}` : ''}`);
  for (const b of r.books) table.append(bookRow(b));
  if (reset && !r.books.length) table.append(el('tr', {}, el('td', { colspan: 7 }, 'No books found.')));
  booksCursor = r.next_cursor;
  $('#books-more').classList.toggle('hidden', !booksCursor);
}

function bookRow(b) {
  return el('tr', { dataset: { bookId: b.id } },
      el('td', {}, String(b.id)), el('td', {}, b.title),
      el('td', {}, (b.authors ?? []).map((a) => `${a.name ?? a} (#${a.id ?? '?'})`).join(', ')),
      el('td', {}, b.isbn13 ?? ''),
      el('td.num', {}, money(b.price_cents, b.currency)), el('td', { class: `stock-${b.stock_status}` }, STATUS_STOCK[b.stock_status] ?? ''),
      el('td', {}, el('div.row-actions', {},
        coverCell(b, () => loadBooks(true)),
        el('button.edit', { type: 'button', onclick: guard('load book', () => edit(b.id)) }, 'Edit'),
        el('button.stock', { type: 'button', onclick: guard('stock', () => stockPanel(b.id, b.title)) }, 'Stock'),
        el('button.delete', { type: 'button', onclick: guard('delete book', async () => {
          if (!confirm(`Delete “${b.title}”? Orders keep it; its ISBN becomes free.`)) return;
          await api('DELETE', `/api/v1/admin/books/${b.id}`);
          done(`Deleted “${b.title}”.`);
          await loadBooks(true);
        }) }, 'Delete'))));
}
const STATUS_STOCK = { in_stock: 'In stock', low_stock: 'Low', out_of_stock: 'Out of stock' };

async function openForm(book) {
  const f = $('#book-form');
  if (!categories.length) await loadCategories();
  f.reset();
  f.id.value = book?.id ?? '';
  $('#book-form-title').textContent = book ? `Edit #${book.id}` : 'New book';
  $('#book-form-stale').classList.add('hidden');
  f.title.value = book?.title ?? '';
  f.authors.value = (book?.authors ?? []).map((a) => (typeof a === 'string' ? a : a.name)).join(', ');
  f.isbn13.value = book?.isbn13 ?? '';
  f.price.value = book ? (book.price_cents / 100).toFixed(2) : '';
  f.currency.value = book?.currency ?? 'USD';
  f.description.value = book?.description ?? '';
  f.category_ids.replaceChildren(...categoryOptions((book?.categories ?? []).map((c) => c.id)));
  f.classList.remove('hidden');
  f.title.focus();
}

// the full record, from the book itself: the list rows lack fields
async function edit(id) {
  const { book } = await api('GET', `/api/v1/books/${id}`);
  await openForm(book);
}

$('#book-form').addEventListener('submit', guard('save book', async (e) => {
  const f = e.target;
  const body = {
    title: f.title.value, authors: list(f.authors.value), isbn: f.isbn13.value.replace(/-/g, ''),
    price_cents: Math.round(Number(f.price.value) * 100), currency: f.currency.value.toUpperCase(),
    category_ids: [...f.category_ids.selectedOptions].map((o) => Number(o.value)),
    description: f.description.value,
  };
  const r = f.id.value ? await api('PUT', `/api/v1/admin/books/${f.id.value}`, body)
    : await api('POST', '/api/v1/admin/books', body);
  done(`Saved “${r.book?.title ?? body.title}” (#${r.book?.id ?? f.id.value}).`);
  f.classList.add('hidden');
  await loadBooks(true);
}));
$('#book-cancel').addEventListener('click', () => $('#book-form').classList.add('hidden'));
$('#book-new').addEventListener('click', guard('new book', () => openForm(null)));
$('#book-search').addEventListener('submit', guard('find books', async (e) => {
  booksQuery = e.target.q.value.trim() || null;
  await loadBooks(true);
}));
$('#books-more').addEventListener('click', guard('books', () => loadBooks(false)));

// the book's stock per warehouse, editable, with its recent ledger
async function stockPanel(bookId, title, live = false) {
  const panel = $('#stock-panel');
  const inv = await api('GET', `/api/v1/admin/inventory/${bookId}`);
  const names = new Map(inv.stock.map((s) => [s.warehouse_id, s.name]));
  const rows = inv.stock.map((s) => {
    const input = el('input', { type: 'number', min: s.reserved, value: s.on_hand, 'aria-label': `On hand in ${s.name}` });
    const save = el('button', { type: 'button', onclick: guard(`stock in ${s.name}`, async () => {
      const r = await api('PUT', `/api/v1/admin/inventory/${bookId}/${s.warehouse_id}`, { on_hand: Number(input.value) });
      done(`${title}: ${r.stock.on_hand} on hand in ${s.name} (${STATUS_STOCK[r.stock_status] ?? r.stock_status} overall).`);
      await stockPanel(bookId, title);
    }) }, 'Save');
    return el('tr', { dataset: { warehouseId: s.warehouse_id } },
      el('td', {}, `${s.name} `, el('span.muted', {}, `${s.code} · ${s.region}`)),
      el('td', {}, input), el('td.num', {}, String(s.reserved)), el('td.num', {}, String(s.on_hand - s.reserved)), el('td', {}, save));
  });
  panel.replaceChildren(
    el('h3', {}, `Stock of “${title}”`),
    inv.stock.length ? el('div.table-wrap', {}, el('table', { id: 'stock-grid' },
      el('tr', {}, el('th', {}, 'Warehouse'), el('th', {}, 'On hand'), el('th.num', {}, 'Reserved'), el('th.num', {}, 'Available'), el('th', {}, '')),
      ...rows))
      : el('p.muted', {}, 'No warehouses yet: add one in the Warehouses tab.'),
    el('h4', {}, 'Recent changes'),
    el('div.table-wrap', {}, el('table', { id: 'stock-ledger' },
      el('tr', {}, ...['When', 'Warehouse', 'On hand', 'Reserved', 'Why', 'Order'].map((h) => el('th', {}, h))),
      ...inv.ledger.map((l) => el('tr', {}, el('td', {}, when(l.created_at)), el('td', {}, names.get(l.warehouse_id) ?? `#${l.warehouse_id}`),
        el('td.num', {}, l.delta_on_hand ? String(l.delta_on_hand) : ''), el('td.num', {}, l.delta_reserved ? String(l.delta_reserved) : ''),
        el('td', {}, l.reason), el('td', {}, l.order_id ? `#${l.order_id}` : ''))))),
    el('button', { type: 'button', onclick: () => panel.classList.add('hidden') }, 'Close'));
  panel.dataset.bookId = bookId;
  panel.dataset.title = title;
  panel.classList.remove('hidden');
  if (!live) panel.scrollIntoView({ block: 'nearest' });
}

loaders.books = () => loadBooks(true);

// ------------------------------------------------------------ orders

let ordersCursor = null;

async function loadOrders(reset) {
  const table = $('#admin-orders');
  const status = $('#order-filter').status.value;
  if (reset) {
    ordersCursor = null;
    table.replaceChildren(el('tr', {}, ...['Order', 'Placed', 'Items', 'Total', 'Status', ''].map((h) => el('th', {}, h))));
  }
  const q = new URLSearchParams();
  if (status) q.set('status', status);
  if (ordersCursor) q.set('cursor', ordersCursor);
  const r = await api('GET', `/api/v1/admin/orders?${q}`);
  for (const o of r.orders) table.append(orderRow(o));
  if (reset && !r.orders.length) table.append(el('tr', {}, el('td', { colspan: 6 }, 'No orders with this status.')));
  ordersCursor = r.next_cursor;
  $('#orders-more').classList.toggle('hidden', !ordersCursor);
}

function orderRow(o) {
  return el('tr', { dataset: { orderId: o.id, status: o.status } },
      el('td', {}, `#${o.id}`), el('td', {}, when(o.created_at)),
      el('td.num', {}, String((o.items ?? []).reduce((n, i) => n + i.quantity, 0))),
      el('td.num', {}, money(o.total_cents, o.currency)),
      el('td', {}, STATUS_TEXT[o.status] ?? o.status, o.refunded_cents ? ` (refunded ${money(o.refunded_cents, o.currency)})` : ''),
      el('td', {}, el('div.row-actions', {}, ...orderActions(o),
        el('button.open', { type: 'button', onclick: guard('open order', () => orderPanel(o.id)) }, 'Open'))));
}

// an order changed: redraw the list and the open order
async function changed(order, text) {
  done(text);
  await loadOrders(true);
  if (!$('#order-panel').classList.contains('hidden')) await orderPanel(order.id);
}

function orderActions(o) {
  const out = [];
  if (o.status === 'paid') {
    out.push(el('button.ship', { type: 'button', onclick: guard(`ship #${o.id}`, async () => {
      const r = await api('POST', `/api/v1/admin/orders/${o.id}/ship`);
      await changed(r.order, `Order #${o.id} shipped.`);
    }) }, 'Ship'));
  }
  if (o.status === 'shipped') {
    out.push(el('button.deliver', { type: 'button', onclick: guard(`deliver #${o.id}`, async () => {
      const r = await api('POST', `/api/v1/admin/orders/${o.id}/deliver`);
      await changed(r.order, `Order #${o.id} delivered.`);
    }) }, 'Mark delivered'));
  }
  return out;
}

async function refund(o, items) {
  const what = items ? items.map((i) => `${i.quantity} × book #${i.book_id}`).join(', ') : 'everything not yet refunded';
  if (!confirm(`Refund ${what} of order #${o.id} to the customer's card?`)) return;
  // its own key: the same refund sent twice (a double click, a retry) is refunded once
  const r = await api('POST', `/api/v1/admin/orders/${o.id}/refund`, items ? { items } : undefined,
    { 'idempotency-key': newId() });
  await changed(r.order, r.order.refunded_cents > o.refunded_cents
    ? `Order #${o.id}: ${money(r.order.refunded_cents - (o.refunded_cents ?? 0), o.currency)} refunded.`
    : `Order #${o.id}: the refund is being confirmed by the payment provider.`);
}

// one order as the admin list shows it (the list's cursor is an id)
async function fetchOrder(id) {
  const { orders } = await api('GET', `/api/v1/admin/orders?limit=1&cursor=${id + 1}`);
  const o = orders.find((x) => x.id === id);
  if (!o) throw Object.assign(new Error('no such order'), { status: 404, code: 'not_found' });
  return o;
}

async function orderPanel(id, live = false) {
  const panel = $('#order-panel');
  const o = await fetchOrder(id);
  const refundable = ['paid', 'shipped', 'delivered'].includes(o.status);
  const qty = new Map();
  const rows = (o.items ?? []).map((i) => {
    const left = i.quantity - (i.refunded_quantity ?? 0);
    const input = el('input', { type: 'number', min: 0, max: left, placeholder: '0', disabled: !refundable || !left,
      'aria-label': `Refund copies of ${i.title}` });
    qty.set(i.book_id, input);
    return el('tr', { dataset: { bookId: i.book_id } }, el('td', {}, i.title), el('td.num', {}, String(i.quantity)),
      el('td.num', {}, money(i.price_cents, o.currency)), el('td.num', {}, String(i.refunded_quantity ?? 0)),
      el('td', {}, input));
  });
  const a = o.shipping_address ?? {};
  panel.replaceChildren(
    el('h3', {}, `Order #${o.id} · ${STATUS_TEXT[o.status] ?? o.status}`),
    el('p.muted', {}, `Placed ${when(o.created_at)} by user #${o.user_id}`, o.paid_at ? ` · paid ${when(o.paid_at)}` : '',
      o.shipped_at ? ` · shipped ${when(o.shipped_at)}` : '', o.delivered_at ? ` · delivered ${when(o.delivered_at)}` : '',
      o.payment?.failure_code ? ` · payment failed: ${o.payment.failure_code}` : ''),
    el('p', {}, 'Ship to: ', [a.name, a.line1, a.city, a.postal_code, a.country].filter(Boolean).join(', ')),
    el('div.table-wrap', {}, el('table', { id: 'order-lines' },
      el('tr', {}, ...['Book', 'Qty', 'Price', 'Refunded', 'Refund now'].map((h) => el('th', {}, h))), ...rows)),
    el('p', {}, `Total ${money(o.total_cents, o.currency)}`, o.refunded_cents ? ` · refunded ${money(o.refunded_cents, o.currency)}` : ''),
    el('div.row-actions', {}, ...orderActions(o),
      refundable ? el('button', { type: 'button', id: 'refund-lines', onclick: guard(`refund #${o.id}`, async () => {
        const items = [...qty].filter(([, i]) => Number(i.value) > 0).map(([b, i]) => ({ book_id: b, quantity: Number(i.value) }));
        if (!items.length) throw Object.assign(new Error('choose how many copies of which lines to refund'), { status: 0 });
        await refund(o, items);
      }) }, 'Refund selected') : null,
      refundable ? el('button', { type: 'button', id: 'refund-all', onclick: guard(`refund #${o.id}`, () => refund(o, null)) },
        'Refund everything left') : null,
      el('button', { type: 'button', onclick: () => panel.classList.add('hidden') }, 'Close')));
  panel.dataset.orderId = o.id;
  panel.classList.remove('hidden');
  if (!live) panel.scrollIntoView({ block: 'nearest' });
}

$('#order-filter').addEventListener('change', guard('orders', () => loadOrders(true)));
$('#orders-more').addEventListener('click', guard('orders', () => loadOrders(false)));
loaders.orders = () => loadOrders(true);

// ------------------------------------------------------------ categories and authors

async function loadCatalog() {
  await loadCategories();
  $('#category-form').parent_id.replaceChildren(el('option', { value: '' }, 'At the top'), ...categoryOptions());
  const table = $('#admin-categories');
  table.replaceChildren(el('tr', {}, ...['Category', 'Rename', 'Move under', 'Merge into', ''].map((h) => el('th', {}, h))));
  for (const c of categories) {
    const name = el('input', { value: c.name, maxlength: 200, 'aria-label': `New name for ${c.name}` });
    const parent = el('select', { 'aria-label': `Move ${c.name} under` },
      el('option', { value: '' }, 'At the top'), ...categoryOptions(c.parent_id ? [c.parent_id] : [], c.id));
    const merge = el('select', { 'aria-label': `Merge ${c.name} into` }, el('option', { value: '' }, '—'), ...categoryOptions([], c.id));
    table.append(el('tr', { dataset: { categoryId: c.id } },
      el('td', {}, `${'  '.repeat(c.depth)}${c.path}`), el('td', {}, name), el('td', {}, parent), el('td', {}, merge),
      el('td', {}, el('button', { type: 'button', onclick: guard(`category ${c.name}`, async () => {
        let body;
        if (merge.value) {
          if (!confirm(`Merge “${c.name}” into “${merge.selectedOptions[0].textContent.trim()}”? Its books and subcategories move there.`)) return;
          body = { merge_into: Number(merge.value) };
        } else {
          body = {};
          if (name.value !== c.name) body.name = name.value;
          if ((parent.value ? Number(parent.value) : null) !== (c.parent_id ?? null)) body.parent_id = parent.value ? Number(parent.value) : null;
        }
        const r = await api('PUT', `/api/v1/admin/categories/${c.id}`, body);
        done(`Category saved: ${r.category.name}.`);
        await loadCatalog();
      }) }, 'Save'))));
  }
}

$('#category-form').addEventListener('submit', guard('add category', async (e) => {
  const f = e.target;
  const r = await api('POST', '/api/v1/admin/categories', { name: f.name.value, parent_id: f.parent_id.value ? Number(f.parent_id.value) : null });
  done(`Category “${r.category.name}” added.`);
  f.reset();
  await loadCatalog();
}));

$('#author-form').addEventListener('submit', guard('add author', async (e) => {
  const r = await api('POST', '/api/v1/admin/authors', { name: e.target.name.value });
  done(`Author “${r.author.name}” added (#${r.author.id}).`);
  e.target.reset();
}));

$('#author-edit').addEventListener('submit', guard('change author', async (e) => {
  const f = e.target;
  const body = f.merge_into.value ? { merge_into: Number(f.merge_into.value) } : { name: f.name.value };
  const r = await api('PUT', `/api/v1/admin/authors/${Number(f.author_id.value)}`, body);
  done(f.merge_into.value ? `Author #${f.author_id.value} merged into “${r.author.name}”.` : `Author renamed “${r.author.name}”.`);
  f.reset();
}));

loaders.catalog = loadCatalog;

// ------------------------------------------------------------ warehouses

async function loadWarehouses() {
  const r = await api('GET', '/api/v1/admin/warehouses');
  $('#warehouses-table').replaceChildren(el('tr', {}, ...['Id', 'Code', 'Name', 'Region'].map((h) => el('th', {}, h))),
    ...r.warehouses.map((w) => el('tr', {}, el('td', {}, String(w.id)), el('td', {}, w.code), el('td', {}, w.name), el('td', {}, w.region))));
}

$('#warehouse-form').addEventListener('submit', guard('add warehouse', async (e) => {
  await api('POST', '/api/v1/admin/warehouses', Object.fromEntries(new FormData(e.target)));
  done(`Warehouse ${e.target.name.value} added.`);
  e.target.reset();
  await loadWarehouses();
}));
loaders.warehouses = loadWarehouses;

// ------------------------------------------------------------ other admins' changes, live

// The server tells every admin's connections what an admin (or the
// reconciler, or the carrier) changed: {"type":"admin_change","change":
// {kind: "book"|"stock"|"order", id, by}} (backend/engine/admin_event.c).
// It comes on the one connection the chat and the shop's order events use
// (chat-client.js: a WebSocket, or long-poll behind a proxy that refuses
// it, with its reconnects), not a poll loop.  Only the id travels: the page
// fetches the record again through the API and redraws what shows it in
// place (a row, the open stock grid, the open order); what the admin is
// typing into is never overwritten: a note says it changed meanwhile.
// Changes close together are fetched once.  After a lost connection the
// open tab is loaded again, for what was said while it was away.

const LIVE_TEXT = { book: 'Book', stock: 'Stock of book', order: 'Order' };
const queued = new Map();       // "kind id" -> change, fetched on the next turn
let flushing = false;

function liveNote(c) {
  const p = $('#live');
  const who = c.by === me.id ? 'you' : c.by ? `admin #${c.by}` : 'the system';
  p.textContent = `${LIVE_TEXT[c.kind] ?? c.kind} #${c.id} changed by ${who}.`;
  p.dataset.kind = c.kind;
  p.dataset.id = c.id;
  p.classList.remove('hidden');
}

const typingIn = (box) => box.contains(document.activeElement) && document.activeElement.matches('input, select, textarea');

function flash(row) {
  row.classList.add('changed');
  setTimeout(() => row.classList.remove('changed'), 2000);
}

async function bookChanged(id, kind) {
  const row = $(`#admin-books tr[data-book-id="${id}"]`);
  const ids = [...document.querySelectorAll('#admin-books tr[data-book-id]')].map((r) => Number(r.dataset.bookId));
  // a book not shown: only a new one (the newest list, no search) comes in
  const fresh = !row && !booksQuery && ids.every((x) => x < id);
  if (row || fresh) {
    const r = await api('GET', `/api/v1/books/${id}`).catch((err) => { if (err.status === 404) return null; throw err; });
    if (!r) row?.remove();
    else {
      const next = bookRow(r.book);
      if (row) row.replaceWith(next);
      else {
        $('#admin-books td[colspan]')?.parentElement.remove();     // "No books found."
        $('#admin-books tr').after(next);
      }
      flash(next);
    }
  }
  const panel = $('#stock-panel');
  if (!panel.classList.contains('hidden') && Number(panel.dataset.bookId) === id) {
    if (typingIn(panel)) {
      if (!panel.querySelector('.stale')) {
        panel.querySelector('h3').after(el('p.stale', {}, 'Changed by another admin meanwhile: Save sets the number you typed.'));
      }
    } else await stockPanel(id, panel.dataset.title, true);
  }
  const form = $('#book-form');
  if (kind === 'book' && !form.classList.contains('hidden') && Number(form.id.value) === id) {
    $('#book-form-stale').classList.remove('hidden');
  }
}

async function orderChanged(id) {
  const panel = $('#order-panel');
  const open = !panel.classList.contains('hidden') && Number(panel.dataset.orderId) === id;
  // the orders tab not loaded yet: it loads fresh when opened
  if (!$('#admin-orders tr') && !open) return;
  const row = $(`#admin-orders tr[data-order-id="${id}"]`);
  const status = $('#order-filter').status.value;
  const o = await fetchOrder(id).catch((err) => { if (err.status === 404) return null; throw err; });
  if (row && (!o || (status && o.status !== status))) row.remove();
  else if (row) { const next = orderRow(o); row.replaceWith(next); flash(next); }
  else if (o && (!status || o.status === status)) {
    // it now belongs to this list: in its place (newest first)
    const rows = [...document.querySelectorAll('#admin-orders tr[data-order-id]')];
    const before = rows.find((r) => Number(r.dataset.orderId) < id);
    if (before || !ordersCursor) {
      const next = orderRow(o);
      $('#admin-orders td[colspan]')?.parentElement.remove();    // "No orders with this status."
      if (before) before.before(next); else $('#admin-orders').append(next);
      flash(next);
    }
  }
  if (open && !typingIn(panel)) await orderPanel(id, true);
}

async function flush() {
  if (flushing) return;
  flushing = true;
  try {
    while (queued.size) {
      const [key, c] = queued.entries().next().value;
      queued.delete(key);
      liveNote(c);
      // a failure is said, but never clears what the admin is reading
      try {
        if (c.kind === 'order') await orderChanged(c.id);
        else await bookChanged(c.id, c.kind);
      } catch (err) {
        showError(`showing the change to ${LIVE_TEXT[c.kind] ?? c.kind} #${c.id}: ${describe(err)}`);
      }
    }
  } finally {
    flushing = false;
  }
}

function onAdminChange(c) {
  if (!c?.kind || !Number.isInteger(c.id)) return;
  queued.set(`${c.kind} ${c.id}`, c);
  setTimeout(flush, 0);
}

if (me.role === 'admin') {
  addEventListener('hashchange', showTab);
  const live = new ChatClient({ token: () => token(), cursors: {} });
  live.addEventListener('admin_change', (e) => onAdminChange(e.detail));
  let wasOnline = false;
  live.addEventListener('state', (e) => {
    const online = e.detail.state === 'ws' || e.detail.state === 'polling';
    // back after a lost connection: what was said meanwhile is not replayed
    if (online && wasOnline === null && !document.querySelector('input:focus, select:focus, textarea:focus')) showTab();
    if (online) wasOnline = true;
    else if (wasOnline) wasOnline = null;
  });
  live.start();
  window.adminEvents = live;
  await showTab();
}
