// store-search.js: the store's search page with its filters (the facets
// of GET /api/v1/books/search: top-level category, price band, in stock),
// and suggestions as you type in the search box (GET /api/v1/books/suggest).
//
// The filters live in the page's address (#/search?q=&category=&min_price=
// &max_price=&in_stock=true), so a filtered search can be reloaded, shared
// and gone back from; choosing one only changes the address and the router
// draws the page again.  Counts come with the first page of results; when
// the server counted only the first of many matches (facets.approximate)
// the counts say so.
//
// Suggestions: at most one request in flight per keystroke pause (150 ms),
// answers older than the newest one dropped, arrow keys and Enter to pick,
// Escape to close.  A title opens the book; an author searches their name.

import { api, describe } from './api.js';
import { $, el, money, showError } from './dom.js';
import { bookList } from './store-catalog.js';

const FILTERS = ['category', 'min_price', 'max_price', 'in_stock'];

// the address of this search with some filters changed (null removes one)
function searchHash(params, changes) {
  const next = new URLSearchParams();
  next.set('q', params.get('q') ?? '');
  for (const k of FILTERS) {
    const v = k in changes ? changes[k] : params.get(k);
    if (v != null && v !== '') next.set(k, v);
  }
  return `#/search?${next}`;
}

function bandLabel(band, currency = 'USD') {
  if (band.max == null) return `${money(band.min, currency)} and up`;
  if (!band.min) return `Under ${money(band.max, currency)}`;
  return `${money(band.min, currency)} – ${money(band.max, currency)}`;
}

// one filter line: a link that applies it (or, when it is on, clears it)
function choice(label, count, hash, on, approximate) {
  return el('li', {},
    el('a', { href: hash, class: on ? 'on' : null, 'aria-current': on ? 'true' : null },
      el('span', {}, label),
      count == null ? null : el('span.count', {}, `${count}${approximate ? '+' : ''}`)));
}

function facetPanel(panel, params, facets) {
  const approx = Boolean(facets.approximate);
  const cat = params.get('category');
  const minP = params.get('min_price');
  const maxP = params.get('max_price');
  const stock = params.get('in_stock') === 'true';
  const groups = [];

  const cats = el('ul', { id: 'facet-categories' });
  for (const c of facets.categories ?? []) {
    const on = String(c.id) === cat;
    cats.append(choice(c.name, c.count, searchHash(params, { category: on ? null : c.id }), on, approx));
  }
  if (cat && !(facets.categories ?? []).some((c) => String(c.id) === cat)) {
    cats.append(choice('Any category', null, searchHash(params, { category: null }), false, approx));
  }
  // a group with nothing to choose (matches in no category) is left out
  if (cats.children.length) groups.push(el('section', {}, el('h3', {}, 'Category'), cats));

  const bands = el('ul', { id: 'facet-prices' });
  for (const b of facets.price_bands ?? []) {
    const on = String(b.min) === (minP ?? '0') && (b.max == null ? maxP == null : String(b.max - 1) === maxP);
    if (!b.count && !on) continue;
    bands.append(choice(bandLabel(b), b.count,
      searchHash(params, on ? { min_price: null, max_price: null }
        : { min_price: b.min || null, max_price: b.max == null ? null : b.max - 1 }), on, approx));
  }
  if (bands.children.length) groups.push(el('section', {}, el('h3', {}, 'Price'), bands));

  const box = el('input', { type: 'checkbox', id: 'facet-in-stock', checked: stock });
  box.addEventListener('change', () => { location.hash = searchHash(params, { in_stock: box.checked ? 'true' : null }); });
  groups.push(el('section', {}, el('h3', {}, 'Availability'),
    el('label.check', {}, box, ' In stock only ',
      el('span.count', { id: 'facet-in-stock-count' }, `${facets.in_stock ?? 0}${approx ? '+' : ''}`))));

  const active = FILTERS.some((k) => params.get(k));
  panel.replaceChildren(...[
    el('div.facet-head', {},
      el('strong', {}, 'Filters'),
      active ? el('a', { id: 'facet-clear', href: searchHash(params, { category: null, min_price: null, max_price: null, in_stock: null }) }, 'Clear all') : null),
    ...groups,
    approx ? el('p.muted', { id: 'facet-approximate' }, 'Counts from the best matches; there are more.') : null,
  ].filter(Boolean));
}

