// A small WebSocket client for the tests, on raw TCP (node 20 has no
// WebSocket global, and the conformance tests need to send frames no
// well-behaved client would).  Client frames are masked unless told not
// to; server frames are parsed into {opcode, fin, payload} and JSON text
// messages are also collected as objects.

import net from 'node:net';
import { randomBytes, createHash } from 'node:crypto';
import { BASE } from './lib.mjs';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const BASE_URL = new URL(BASE);

// frame(opcode, payload, {fin, mask, rsv, lengthForm}) -> Buffer
export function frame(opcode, payload = Buffer.alloc(0), opts = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const fin = opts.fin ?? true;
  const masked = opts.mask ?? true;
  const head = [((fin ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode)];
  const len = opts.declaredLength ?? data.length;
  const m = masked ? 0x80 : 0;
  if (len < 126 && !opts.longForm) head.push(m | len);
  else if (len < 65536 && opts.longForm !== 64) head.push(m | 126, len >> 8, len & 0xff);
  else {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    head.push(...b);
  }
  if (!masked) return Buffer.concat([Buffer.from(head), data]);
  const key = randomBytes(4);
  const out = Buffer.from(data);
  for (let i = 0; i < out.length; i++) out[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, out]);
}

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

export function closePayload(code, reason = '') {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
}

