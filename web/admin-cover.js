// admin-cover.js: a book's cover from the admin's book list: the current
// cover's small size, and a button that sends an image as
// PUT /api/v1/admin/books/{id}/cover (the raw image as the body).  The
// workers make the sizes once and the book's JSON gets cover_url and
// cover_thumb_url (public, cached for ever: the names carry the hash).

import { token } from './api.js';
import { el, showError } from './dom.js';

function putCover(bookId, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/api/v1/admin/books/${bookId}/cover`);
    xhr.setRequestHeader('authorization', `Bearer ${token()}`);
    xhr.setRequestHeader('content-type', file.type || 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener('load', () => {
      let json = {};
      try { json = JSON.parse(xhr.responseText); } catch { /* said below */ }
      if (xhr.status === 200 && json.book) return resolve(json.book);
      reject(new Error(json.error ? `${json.error.message} (${xhr.status} ${json.error.code})` : `HTTP ${xhr.status}`));
    });
    xhr.addEventListener('error', () => reject(new Error('the server cannot be reached')));
    xhr.send(file);
  });
}

// the cover cell of book b's row; done(book) after a new cover is stored
export function coverCell(b, done) {
  const img = b.cover_thumb_url ? el('img', { class: 'cover-thumb', src: b.cover_thumb_url, alt: '' }) : null;
  const input = el('input', { type: 'file', accept: 'image/jpeg,image/png,image/gif,image/webp', class: 'hidden',
    'aria-label': `Cover image for ${b.title}` });
  const bar = el('progress', { max: 1, value: 0, class: 'hidden' });
  const button = el('button', { type: 'button', class: 'cover-upload', onclick: () => input.click() },
    b.cover_url ? 'Change cover' : 'Add cover');
  input.addEventListener('change', async () => {
    const file = input.files[0];
    input.value = '';
    if (!file) return;
    showError(null);
    bar.classList.remove('hidden');
    button.disabled = true;
    try {
      done(await putCover(b.id, file, (f) => { bar.value = f; }));
    } catch (err) {
      showError(`cover of “${b.title}”: ${err.message}`);
    } finally {
      bar.classList.add('hidden');
      button.disabled = false;
    }
  });
  return el('span.cover-cell', {}, img, button, input, bar);
}
