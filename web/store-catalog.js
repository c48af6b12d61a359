// store-catalog.js: browsing by category, the book lists (search's page
// and filters are store-search.js), and a book's page with its reviews,
// stock status and "add to cart".

import { api, describe } from './api.js';
import { $, el, money, showError } from './dom.js';

const STOCK_TEXT = { in_stock: 'In stock', low_stock: 'Only a few left', out_of_stock: 'Out of stock' };

const authorsOf = (b) => (b.authors ?? []).map((a) => (typeof a === 'string' ? a : a.name)).join(', ');

function bookCard(b) {
  return el('div.card.book', { dataset: { bookId: b.id } },
    el('a', { href: `#/book/${b.id}` }, el('strong', {}, b.title)),
    el('div.muted', {}, authorsOf(b)),
    el('div', {}, money(b.price_cents, b.currency)),
    b.stock_status ? el('div', { class: `stock-${b.stock_status}` }, STOCK_TEXT[b.stock_status] ?? b.stock_status) : null);
}

// a list of books with a "more" button while next_cursor says so; into: the
// element to draw in (#view), onPage: called with each page's answer
export async function bookList(path, params, title, { into, onPage } = {}) {
  const view = into ?? $('#view');
  const grid = el('div.books', { id: 'books' });
  const more = el('button.hidden', { id: 'more' }, 'More');
  view.append(el('h2', {}, title), grid, more);
  let cursor = null;
  const page = async () => {
    const q = new URLSearchParams(params);
    if (cursor) q.set('cursor', cursor);
    const r = await api('GET', `${path}?${q}`);
    onPage?.(r);
    grid.append(...r.books.map(bookCard));
    if (!r.books.length && !cursor) grid.append(el('p.muted', { id: 'no-books' }, 'No books found.'));
    cursor = r.next_cursor;
    more.classList.toggle('hidden', !cursor);
  };
  more.addEventListener('click', () => page().catch((err) => showError(describe(err))));
  await page();
}

export async function browse(params) {
  const view = $('#view');
  const cats = el('nav.sub', { id: 'categories' }, el('a', { href: '#/' }, 'All'));
  view.append(cats);
  try {
    const { categories } = await api('GET', '/api/v1/categories');
    for (const c of categories ?? []) {
      cats.append(el('a', { href: `#/?category=${encodeURIComponent(c.id ?? c.slug)}` }, c.name ?? c.title ?? String(c.id)));
    }
  } catch (err) {
    cats.append(el('span.error', {}, `categories: ${describe(err)}`));
  }
  const q = {};
  if (params.get('category')) q.category = params.get('category');
  await bookList('/api/v1/books', q, params.get('category') ? 'Category' : 'All books');
}

export async function bookPage(id) {
  const view = $('#view');
  const { book } = await api('GET', `/api/v1/books/${id}`);
  const qty = el('input', { id: 'qty', type: 'number', min: 1, value: 1 });
  const added = el('span.muted', { id: 'added' });
  const out = book.stock_status === 'out_of_stock';
  view.append(el('article.card', { id: 'book', dataset: { bookId: book.id } },
    el('h2', {}, book.title),
    el('div.muted', {}, authorsOf(book), book.isbn13 ? ` · ISBN ${book.isbn13}` : ''),
    el('p', {}, book.description ?? ''),
    el('p', {}, money(book.price_cents, book.currency), ' · ',
      el('span', { id: 'stock', class: `stock-${book.stock_status}` }, STOCK_TEXT[book.stock_status] ?? book.stock_status)),
    el('p', {}, `Rating ${Number(book.rating_avg ?? 0).toFixed(1)} (${book.rating_count ?? 0})`),
    el('form.inline', { id: 'add-to-cart', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const cart = await api('GET', '/api/v1/cart');
        const have = cart.items.find((i) => i.book_id === book.id)?.quantity ?? 0;
        await api('PUT', `/api/v1/cart/items/${book.id}`, { quantity: have + Number(qty.value) });
        added.textContent = 'Added to cart.';
      } catch (err) {
        showError(`cart: ${describe(err)}`);
      }
    } }, qty, el('button', { disabled: out }, 'Add to cart'), added)));
  await reviews(book.id);
}

async function reviews(bookId) {
  const list = el('ul', { id: 'reviews' });
  const form = el('form.inline', { id: 'review-form' },
    el('select', { name: 'rating' }, ...[5, 4, 3, 2, 1].map((n) => el('option', { value: n }, `${n} ★`))),
    el('input', { name: 'text', placeholder: 'your review', required: true }),
    el('button', {}, 'Post review'));
  $('#view').append(el('h3', {}, 'Reviews'), list, form);
  const show = (r) => list.append(el('li', {}, `${'★'.repeat(r.rating)} ${r.text ?? ''}`,
    el('span.muted', {}, r.user?.display_name ? ` · ${r.user.display_name}` : '')));
  try {
    const r = await api('GET', `/api/v1/books/${bookId}/reviews`);
    (r.reviews ?? []).forEach(show);
    if (!r.reviews?.length) list.append(el('li.muted', {}, 'No reviews yet.'));
  } catch (err) {
    list.append(el('li.error', {}, `reviews: ${describe(err)}`));
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    try {
      const r = await api('POST', `/api/v1/books/${bookId}/reviews`, { rating: Number(f.get('rating')), text: f.get('text') });
      show(r.review ?? { rating: Number(f.get('rating')), text: f.get('text') });
      form.reset();
    } catch (err) {
      showError(`review: ${describe(err)}`);
    }
  });
}
