// chat-attachments.js: files and images in the chat.  The pane calls two
// hooks: attachComposer(pane) once (an attach button and drag-and-drop
// on the open conversation, an upload with its progress, then the
// message that carries it) and attachmentsOf(message) for each message
// shown (thumbnails inline, a chip for other files).
//
// How an <img> gets an authorized file: the attachment's url answers
// only with the bearer token (a worker checks membership), and a browser
// sends no Authorization header for <img src>.  So images are fetched
// with the token and shown from a blob: URL (the page's CSP allows
// img-src blob:); a file chip does the same on click and saves the blob.
// No token or signed link ever goes into a URL or the server's logs.

import { token } from './api.js';
import { $, busy, el } from './dom.js';
import { newId } from './chat-client.js';

// the server's cap is client_max_body_size of /api/v1/uploads (25 MB
// locally): say so before sending megabytes that would be refused
const MAX_BYTES = 25 * 1024 * 1024;

// blob: URLs of what this page fetched, by url, so one image is fetched once
const blobs = new Map();

const sizeText = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KB` : `${(n / 1048576).toFixed(1)} MB`;

// the file of an attachment url as a blob: URL (fetched with the token)
async function blobUrl(url) {
  if (!blobs.has(url)) {
    blobs.set(url, (async () => {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token()}` } });
      if (!res.ok) throw new Error(`${res.status}`);
      return URL.createObjectURL(await res.blob());
    })());
  }
  try {
    return await blobs.get(url);
  } catch (err) {
    blobs.delete(url);
    throw err;
  }
}

// POST /api/v1/uploads with progress: resolves to the attachment object,
// rejects with the API's words
function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1/uploads?name=${encodeURIComponent(file.name.replace(/[/\\]/g, '_') || 'file')}`);
    xhr.setRequestHeader('authorization', `Bearer ${token()}`);
    xhr.setRequestHeader('content-type', file.type || 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener('load', () => {
      let json = {};
      try { json = JSON.parse(xhr.responseText); } catch { /* not JSON: said below */ }
      if (xhr.status === 201 && json.attachment) return resolve(json.attachment);
      reject(new Error(json.error?.message ? `${json.error.message} (${xhr.status} ${json.error.code})` : `upload failed (${xhr.status})`));
    });
    xhr.addEventListener('error', () => reject(new Error('the server cannot be reached')));
    xhr.send(file);
  });
}

// the attach button, the hidden file input and drag-and-drop, for pane
// (a ChatPane: pane.conv, pane.client, pane.pending(cmid, text))
export function attachComposer(pane) {
  const composer = $('#composer');
  if (!composer || $('#attach')) return;
  const input = el('input', { type: 'file', id: 'attach-file', class: 'hidden', multiple: true,
    accept: 'image/*,application/pdf,text/plain,.docx,.xlsx,.pptx,.odt,.ods,.odp,.zip' });
  // a label, not a button: the composer's one button stays Send (its
  // submit), and a label opens its file input without script
  const button = el('label', { for: 'attach-file', id: 'attach', class: 'attach button', title: 'Attach a file',
    role: 'button', tabindex: 0, 'aria-label': 'Attach a file',
    onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } } }, '+');
  const status = el('div', { id: 'upload-status', class: 'upload-status', role: 'status', 'aria-live': 'polite' });
  // beside the text box where the composer keeps its tools
  ($('#composer-tools') ?? composer).prepend(button, input);
  composer.after(status);

  const sendFiles = async (files) => {
    const conv = pane.conv;
    if (!conv) return;
    for (const file of files) {
      const bar = el('progress', { max: 1, value: 0 });
      const line = el('div.upload', {}, busy(`${file.name} (${sizeText(file.size)}) `), bar);
      status.append(line);
      try {
        if (file.size > MAX_BYTES) throw new Error(`larger than ${sizeText(MAX_BYTES)}`);
        const att = await upload(file, (f) => { bar.value = f; });
        // the caption: what is typed, else the file's name
        const field = $('#text');
        const text = field.value.trim() || file.name;
        field.value = '';
        const cmid = newId();
        pane.pending(cmid, text);
        line.remove();
        await pane.client.send(conv.id, text, cmid, { attachments: [att.id] });
      } catch (err) {
        line.replaceChildren(el('span.error', {}, `${file.name}: not sent: ${err.message}`),
          el('button', { type: 'button', class: 'link', onclick: () => line.remove() }, 'Dismiss'));
      }
    }
  };

  input.addEventListener('change', () => { sendFiles([...input.files]); input.value = ''; });

  // drop anywhere on the conversation
  const zone = $('#messages')?.parentElement ?? composer;
  zone.addEventListener('dragover', (e) => {
    if (!pane.conv || !e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    zone.classList.add('dropping');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dropping'));
  zone.addEventListener('drop', (e) => {
    zone.classList.remove('dropping');
    if (!pane.conv || !e.dataTransfer?.files.length) return;
    e.preventDefault();
    sendFiles([...e.dataTransfer.files]);
  });
}

// an image: its thumbnail, the original in a new tab on click
function imageOf(a) {
  const img = el('img', { class: 'att-image', alt: a.name, loading: 'lazy' });
  const link = el('a', { href: '#', class: 'att-link', title: `${a.name} (${sizeText(a.size)})`,
    onclick: async (e) => {
      e.preventDefault();
      try { window.open(await blobUrl(a.url), '_blank', 'noopener'); } catch { link.classList.add('broken'); }
    } }, img);
  blobUrl(a.thumb_url ?? a.url)
    .then((u) => { img.src = u; })
    .catch(() => { img.replaceWith(el('span.muted', {}, `${a.name} (unavailable)`)); });
  return link;
}

// a short label of a file's kind for its chip: PDF, TXT, DOCX, ZIP...
function kindOf(a) {
  const ext = /\.([a-z0-9]{1,5})$/i.exec(a.name)?.[1];
  if (ext) return ext.toUpperCase();
  return a.content_type === 'application/pdf' ? 'PDF' : a.content_type?.startsWith('text/') ? 'TXT' : 'FILE';
}

// any other file: a chip that saves it
function chipOf(a) {
  return el('button', { type: 'button', class: 'att-chip', title: `Download ${a.name}`,
    onclick: async (e) => {
      const chip = e.currentTarget;
      try {
        const link = el('a', { href: await blobUrl(a.url), download: a.name });
        document.body.append(link);
        link.click();
        link.remove();
      } catch (err) {
        chip.classList.add('broken');
        chip.title = `could not download (${err.message})`;
      }
    } },
  el('span.att-icon', { 'aria-hidden': 'true' }, kindOf(a)), el('span.att-name', {}, a.name), el('span.muted', {}, ` ${sizeText(a.size)}`));
}

// the attachments of message m as one element, or null when it has none
export function attachmentsOf(m) {
  if (!m.attachments?.length) return null;
  return el('div.attachments', {}, m.attachments.map((a) =>
    a.content_type?.startsWith('image/') ? imageOf(a) : chipOf(a)));
}
