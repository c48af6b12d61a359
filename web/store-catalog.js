// store-catalog.js: the catalog side of the storefront: the category tree
// (folding, the current one open and marked), browsing a category under
// its name with a sort, book lists (search's page, its facets and
// suggestions are store-search.js), book cards
// (cover, stock), and a book's page with its reviews.
//
// Covers: a book's cover_url when it has one; otherwise a placeholder
// drawn here from the title (a colour from its hash, the title set on
// it), so a page of books without covers still reads as a shelf.

import { api, describe } from './api.js';
import { $, el, money, showError } from './dom.js';
import { refreshCartCount } from './store-orders.js';

export const STOCK_TEXT = { in_stock: 'In stock', low_stock: 'Only a few left', out_of_stock: 'Out of stock' };
const SORTS = [['title', 'Title A–Z'], ['price', 'Price, low to high'], ['rating', 'Best rated'], ['newest', 'Newest']];

const authorsOf = (b) => (b.authors ?? []).map((a) => (typeof a === 'string' ? a : a.name)).join(', ');

// ------------------------------------------------------------ categories

let categories = null;          // id -> {id, name, parent_id, children}
let loading = null;

export function loadCategories() {
  loading ??= api('GET', '/api/v1/categories').then(({ categories: list }) => {
    categories = new Map((list ?? []).map((c) => [c.id, { ...c, children: [] }]));
    for (const c of categories.values()) categories.get(c.parent_id)?.children.push(c);
    for (const c of categories.values()) c.children.sort((a, b) => a.name.localeCompare(b.name));
    return categories;
  }).catch((err) => { loading = null; throw err; });
  return loading;
}

const pathTo = (id) => {
  const out = [];
  for (let c = categories?.get(Number(id)); c; c = categories.get(c.parent_id)) out.unshift(c);
  return out;
};

// the tree beside every page; current (an id or null) marked, its branch open
export function renderTree(current) {
  const nav = $('#category-tree');
  if (!categories) {
    nav.replaceChildren(el('p.muted', {}, 'Loading categories…'));
    return;
  }
  const open = new Set(pathTo(current).map((c) => c.id));
  const node = (c) => {
    const link = el('a', { href: `#/?category=${c.id}`, dataset: { categoryId: c.id },
      'aria-current': c.id === Number(current) ? 'page' : null }, c.name);
    if (!c.children.length) return el('li', {}, link);
    return el('li', {}, el('details', { open: open.has(c.id) },
      el('summary', {}, link), el('ul', {}, ...c.children.map(node))));
  };
  const roots = [...categories.values()].filter((c) => !categories.has(c.parent_id))
    .sort((a, b) => a.name.localeCompare(b.name));
  nav.replaceChildren(el('ul', {},
    el('li', {}, el('a', { href: '#/', 'aria-current': current ? null : 'page' }, 'All books')),
    ...roots.map(node)));
}

// ------------------------------------------------------------ book cards

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function cover(book) {
  if (book.cover_url) {
    return el('img.cover', { src: book.cover_url, alt: `Cover of ${book.title}`, loading: 'lazy' });
  }
  const h = hue(book.title ?? '');
  return el('div.cover.placeholder', {
    role: 'img', 'aria-label': `${book.title} (no cover yet)`,
    style: `background: linear-gradient(160deg, hsl(${h} 45% 42%), hsl(${(h + 40) % 360} 50% 24%))`,
  }, book.title);
}

function bookCard(b) {
  return el('article.card.book', { dataset: { bookId: b.id } },
    el('a', { href: `#/book/${b.id}`, tabindex: -1, 'aria-hidden': 'true' }, cover(b)),
    el('a.title', { href: `#/book/${b.id}` }, b.title),
    el('div.muted', {}, authorsOf(b)),
    el('div.price', {}, money(b.price_cents, b.currency)),
    b.stock_status ? el('div', { class: `stock stock-${b.stock_status}` }, STOCK_TEXT[b.stock_status] ?? b.stock_status) : null);
}

// a grid of books with "More" while next_cursor says so
// (exported for search's page, store-search.js); into: the element to draw
// in (#view), onPage: called with each page's answer (search's facets)
export async function bookList(path, params, empty, { into, onPage } = {}) {
  const grid = el('div.books', { id: 'books' });
  const more = el('button.hidden', { id: 'more', type: 'button' }, 'More books');
  const wait = el('p.loading', {}, 'Loading books…');
  (into ?? $('#view')).append(grid, wait, more);
  let cursor = null;
  const page = async () => {
    const q = new URLSearchParams(params);
    if (cursor) q.set('cursor', cursor);
    wait.classList.remove('hidden');
    try {
      const r = await api('GET', `${path}?${q}`);
      onPage?.(r);
      grid.append(...r.books.map(bookCard));
      if (!r.books.length && !cursor) grid.append(el('p.muted', { id: 'no-books' }, empty));
      cursor = r.next_cursor;
      more.classList.toggle('hidden', !cursor);
    } finally {
      wait.classList.add('hidden');
    }
  };
  more.addEventListener('click', () => page().catch((err) => showError(describe(err))));
  await page();
}

function crumbs(id) {
  const trail = pathTo(id);
  if (trail.length < 2) return null;
  return el('nav.crumbs', { 'aria-label': 'Breadcrumb' }, el('a', { href: '#/' }, 'All books'),
    ...trail.slice(0, -1).flatMap((c) => [' › ', el('a', { href: `#/?category=${c.id}` }, c.name)]));
}

