// store-orders.js: the cart (and the counter in the bar), checkout with
// a card form, the confirmation, the order history and an order's page.
//
// Checkout sends one Idempotency-Key per attempt: a retry of the same form
// (a lost answer, a double click) reuses it, and the token of its card,
// and gets the same order back; editing the form starts a new attempt
// with a new key and a new token.  The card itself goes only to the
// payment processor (payments.js); our server sees {token}.
//
// A declined card is not an order to the shopper: the page says the card
// was declined, why (the processor's code in words) and what to do, and
// clears the card for another try; in the history such attempts are kept
// apart, under "Failed payment attempts", not mixed with orders.

import { api, describe } from './api.js';
import { newId } from './chat-client.js';
import { $, el, money, showError } from './dom.js';
import { tokenizeCard } from './payments.js';

export const STATUS_TEXT = {
  pending_payment: 'Awaiting payment', payment_failed: 'Payment declined', paid: 'Paid, preparing to ship',
  shipped: 'Shipped', delivered: 'Delivered', cancelled: 'Cancelled', refunded: 'Refunded',
};

const DECLINE_TEXT = {
  card_declined: 'Your card was declined by its bank.',
  insufficient_funds: 'The card has insufficient funds.',
  expired_card: 'The card has expired.',
  incorrect_cvc: 'The security code (CVC) is not right.',
};

const statusOf = (o) => (o.refunded_cents > 0 && o.status !== 'refunded' && o.status !== 'cancelled'
  ? `${STATUS_TEXT[o.status] ?? o.status} · partly refunded` : STATUS_TEXT[o.status] ?? o.status);

// the number of copies in the cart, in the bar's badge
export async function refreshCartCount() {
  try {
    const cart = await api('GET', '/api/v1/cart');
    const n = cart.items.reduce((s, i) => s + i.quantity, 0);
    $('#cart-count').textContent = n ? String(n) : '';
  } catch {
    $('#cart-count').textContent = '';
  }
}

export async function cartPage() {
  const view = $('#view');
  document.title = 'Cart · Store';
  const cart = await api('GET', '/api/v1/cart');
  view.replaceChildren(el('h2', {}, 'Cart'));
  if (!cart.items.length) {
    view.append(el('p.muted', { id: 'cart-empty' }, 'Your cart is empty. ', el('a', { href: '#/' }, 'Browse books')));
    return;
  }
  const rows = cart.items.map((i) => {
    const qty = el('input', { type: 'number', min: 0, max: 99, value: i.quantity, 'aria-label': `Quantity of ${i.title}` });
    qty.addEventListener('change', async () => {
      try {
        if (Number(qty.value) === 0) await api('DELETE', `/api/v1/cart/items/${i.book_id}`);
        else await api('PUT', `/api/v1/cart/items/${i.book_id}`, { quantity: Number(qty.value) });
        await refreshCartCount();
        await cartPage();
      } catch (err) {
        showError(`cart: ${describe(err)}`);
      }
    });
    return el('tr', { dataset: { bookId: i.book_id } },
      el('td', {}, el('a', { href: `#/book/${i.book_id}` }, i.title ?? `Book #${i.book_id}`),
        i.out_of_stock ? el('div.stock-out_of_stock', {}, i.available ? `Only ${i.available} left` : 'Out of stock') : null),
      el('td', {}, qty), el('td', {}, money(i.price_cents * i.quantity, i.currency)));
  });
  view.append(el('div.table-wrap', {}, el('table', { id: 'cart' },
    el('tr', {}, el('th', {}, 'Book'), el('th', {}, 'Qty'), el('th', {}, 'Price')), ...rows)),
  el('p', {}, 'Total: ', el('strong', { id: 'cart-total' }, money(cart.total_cents))),
  el('a', { href: '#/checkout', id: 'to-checkout' }, 'Check out'));
}

const field = (name, label, attrs = {}) =>
  el('label', {}, label, el('input', { name, required: true, ...attrs }));

