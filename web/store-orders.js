// store-orders.js: the cart, checkout with a card form, and order history.
//
// Checkout sends one Idempotency-Key per attempt: a retry of the same form
// (a lost answer, a double click) reuses it, and the token of its card,
// and gets the same order back; editing the form starts a new attempt
// with a new key and a new token.  The card itself goes only to the
// payment processor (payments.js); our server sees {token}.

import { api, describe } from './api.js';
import { newId } from './chat-client.js';
import { $, el, money, showError } from './dom.js';
import { tokenizeCard } from './payments.js';

async function bookTitle(id) {
  try {
    return (await api('GET', `/api/v1/books/${id}`)).book.title;
  } catch {
    return `Book #${id}`;
  }
}

export async function cartPage() {
  const view = $('#view');
  const cart = await api('GET', '/api/v1/cart');
  view.append(el('h2', {}, 'Cart'));
  if (!cart.items.length) {
    view.append(el('p.muted', { id: 'cart-empty' }, 'Your cart is empty.'));
    return;
  }
  const rows = await Promise.all(cart.items.map(async (i) => {
    const qty = el('input', { type: 'number', min: 0, value: i.quantity, style: 'width:5em' });
    qty.addEventListener('change', async () => {
      try {
        if (Number(qty.value) === 0) await api('DELETE', `/api/v1/cart/items/${i.book_id}`);
        else await api('PUT', `/api/v1/cart/items/${i.book_id}`, { quantity: Number(qty.value) });
        location.reload();
      } catch (err) {
        showError(`cart: ${describe(err)}`);
      }
    });
    return el('tr', { dataset: { bookId: i.book_id } },
      el('td', {}, el('a', { href: `#/book/${i.book_id}` }, await bookTitle(i.book_id))),
      el('td', {}, qty), el('td', {}, money(i.price_cents * i.quantity)));
  }));
  view.append(el('table', { id: 'cart' }, el('tr', {}, el('th', {}, 'Book'), el('th', {}, 'Qty'), el('th', {}, 'Price')), ...rows),
    el('p', {}, 'Total: ', el('strong', { id: 'cart-total' }, money(cart.total_cents))),
    el('a', { href: '#/checkout', id: 'to-checkout' }, 'Check out'));
}

const field = (name, label, attrs = {}) =>
  el('label', {}, label, ' ', el('input', { name, required: true, ...attrs }));

export async function checkoutPage() {
  const view = $('#view');
  const cart = await api('GET', '/api/v1/cart');
  let attempt = { key: newId(), token: null };
  const form = el('form', { id: 'checkout', style: 'display:grid;gap:.4rem;max-width:24rem' },
    el('h3', {}, 'Ship to'),
    field('name', 'Name'), field('line1', 'Address'), field('city', 'City'),
    field('postal_code', 'Postal code'), field('country', 'Country', { value: 'US', maxlength: 2 }),
    el('h3', {}, 'Card'),
    field('card_number', 'Card number', { inputmode: 'numeric', autocomplete: 'cc-number' }),
    field('exp_month', 'Exp. month', { type: 'number', min: 1, max: 12 }),
    field('exp_year', 'Exp. year', { type: 'number', min: 2000 }),
    field('cvc', 'CVC', { inputmode: 'numeric', maxlength: 4 }),
    el('button', { id: 'pay' }, `Pay ${money(cart.total_cents)}`));
  const result = el('p', { id: 'checkout-result' });
  view.append(el('h2', {}, 'Checkout'), form, result);
  // a changed form is a new attempt: a new key, and the card tokenized anew
  form.addEventListener('input', () => { attempt = { key: newId(), token: null }; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    const mine = attempt;
    $('#pay').disabled = true;
    try {
      mine.token ??= (await tokenizeCard({ number: f.card_number.replace(/[\s-]/g, ''),
        exp_month: Number(f.exp_month), exp_year: Number(f.exp_year), cvc: f.cvc })).id;
      const body = {
        shipping_address: { name: f.name, line1: f.line1, city: f.city, postal_code: f.postal_code, country: f.country },
        payment: { token: mine.token },
      };
      const { order } = await api('POST', '/api/v1/orders', body, { 'Idempotency-Key': mine.key });
      result.replaceChildren(`Order #${order.id}: ${order.status.replace('_', ' ')}. `,
        el('a', { href: '#/orders' }, 'See your orders'));
      result.dataset.orderId = order.id;
      result.dataset.status = order.status;
    } catch (err) {
      showError(`checkout: ${describe(err)}`);
    } finally {
      $('#pay').disabled = false;
    }
  });
}

export async function ordersPage() {
  const view = $('#view');
  const table = el('table', { id: 'orders' },
    el('tr', {}, el('th', {}, 'Order'), el('th', {}, 'Placed'), el('th', {}, 'Items'), el('th', {}, 'Total'), el('th', {}, 'Status')));
  const more = el('button.hidden', {}, 'More');
  view.append(el('h2', {}, 'Your orders'), table, more);
  let cursor = null;
  const page = async () => {
    const r = await api('GET', `/api/v1/orders${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`);
    for (const o of r.orders) {
      const items = (o.items ?? []).reduce((n, i) => n + (i.quantity ?? 1), 0);
      table.append(el('tr', { dataset: { orderId: o.id, status: o.status } },
        el('td', {}, `#${o.id}`), el('td', {}, new Date(o.created_at).toLocaleString()),
        el('td', {}, String(items)), el('td', {}, money(o.total_cents)), el('td.status', {}, o.status)));
    }
    cursor = r.next_cursor;
    more.classList.toggle('hidden', !cursor);
  };
  more.addEventListener('click', () => page().catch((err) => showError(describe(err))));
  await page();
}