export class WsClient {
  // onMessage(msg) / onClose(): optional hooks for long-running clients,
  // which also set keepMessages = false so that nothing piles up
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.frames = [];        // every frame from the server
    this.messages = [];      // parsed JSON text messages
    this.closed = false;
    this.waiters = [];
    this.fragments = null;
    sock.on('data', (d) => this.#onData(d));
    sock.on('close', () => { this.closed = true; this.#wake(); this.onClose?.(); });
    sock.on('error', () => {});
  }

  // connect({token, origin, headers, query, path, base}) -> WsClient, or
  // throws with .status and .body when the handshake is refused; base is
  // another server of the stack's nginx (default BASE)
  static connect(opts = {}) {
    return new Promise((resolve, reject) => {
      const url = opts.base ? new URL(opts.base) : BASE_URL;
      const sock = net.connect({ host: url.hostname, port: Number(url.port), localAddress: opts.localAddress });
      const key = opts.key ?? randomBytes(16).toString('base64');
      const path = opts.path ?? '/ws' + (opts.query ?? '');
      const headers = {
        Host: url.host,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
        ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
        ...(opts.origin ? { Origin: opts.origin } : {}),
        ...(opts.headers ?? {}),
      };
      for (const k of Object.keys(headers)) if (headers[k] === undefined) delete headers[k];
      let head = Buffer.alloc(0);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onData);
        const text = head.subarray(0, end).toString();
        const rest = head.subarray(end + 4);
        const status = Number(text.split(' ')[1]);
        if (status !== 101) {
          const err = new Error(`handshake refused: ${text.split('\r\n')[0]}`);
          err.status = status;
          err.head = text;
          // read the body for the error document
          let body = rest;
          sock.on('data', (more) => { body = Buffer.concat([body, more]); });
          setTimeout(() => {
            try { err.body = JSON.parse(body.toString()); } catch { err.body = body.toString(); }
            sock.destroy();
            reject(err);
          }, 100);
          return;
        }
        const accept = /sec-websocket-accept: *([^\r\n]+)/i.exec(text)?.[1];
        const want = createHash('sha1').update(key + GUID).digest('base64');
        if (accept !== want) {
          sock.destroy();
          reject(new Error(`bad Sec-WebSocket-Accept ${accept}`));
          return;
        }
        const ws = new WsClient(sock);
        ws.handshake = text;
        if (rest.length) ws.#onData(rest);
        resolve(ws);
      };
      sock.on('data', onData);
      sock.on('error', reject);
      sock.on('connect', () => {
        const lines = [`GET ${path} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
        sock.write(lines.join('\r\n') + '\r\n\r\n' + (opts.early ?? ''));
      });
    });
  }

  #onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) break;
      const b0 = this.buf[0];
      const b1 = this.buf[1];
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) break;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) break;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) break;
      const f = { fin: !!(b0 & 0x80), rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked: !!(b1 & 0x80),
        payload: this.buf.subarray(off, off + len) };
      this.buf = this.buf.subarray(off + len);
      this.frames.push(f);
      if (f.opcode === OP.TEXT) {
        let msg;
        try { msg = JSON.parse(f.payload.toString()); } catch { /* kept as a frame */ }
        if (msg !== undefined) {
          if (this.keepMessages !== false) this.messages.push(msg);
          this.onMessage?.(msg);
        }
      }
      if (f.opcode === OP.PING && this.autoPong !== false) this.send(frame(OP.PONG, f.payload));
      if (f.opcode === OP.CLOSE) this.closeFrame = f;
    }
    this.#wake();
  }

  #wake() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  send(buf) { if (!this.sock.destroyed) this.sock.write(buf); }
  sendJson(obj) { this.send(frame(OP.TEXT, JSON.stringify(obj))); }

  // resolves with the first value fn returns truthy, re-checked on every frame
  waitFor(fn, what = 'a frame', timeout = 15000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeout);
      const check = () => {
        const v = fn(this);
        if (v) { clearTimeout(timer); resolve(v); return; }
        if (this.closed && !v) {
          // one last look happened above; the socket is gone
          clearTimeout(timer);
          reject(new Error(`connection closed while waiting for ${what}`));
          return;
        }
        this.waiters.push(check);
      };
      check();
    });
  }

  message(pred, what, timeout) {
    return this.waitFor(() => this.messages.find(pred), what, timeout);
  }

  // the first frame from the server matching pred (control frames too)
  frameWhere(pred, what = 'a frame', timeout = 15000) {
    return this.waitFor(() => this.frames.find(pred), what, timeout);
  }

  // all JSON messages matching pred once there are at least n of them
  messagesWhere(pred, n, what = `${n} messages`, timeout = 15000) {
    return this.waitFor(() => {
      const found = this.messages.filter(pred);
      return found.length >= n ? found : null;
    }, what, timeout);
  }

  // sends obj and resolves with the first later message for which
  // pred(message, obj) holds (an ack, an error with its ref, a sync...)
  request(obj, pred, what = `the answer to ${obj.type}`, timeout = 15000) {
    const from = this.messages.length;
    this.sendJson(obj);
    return this.waitFor(() => this.messages.slice(from).find((m) => pred(m, obj)), what, timeout);
  }

  // writes buf to the socket in pieces of the given sizes (cycled), each
  // one handed to the kernel on its own (no Nagle, one write at a time)
  async writeInPieces(buf, sizes) {
    this.sock.setNoDelay(true);
    let off = 0;
    let i = 0;
    while (off < buf.length) {
      const n = Math.min(sizes[i++ % sizes.length], buf.length - off);
      const piece = buf.subarray(off, off + n);
      off += n;
      await new Promise((resolve, reject) => {
        if (this.sock.destroyed) { reject(new Error('socket closed while writing')); return; }
        this.sock.write(piece, (err) => (err ? reject(err) : resolve()));
      });
    }
    return i;
  }

  // the close frame's code (undefined for an empty close) once the server closed
  async closedWith(timeout = 15000) {
    await this.waitFor((w) => w.closeFrame || w.closed, 'the close', timeout);
    const p = this.closeFrame?.payload;
    return p && p.length >= 2 ? p.readUInt16BE(0) : undefined;
  }

  async waitClosed(timeout = 15000) {
    await this.waitFor((w) => w.closed, 'the socket to close', timeout);
  }

  close() { this.sock.destroy(); }
}

// The browser's WebSocket API, as much of it as web/chat-client.js uses
// (readyState, onopen, onmessage, onclose, onerror, send, close), on
// WsClient, so the real client library runs in node:
//   globalThis.WebSocket = BrowserWebSocket;
// node 20 has no WebSocket of its own without a flag.
export class BrowserWebSocket {
  constructor(target) {
    const u = new URL(target);
    this.readyState = 0;
    WsClient.connect({ path: u.pathname + u.search }).then((ws) => {
      this.ws = ws;
      ws.keepMessages = false;
      ws.onMessage = (m) => { if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(m) }); };
      ws.onClose = () => this.#closed();
      if (this.readyState !== 0) { ws.close(); return; }   // closed while connecting
      this.readyState = 1;
      this.onopen?.({});
    }, () => {
      this.onerror?.({});
      this.#closed();
    });
  }

  send(text) {
    if (this.readyState === 1) this.ws.send(frame(OP.TEXT, text));
  }

  close() {
    this.ws?.close();
    this.#closed();
  }

  #closed() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({});
  }
}