export async function checkoutPage() {
  const view = $('#view');
  document.title = 'Checkout · Store';
  const cart = await api('GET', '/api/v1/cart');
  if (!cart.items.length) {
    view.append(el('h2', {}, 'Checkout'), el('p.muted', { id: 'cart-empty' }, 'Your cart is empty.'));
    return;
  }
  let attempt = { key: newId(), token: null };
  const card = el('fieldset', {}, el('legend', {}, 'Card'),
    field('card_number', 'Card number', { inputmode: 'numeric', autocomplete: 'cc-number' }),
    field('exp_month', 'Exp. month', { type: 'number', min: 1, max: 12, autocomplete: 'cc-exp-month' }),
    field('exp_year', 'Exp. year', { type: 'number', min: 2000, autocomplete: 'cc-exp-year' }),
    field('cvc', 'CVC', { inputmode: 'numeric', maxlength: 4, autocomplete: 'cc-csc' }));
  const pay = el('button', { id: 'pay' }, `Pay ${money(cart.total_cents)}`);
  const form = el('form', { id: 'checkout' },
    el('fieldset', {}, el('legend', {}, 'Ship to'),
      field('name', 'Name', { autocomplete: 'name' }), field('line1', 'Address', { autocomplete: 'address-line1' }),
      field('city', 'City', { autocomplete: 'address-level2' }), field('postal_code', 'Postal code', { autocomplete: 'postal-code' }),
      field('country', 'Country (2 letters)', { value: 'US', maxlength: 2, autocomplete: 'country' })),
    card, pay);
  const result = el('div', { id: 'checkout-result', role: 'status' });
  const summary = el('aside.summary', {}, el('h3', {}, 'Your order'),
    el('ul', {}, ...cart.items.map((i) => el('li', {}, `${i.quantity} × ${i.title} — ${money(i.price_cents * i.quantity)}`))),
    el('p', {}, 'Total ', el('strong', {}, money(cart.total_cents))));
  view.append(el('h2', {}, 'Checkout'), result, el('div.checkout', {}, form, summary));
  // a changed form is a new attempt: a new key, and the card tokenized anew
  form.addEventListener('input', () => { attempt = { key: newId(), token: null }; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    const mine = attempt;
    pay.disabled = true;
    pay.textContent = 'Paying…';
    result.replaceChildren();
    try {
      mine.token ??= (await tokenizeCard({ number: f.card_number.replace(/[\s-]/g, ''),
        exp_month: Number(f.exp_month), exp_year: Number(f.exp_year), cvc: f.cvc })).id;
      const body = {
        shipping_address: { name: f.name, line1: f.line1, city: f.city, postal_code: f.postal_code, country: f.country },
        payment: { token: mine.token },
      };
      const { order } = await api('POST', '/api/v1/orders', body, { 'Idempotency-Key': mine.key });
      result.dataset.orderId = order.id;
      result.dataset.status = order.status;
      if (order.status === 'payment_failed') {
        const code = order.payment?.failure_code ?? 'declined';
        result.className = 'notice bad';
        result.replaceChildren(el('strong', {}, 'Payment declined. '),
          `${DECLINE_TEXT[code] ?? `The card was refused (${code}).`} Nothing was charged and your cart is kept: `,
          'try another card, or ask your bank.');
        for (const i of card.querySelectorAll('input')) i.value = '';
        attempt = { key: newId(), token: null };
        card.querySelector('input').focus();
        return;
      }
      // paid (or still being confirmed): the form goes, a confirmation comes
      await refreshCartCount();
      form.remove();
      summary.remove();
      result.className = 'notice';
      result.replaceChildren(
        el('h3', {}, order.status === 'paid' ? 'Thank you, your order is placed.' : 'Your order is placed; the payment is being confirmed.'),
        el('p', {}, `Order #${order.id} · ${money(order.total_cents, order.currency)}`,
          order.payment?.card_last4 ? ` · card ending ${order.payment.card_last4}` : ''),
        el('p', {}, el('a', { href: `#/orders/${order.id}`, id: 'to-order' }, 'See the order'), ' · ',
          el('a', { href: '#/orders' }, 'All your orders')));
    } catch (err) {
      showError(`checkout: ${describe(err)}`);
    } finally {
      pay.disabled = false;
      pay.textContent = `Pay ${money(cart.total_cents)}`;
    }
  });
}

