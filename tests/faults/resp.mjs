// One Redis connection for the fault run's own looks at the bus (who
// consumes a lane, what it holds, how deep it is), kept open: under load a
// redis-cli per question (lib.mjs's redis()) costs a process each, and the
// lane faults ask several times a second.  RESP2 over a socket, nothing
// more: a command is an array of bulk strings, a reply is parsed into
// strings, numbers, null, Error and arrays.  Redis is killed during the
// run, so a broken connection fails the commands in flight and the next
// command connects again.
//
// On a cluster stack (STACK_REDIS=cluster: nodes on REDIS_PORT .. + 5) a
// connection per node: a keyed command goes where its key was last found
// (first REDIS_PORT) and follows MOVED and ASK; KEYS asks every master
// (rcmdEachMaster), and a dead node's commands try the others.

import net from 'node:net';
import { REDIS_CLUSTER, REDIS_PORT } from '../integration/lib.mjs';

const conns = new Map();        // port -> {sock, buf, waiting: [{resolve, reject}] in command order}
const keyPort = new Map();      // a cluster: key -> the port that last served it
const NODES = 6;

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

function connect(port) {
  const c = { sock: net.connect({ host: '127.0.0.1', port }), buf: Buffer.alloc(0), waiting: [] };
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
    if (conns.get(port) === c) conns.delete(port);
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

// the command on the node at port, connecting (and authenticating as the
// stack's admin, REDISCLI_AUTH from `conf/stack.sh env`, as redis-cli
// does) if need be
function on(port, args) {
  let c = conns.get(port);
  if (!c) {
    c = connect(port);
    conns.set(port, c);
    if (process.env.REDISCLI_AUTH) send(c, ['AUTH', process.env.REDISCLI_AUTH]).catch(() => {});
  }
  return send(c, args);
}

// rcmd('XPENDING', stream, 'workers') -> the reply
export function rcmd(...args) {
  if (!REDIS_CLUSTER) return on(Number(REDIS_PORT), args);
  if (String(args[0]).toUpperCase() === 'KEYS') {
    return rcmdEachMaster(...args).then((all) => [...new Set(all.flat())]);
  }
  return routed(args);
}

// which argument names the key, for the commands the run sends
function keyOf(args) {
  const cmd = String(args[0]).toUpperCase();
  if (cmd === 'XINFO' || cmd === 'XGROUP') return String(args[2]);
  return args.length > 1 ? String(args[1]) : '';
}

async function routed(args, tries = 0, asking = false) {
  const key = keyOf(args);
  const port = keyPort.get(key) ?? Number(REDIS_PORT) + (tries % NODES);
  try {
    if (asking) on(port, ['ASKING']).catch(() => {});
    return await on(port, args);
  } catch (e) {
    if (tries >= NODES * 2) throw e;
    const redirect = /^(MOVED|ASK) \d+ [^ ]*:(\d+)$/.exec(e.message);
    if (redirect) {
      keyPort.set(key, Number(redirect[2]));
      const answer = routed(args, tries + 1, redirect[1] === 'ASK');
      if (redirect[1] === 'ASK') keyPort.delete(key);
      return answer;
    }
    if (e.code === 'ECONNREFUSED' || /connection closed/.test(e.message)) {
      keyPort.delete(key);       // a dead node: another one redirects
      return routed(args, tries + 1);
    }
    throw e;
  }
}

// the command on every master (one on a single Redis): their replies
export async function rcmdEachMaster(...args) {
  if (!REDIS_CLUSTER) return [await rcmd(...args)];
  const out = [];
  for (let i = 0; i < NODES; i++) {
    const port = Number(REDIS_PORT) + i;
    const role = await on(port, ['ROLE']).catch(() => null);
    if (role?.[0] === 'master') out.push(await on(port, args));
  }
  return out;
}

// the command on the node at port (a cluster's node), or null when it
// does not answer
export function rcmdAt(port, ...args) {
  return on(Number(port), args).catch(() => null);
}

export function rclose() {
  for (const c of conns.values()) c.sock.end();
  conns.clear();
}