export async function searchPage(params) {
  const q = params.get('q') ?? '';
  $('#search input').value = q;
  const view = $('#view');
  const panel = el('aside.facets', { id: 'facets', 'aria-label': 'Filters' }, el('p.muted', {}, 'Loading filters…'));
  const results = el('div.results');
  view.append(el('div.search-layout', {}, panel, results));
  const query = { q };
  for (const k of FILTERS) if (params.get(k)) query[k] = params.get(k);
  let drawn = false;
  document.title = `“${q}” · Store`;
  results.append(el('div.view-head', {}, el('h2', { id: 'view-title' }, `Results for “${q}”`)));
  await bookList('/api/v1/books/search', query, 'No books match. Try fewer words or other filters.', {
    into: results,
    onPage: (r) => {
      if (drawn || !r.facets) return;
      drawn = true;
      facetPanel(panel, params, r.facets);
    },
  });
}

// text as nodes, the start of each word that begins with a typed word in <b>
function marked(text, typed) {
  return text.split(/([\p{L}\p{N}]+)/u).map((part) => {
    const hit = typed.find((t) => part.toLowerCase().startsWith(t));
    return hit ? el('span', {}, el('b', {}, part.slice(0, hit.length)), part.slice(hit.length)) : part;
  });
}

// Suggestions under the search form's input.
export function attachSuggest(form) {
  const input = $('input', form);
  const list = el('ul.suggestions.hidden', { id: 'suggestions', role: 'listbox' });
  form.classList.add('suggest');
  form.append(list);
  input.setAttribute('autocomplete', 'off');
  input.setAttribute('role', 'combobox');
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', 'suggestions');
  input.setAttribute('aria-expanded', 'false');

  let timer = 0;
  let asked = 0;
  let items = [];
  let active = -1;

  const close = () => {
    list.classList.add('hidden');
    list.replaceChildren();
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    items = [];
    active = -1;
  };

  const pick = (s) => {
    close();
    if (s.kind === 'title' && s.book_id) location.hash = `#/book/${s.book_id}`;
    else {
      input.value = s.text;
      location.hash = `#/search?q=${encodeURIComponent(s.text)}`;
    }
  };

  const highlight = (i) => {
    active = i;
    list.querySelectorAll('li').forEach((li, k) => li.setAttribute('aria-selected', String(k === i)));
    if (i >= 0) input.setAttribute('aria-activedescendant', `suggestion-${i}`);
    else input.removeAttribute('aria-activedescendant');
  };

  let typed = [];
  const show = (suggestions) => {
    items = suggestions;
    active = -1;
    list.replaceChildren(...suggestions.map((s, i) => el('li', {
      id: `suggestion-${i}`, role: 'option', 'aria-selected': 'false', dataset: { kind: s.kind },
      // mousedown, not click: the input's blur would close the list first
      onmousedown: (e) => { e.preventDefault(); pick(s); },
    }, el('span.kind', {}, s.kind === 'author' ? 'Author' : 'Title'), el('span', {}, ...marked(s.text, typed)))));
    const open = suggestions.length > 0;
    list.classList.toggle('hidden', !open);
    input.setAttribute('aria-expanded', String(open));
  };

  input.addEventListener('input', () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) { close(); return; }
    timer = setTimeout(async () => {
      const mine = ++asked;
      try {
        const r = await api('GET', `/api/v1/books/suggest?q=${encodeURIComponent(q)}`);
        if (mine === asked && input.value.trim() === q) {
          typed = q.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
          show(r.suggestions ?? []);
        }
      } catch (err) {
        if (mine === asked) { close(); showError(`suggestions: ${describe(err)}`); }
      }
    }, 150);
  });

  input.addEventListener('keydown', (e) => {
    if (list.classList.contains('hidden')) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = items.length;
      highlight(e.key === 'ArrowDown' ? (active + 1) % n : (active - 1 + n) % n);
    } else if (e.key === 'Enter' && active >= 0) {
      e.preventDefault();
      pick(items[active]);
    } else if (e.key === 'Escape') {
      close();
    }
  });

  input.addEventListener('blur', () => setTimeout(close, 100));
  form.addEventListener('submit', () => { clearTimeout(timer); asked++; close(); });
}
