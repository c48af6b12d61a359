// dom.js: small helpers to build the pages' elements without innerHTML,
// so text from the API is never read as markup.

export const $ = (sel, root = document) => root.querySelector(sel);

// el('div.note', {title: 'x', onclick: fn, style: 'width:5em'}, 'text', child, ...)
export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const node = document.createElement(tag || 'div');
  if (classes.length) node.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    // through the CSSOM: the CSP (style-src 'self') refuses style attributes
    else if (k === 'style') node.style.cssText = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

// busy('Searching…'): what a wait looks like everywhere: a spinner (CSS
// only, still when the reader asks for reduced motion) beside words that
// say what is awaited; role=status, so a screen reader hears it too.
// The caller removes or replaces it when the answer is in.
export function busy(text, tag = 'span') {
  return el(`${tag}.busy`, { role: 'status' }, el('span.spinner', { 'aria-hidden': 'true' }), text);
}

// shows an error (or clears it with null) in the page's alert line
export function showError(message) {
  const box = $('#error');
  if (box) box.textContent = message ?? '';
}

export const money = (cents, currency = 'USD') =>
  new Intl.NumberFormat('en', { style: 'currency', currency }).format(cents / 100);
