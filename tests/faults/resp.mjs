// One Redis connection for the fault run's own looks at the bus (who
// consumes a lane, what it holds, how deep it is), kept open: under load a
// redis-cli per question (lib.mjs's redis()) costs a process each, and the
// lane faults ask several times a second.  RESP2 over a socket, nothing
// more: a command is an array of bulk strings, a reply is parsed into
// strings, numbers, null, Error and arrays.  Redis is killed during the
// run, so a broken connection fails the commands in flight and the next
// command connects again.

import net from 'node:net';
import { REDIS_PORT } from '../integration/lib.mjs';

let conn = null;                // {sock, buf, waiting: [{resolve, reject}] in command order}

// one reply parsed from buf at off: [value, next offset], or null when the
// buffer does not hold all of it yet
function parse(buf, off) {
  const eol = buf.indexOf('\r\n', off);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, eol);
  const next = eol + 2;
  if (type === '+') return [line, next];
  if (type === '-') return [new Error(line), next];
  if (type === ':') return [Number(line), next];
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return [null, next];
    if (buf.length < next + n + 2) return null;
    return [buf.toString('utf8', next, next + n), next + n + 2];
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return [null, next];
    const out = [];
    let at = next;
    for (let i = 0; i < n; i++) {
      const item = parse(buf, at);
      if (!item) return null;
      out.push(item[0]);
      at = item[1];
    }
    return [out, at];
  }
  throw new Error(`redis: unexpected reply type ${type}`);
}

function connect() {
  const c = { sock: net.connect({ host: '127.0.0.1', port: Number(REDIS_PORT) }), buf: Buffer.alloc(0), waiting: [] };
  c.sock.setNoDelay(true);
  c.sock.on('data', (d) => {
    c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
    for (;;) {
      const r = c.waiting.length ? parse(c.buf, 0) : null;
      if (!r) break;
      c.buf = c.buf.subarray(r[1]);
      const w = c.waiting.shift();
      if (r[0] instanceof Error) w.reject(r[0]); else w.resolve(r[0]);
    }
  });
  const broken = (e) => {
    if (conn === c) conn = null;
    for (const w of c.waiting.splice(0)) w.reject(e ?? new Error('redis: connection closed'));
  };
  c.sock.on('error', broken);
  c.sock.on('close', () => broken());
  return c;
}

function send(c, args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args.map(String)) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return new Promise((resolve, reject) => {
    c.waiting.push({ resolve, reject });
    c.sock.write(parts.join(''));
  });
}

// rcmd('XPENDING', stream, 'workers') -> the reply.  A new connection
// first authenticates as the stack's admin (REDISCLI_AUTH, from
// `conf/stack.sh env`), as redis-cli does.
export function rcmd(...args) {
  if (!conn) {
    conn = connect();
    if (process.env.REDISCLI_AUTH) send(conn, ['AUTH', process.env.REDISCLI_AUTH]).catch(() => {});
  }
  return send(conn, args);
}

export function rclose() { conn?.sock.end(); conn = null; }
