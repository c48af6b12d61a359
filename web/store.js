// store.js: the storefront's shell: its hash router, the category tree
// beside every page, the cart counter, and order events live.
//
//   #/?category=<id>&sort=     browse (all books, or a category with its
//                              subcategories), sorted
//   #/search?q=&category=&min_price=&max_price=&in_stock=
//                              search with its facets as filters, and
//                              suggestions as you type (store-search.js)
//   #/book/<id>                a book, its reviews, "add to cart"
//   #/cart  #/checkout  #/orders  #/orders/<id>
//
// Live order events: the page runs the chat client (chat-client.js) for
// the signed-in shopper, which keeps one WebSocket (or long-poll when a
// proxy refuses it) and already carries every event the server queues for
// the user, order events included ({"type": "order", order}); this page
// listens to its `order` event: a notice says what changed and an open
// orders list or order page redraws.  One connection and its reconnect,
// catch-up and fallback logic, not a second one for the shop.
//
// Every API error is shown as the API worded it, never swallowed.

import { requireUser, describe, token } from './api.js';
import { ChatClient } from './chat-client.js';
import { $, showError } from './dom.js';
import { header } from './nav.js';
import { browse, bookPage, loadCategories, renderTree } from './store-catalog.js';
import { searchPage, attachSuggest } from './store-search.js';
import { cartPage, checkoutPage, ordersPage, orderPage, refreshCartCount, STATUS_TEXT } from './store-orders.js';

const me = await requireUser();
header(me);

const routes = [
  [/^#\/search\?(.*)$/, (m) => searchPage(new URLSearchParams(m[1]))],
  [/^#\/book\/(\d+)$/, (m) => bookPage(Number(m[1]), me)],
  [/^#\/cart$/, () => cartPage()],
  [/^#\/checkout$/, () => checkoutPage()],
  [/^#\/orders$/, () => ordersPage()],
  [/^#\/orders\/(\d+)$/, (m) => orderPage(Number(m[1]))],
  [/^#\/(?:\?(.*))?$/, (m) => browse(new URLSearchParams(m[1] ?? ''))],
];

let current = null;

async function route() {
  showError(null);
  const hash = location.hash || '#/';
  current = hash;
  $('#view').replaceChildren();
  $('#category-tree').classList.remove('open');
  $('#cat-toggle').setAttribute('aria-expanded', 'false');
  const hit = routes.find(([re]) => re.test(hash));
  try {
    renderTree(new URLSearchParams(hash.split('?')[1] ?? '').get('category'));
    if (hit) await hit[1](hash.match(hit[0]));
    else showError(`no page ${hash}`);
  } catch (err) {
    showError(`store: ${describe(err)}`);
  }
}

$('#search').addEventListener('submit', (e) => {
  e.preventDefault();
  location.hash = `#/search?q=${encodeURIComponent(new FormData(e.target).get('q'))}`;
});

$('#cat-toggle').addEventListener('click', () => {
  const open = $('#category-tree').classList.toggle('open');
  $('#cat-toggle').setAttribute('aria-expanded', String(open));
});

// order events: say what happened, redraw what shows that order
function onOrder(order) {
  if (!order?.id) return;
  const live = $('#live');
  live.textContent = `Order #${order.id}: ${STATUS_TEXT[order.status] ?? order.status}.`;
  live.dataset.orderId = order.id;
  live.dataset.status = order.status;
  live.classList.remove('hidden');
  if (current === '#/orders' || current === `#/orders/${order.id}`) route();
}

const live = new ChatClient({ token: () => token(), cursors: {} });
live.addEventListener('order', (e) => onOrder(e.detail));
live.start();
window.storeEvents = live;


attachSuggest($('#search'));
addEventListener('hashchange', route);
loadCategories().catch((err) => showError(`categories: ${describe(err)}`)).finally(() => {
  renderTree(new URLSearchParams((location.hash.split('?')[1]) ?? '').get('category'));
});
refreshCartCount();
route();