export async function browse(params) {
  const category = params.get('category');
  const sort = params.get('sort') ?? 'title';
  if (category) await loadCategories().catch(() => null);
  const name = category ? (categories?.get(Number(category))?.name ?? `Category #${category}`) : 'All books';
  document.title = `${name} · Store`;
  const select = el('select', { id: 'sort', 'aria-label': 'Sort by' },
    ...SORTS.map(([v, t]) => el('option', { value: v, selected: v === sort }, t)));
  select.addEventListener('change', () => {
    const q = new URLSearchParams(params);
    q.set('sort', select.value);
    location.hash = `#/?${q}`;
  });
  $('#view').append(el('div.view-head', {},
    el('div', {}, crumbs(category), el('h2', { id: 'view-title' }, name)),
    el('label.muted', {}, 'Sort ', select)));
  const q = { sort };
  if (category) q.category = category;
  await bookList('/api/v1/books', q, 'No books here yet.');
}

// ------------------------------------------------------------ a book

const ratingText = (b) => (b.rating_count
  ? `★ ${Number(b.rating_avg ?? 0).toFixed(1)} · ${b.rating_count} review${b.rating_count === 1 ? '' : 's'}`
  : 'No reviews yet');

export async function bookPage(id, me) {
  const view = $('#view');
  view.append(el('p.loading', {}, 'Loading…'));
  const { book } = await api('GET', `/api/v1/books/${id}`);
  document.title = `${book.title} · Store`;
  const qty = el('input', { id: 'qty', type: 'number', min: 1, max: 99, value: 1, 'aria-label': 'Quantity' });
  const added = el('span.muted', { id: 'added', role: 'status' });
  const out = book.stock_status === 'out_of_stock';
  const cats = (book.categories ?? []).map((c) => el('a', { href: `#/?category=${c.id}` }, c.name));
  view.replaceChildren(el('article.book-page', { id: 'book', dataset: { bookId: book.id } },
    cover(book),
    el('div', {},
      el('h2', {}, book.title),
      el('div.muted', {}, authorsOf(book)),
      el('p', {}, el('span.price', {}, money(book.price_cents, book.currency)), ' · ',
        el('span', { id: 'stock', class: `stock-${book.stock_status}` }, STOCK_TEXT[book.stock_status] ?? book.stock_status)),
      el('p.rating', { id: 'rating' }, ratingText(book)),
      el('form.inline', { id: 'add-to-cart', onsubmit: async (e) => {
        e.preventDefault();
        try {
          const cart = await api('GET', '/api/v1/cart');
          const have = cart.items.find((i) => i.book_id === book.id)?.quantity ?? 0;
          await api('PUT', `/api/v1/cart/items/${book.id}`, { quantity: have + Number(qty.value) });
          added.textContent = 'Added to cart.';
          refreshCartCount();
        } catch (err) {
          showError(`cart: ${describe(err)}`);
        }
      } }, qty, el('button', { disabled: out }, out ? 'Out of stock' : 'Add to cart'), added),
      el('p', {}, book.description ?? ''),
      el('p.muted', {}, book.isbn13 ? `ISBN ${book.isbn13}` : '', book.publisher ? ` · ${book.publisher}` : '',
        book.pages ? ` · ${book.pages} pages` : ''),
      cats.length ? el('p.muted', {}, 'In ', ...cats.flatMap((c, i) => (i ? [', ', c] : [c]))) : null)));
  await reviews(book, me);
}

async function reviews(book, me) {
  const list = el('ul', { id: 'reviews' });
  const done = el('p.muted.hidden', { id: 'review-done', role: 'status' });
  const form = el('form.inline', { id: 'review-form' },
    el('select', { name: 'rating', 'aria-label': 'Rating' }, ...[5, 4, 3, 2, 1].map((n) => el('option', { value: n }, `${n} ★`))),
    el('input', { name: 'text', placeholder: 'What did you think?', required: true, maxlength: 5000 }),
    el('button', {}, 'Post review'));
  $('#view').append(el('h3', {}, 'Reviews'), list, form, done);
  const show = (r, first) => {
    list.querySelector('.none')?.remove();
    const li = el('li', { dataset: { reviewId: r.id ?? '' } }, `${'★'.repeat(r.rating)}${'☆'.repeat(5 - r.rating)} ${r.text ?? ''}`,
      el('span.muted', {}, r.user?.display_name ? ` · ${r.user.display_name}` : ''));
    if (first) list.prepend(li); else list.append(li);
  };
  const closeForm = (why) => {
    form.classList.add('hidden');
    done.textContent = why;
    done.classList.remove('hidden');
  };
  try {
    const r = await api('GET', `/api/v1/books/${book.id}/reviews`);
    (r.reviews ?? []).forEach((x) => show(x, false));
    if (!r.reviews?.length) list.append(el('li.muted.none', {}, 'No reviews yet. Be the first.'));
    if ((r.reviews ?? []).some((x) => x.user?.id === me?.id)) closeForm('You have reviewed this book.');
  } catch (err) {
    list.append(el('li.error', {}, `reviews: ${describe(err)}`));
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const body = { rating: Number(f.get('rating')), text: f.get('text') };
    form.querySelector('button').disabled = true;
    try {
      const r = await api('POST', `/api/v1/books/${book.id}/reviews`, body);
      show(r.review ?? { ...body, user: me }, true);
      closeForm('Thanks, your review is posted.');
      // the summary as the server now has it (the review's write made
      // the cached page stale before it answered)
      const fresh = (await api('GET', `/api/v1/books/${book.id}`)).book;
      $('#rating').textContent = ratingText(fresh);
    } catch (err) {
      if (err.status === 409) closeForm('You have reviewed this book already.');
      else showError(`review: ${describe(err)}`);
    } finally {
      form.querySelector('button').disabled = false;
    }
  });
}