function orderRow(o) {
  const items = (o.items ?? []).reduce((n, i) => n + (i.quantity ?? 1), 0);
  return el('tr', { dataset: { orderId: o.id, status: o.status } },
    el('td', {}, el('a', { href: `#/orders/${o.id}` }, `#${o.id}`)), el('td', {}, new Date(o.created_at).toLocaleString()),
    el('td', {}, String(items)), el('td', {}, money(o.total_cents, o.currency)),
    el('td', { class: `status status-${o.status}` }, statusOf(o)));
}

export async function ordersPage() {
  const view = $('#view');
  document.title = 'Your orders · Store';
  const head = () => el('tr', {}, el('th', {}, 'Order'), el('th', {}, 'Placed'), el('th', {}, 'Items'), el('th', {}, 'Total'), el('th', {}, 'Status'));
  const table = el('table', { id: 'orders' }, head());
  const failed = el('table', { id: 'failed-attempts' }, head());
  const attempts = el('details.attempts.hidden', {}, el('summary', {}, 'Failed payment attempts'),
    el('p.muted', {}, 'Declined payments: nothing was charged and nothing will ship.'), el('div.table-wrap', {}, failed));
  const none = el('p.muted.hidden', { id: 'no-orders' }, 'No orders yet.');
  const more = el('button.hidden', { type: 'button' }, 'More');
  view.append(el('h2', {}, 'Your orders'), el('div.table-wrap', {}, table), none, more, attempts);
  let cursor = null;
  let shown = 0;
  const page = async () => {
    const r = await api('GET', `/api/v1/orders${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`);
    for (const o of r.orders) {
      if (o.status === 'payment_failed') {
        failed.append(orderRow(o));
        attempts.classList.remove('hidden');
      } else {
        table.append(orderRow(o));
        shown++;
      }
    }
    cursor = r.next_cursor;
    more.classList.toggle('hidden', !cursor);
    none.classList.toggle('hidden', shown > 0 || !!cursor);
  };
  more.addEventListener('click', () => page().catch((err) => showError(describe(err))));
  await page();
}

const STEPS = [['created_at', 'Placed'], ['paid_at', 'Paid'], ['shipped_at', 'Shipped'], ['delivered_at', 'Delivered']];

export async function orderPage(id) {
  const view = $('#view');
  const { order: o } = await api('GET', `/api/v1/orders/${id}`);
  document.title = `Order #${o.id} · Store`;
  const a = o.shipping_address ?? {};
  const when = (t) => (t ? new Date(t).toLocaleString() : '');
  view.replaceChildren(el('article', { id: 'order', dataset: { orderId: o.id, status: o.status } },
    el('p.crumbs', {}, el('a', { href: '#/orders' }, 'Your orders'), ` › #${o.id}`),
    el('h2', {}, `Order #${o.id}`),
    el('p', {}, el('span', { id: 'order-status', class: `status status-${o.status}` }, statusOf(o))),
    o.status === 'payment_failed'
      ? el('p.notice.bad', {}, `${DECLINE_TEXT[o.payment?.failure_code] ?? 'The card was refused.'} Nothing was charged.`)
      : el('ol.timeline', {}, ...STEPS.map(([k, t]) => el('li', { class: o[k] ? 'done' : null }, o[k] ? `${t} ${when(o[k])}` : t))),
    el('div.table-wrap', {}, el('table', { id: 'order-items' },
      el('tr', {}, el('th', {}, 'Book'), el('th', {}, 'Qty'), el('th', {}, 'Price'), el('th', {}, 'Refunded')),
      ...(o.items ?? []).map((i) => el('tr', { dataset: { bookId: i.book_id } },
        el('td', {}, el('a', { href: `#/book/${i.book_id}` }, i.title)), el('td', {}, String(i.quantity)),
        el('td', {}, money(i.line_total_cents ?? i.price_cents * i.quantity, o.currency)),
        el('td', {}, i.refunded_quantity ? String(i.refunded_quantity) : ''))))),
    el('p', {}, 'Total ', el('strong', {}, money(o.total_cents, o.currency)),
      o.refunded_cents ? el('span', { id: 'order-refunded' }, ` · refunded ${money(o.refunded_cents, o.currency)}`) : null),
    o.payment?.card_last4 ? el('p.muted', {}, `Card ending ${o.payment.card_last4}`) : null,
    el('p.muted', {}, 'Ship to: ', [a.name, a.line1, a.city, a.postal_code, a.country].filter(Boolean).join(', '))));
}
