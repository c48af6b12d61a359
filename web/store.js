// store.js: the storefront's router (#/..., #/search?q=, #/book/<id>,
// #/cart, #/checkout, #/orders).  The catalog views live in
// store-catalog.js, search and its suggestions in store-search.js, the
// cart, checkout and orders in store-orders.js.
// Every API error is shown as the API worded it (e.g. "no such endpoint
// (404 not_found)" where the catalog is not deployed), never swallowed.

import { requireUser, describe } from './api.js';
import { $, showError } from './dom.js';
import { header } from './nav.js';
import { browse, bookPage } from './store-catalog.js';
import { searchPage, attachSuggest } from './store-search.js';
import { cartPage, checkoutPage, ordersPage } from './store-orders.js';

const me = await requireUser();
header(me);

const routes = [
  [/^#\/search\?(.*)$/, (m) => searchPage(new URLSearchParams(m[1]))],
  [/^#\/book\/(\d+)$/, (m) => bookPage(Number(m[1]))],
  [/^#\/cart$/, () => cartPage()],
  [/^#\/checkout$/, () => checkoutPage()],
  [/^#\/orders$/, () => ordersPage()],
  [/^#\/(?:\?(.*))?$/, (m) => browse(new URLSearchParams(m[1] ?? ''))],
];

async function route() {
  showError(null);
  $('#view').replaceChildren();
  const hash = location.hash || '#/';
  const hit = routes.find(([re]) => re.test(hash));
  try {
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

attachSuggest($('#search'));
addEventListener('hashchange', route);
route();
