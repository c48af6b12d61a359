// Helpers shared by the integration tests: HTTP calls to the edge, and
// direct looks at Redis and PostgreSQL through their own command-line
// clients, so a test can check what really got stored.  The stack is found
// through the environment that `conf/stack.sh env` prints.

import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

const run = promisify(execFile);

export const BASE = process.env.CHAT_BASE_URL ?? 'http://127.0.0.1:18080';
export const RUN_DIR = process.env.CHAT_RUN_DIR ?? '.run/test';
export const REDIS_PORT = process.env.CHAT_REDIS_PORT ?? '16390';
export const PG = process.env.CHAT_PG_CONNINFO ?? '';
// the command streams per lane (conf/stack.sh env; 1 on STACK_REDIS=cluster1)
export const STREAM_SHARDS = Number(process.env.CHAT_STREAM_SHARDS || 4);

// The stack's Redis wants a password: the tests' own looks at it (redis-cli
// here and in the tests, tests/faults/resp.mjs) are its admin's, whose
// password `conf/stack.sh env` passes as REDISCLI_AUTH (redis-cli reads it
// from there, never from argv); else it is read from the stack's file.
if (!process.env.REDISCLI_AUTH) {
  try {
    process.env.REDISCLI_AUTH = readFileSync(`${RUN_DIR}/redis/admin.pass`, 'utf8').trim();
  } catch { /* a stack without ACL users */ }
}

// api('POST', '/api/v1/auth/login', {email, password}, {token, headers, raw, signal, base})
// (base: another server of the stack's nginx, default BASE)
export async function api(method, path, body, opts = {}) {
  const headers = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let payload;
  if (opts.raw !== undefined) payload = opts.raw;
  else if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined && !headers['content-type']) {
    headers['content-type'] = 'application/json';
  }
  const res = await fetch((opts.base ?? BASE) + path, { method, headers, body: payload, signal: opts.signal });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* left null: the test decides */ }
  return { status: res.status, headers: res.headers, text, json };
}

// STACK_REDIS=cluster (conf/stack.sh): the stack's Redis is a cluster of
// 6 nodes on REDIS_PORT .. + 5, 3 of them masters (which ones changes with
// a failover).  redis() then follows MOVED (redis-cli -c), asks every
// master for KEYS, and deletes keys one by one (their slots differ); the
// key names stay protocol/chat_keys.h's.
export const REDIS_CLUSTER = process.env.CHAT_STACK_REDIS === 'cluster';
const REDIS_CLUSTER_NODES = 6;

export async function redis(...args) {
  if (!REDIS_CLUSTER) return redisAt(REDIS_PORT, ...args);
  const cmd = String(args[0]).toUpperCase();
  if (cmd === 'KEYS') {
    const keys = new Set();
    for (const out of await redisEachMaster(REDIS_PORT, ...args)) {
      for (const k of out.split('\n')) if (k) keys.add(k);
    }
    return [...keys].join('\n');
  }
  if (cmd === 'DEL' && args.length > 2) {
    // one DEL per key (their slots differ), all from one redis-cli at
    // once, so the keys go together as they would in one DEL
    const quote = (k) => `"${String(k).replace(/[\\"]/g, '\\$&')}"`;
    const out = await new Promise((resolve, reject) => {
      const child = execFile('redis-cli', ['-c', '-p', String(REDIS_PORT), '--raw'],
        (e, stdout) => (e ? reject(e) : resolve(stdout)));
      child.stdin.end(args.slice(1).map((k) => `DEL ${quote(k)}\n`).join(''));
    });
    return String(out.split('\n').filter(Boolean).reduce((n, v) => n + Number(v), 0));
  }
  return redisCli(['-c', '-p', REDIS_PORT, ...args]);
}

// the port of the node that serves key (REDIS_PORT but on a cluster):
// for what must run on one node as it is (a MULTI piped to redis-cli)
export async function redisPortOf(key) {
  if (!REDIS_CLUSTER) return String(REDIS_PORT);
  const out = await redisCli(['-p', REDIS_PORT, 'EXISTS', key]);
  return /MOVED \d+ [^ ]*:(\d+)/.exec(out)?.[1] ?? String(REDIS_PORT);
}

// a command to another Redis of the stack (the second application's)
export async function redisAt(port, ...args) {
  return redisCli(['-p', port, ...args]);
}

// the answer of every master of the Redis on port (one, unless it is the
// stack's cluster): for what looks at every key (KEYS, a script over them)
export async function redisEachMaster(port, ...args) {
  if (!REDIS_CLUSTER || String(port) !== String(REDIS_PORT)) return [await redisAt(port, ...args)];
  const outs = [];
  for (let i = 0; i < REDIS_CLUSTER_NODES; i++) {
    const node = Number(REDIS_PORT) + i;
    const role = await redisCli(['-p', node, 'ROLE']).catch(() => '');
    if (role.startsWith('master')) outs.push(await redisCli(['-p', node, ...args]));
  }
  return outs;
}

async function redisCli(args) {
  const { stdout } = await run('redis-cli', ['--raw', ...args.map(String)]);
  return stdout.replace(/\n$/, '');
}

// sql("SELECT ... WHERE email = :'p1'", email): one value, or rows of
// '|'-separated columns.  Parameters travel as psql variables, quoted by
// psql itself; the query goes on stdin because -c does not interpolate.
export function sql(query, ...params) {
  const vars = params.flatMap((p, i) => ['-v', `p${i + 1}=${p}`]);
  return new Promise((resolve, reject) => {
    const child = spawn('psql', [PG, '-XtAq', '-v', 'ON_ERROR_STOP=1', ...vars, '-f', '-']);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`psql: ${err}`))));
    child.stdin.end(query);
  });
}

// the entries of a stream from `redis-cli --raw XRANGE` text:
// [{id, <field>: <value>, ...}] (replies: {req, status, body})
export function streamEntries(text) {
  const lines = text.split('\n').filter((l) => l !== '');
  const out = [];
  let cur = null;
  for (let i = 0; i < lines.length; i++) {
    if (/^\d+-\d+$/.test(lines[i])) {
      cur = { id: lines[i] };
      out.push(cur);
    } else if (cur) {
      cur[lines[i]] = lines[i + 1];
      i++;
    }
  }
  return out;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, { timeout = 20000, every = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

export function uniqueEmail(tag = 'user') {
  return `${tag}-${Date.now()}-${randomBytes(4).toString('hex')}@example.com`;
}

// An auth call as a well-behaved client makes it: a rate limit (429) or a
// full auth lane (503 overloaded) is waited out as Retry-After says (with
// jitter), up to 20 times; the last answer is returned.
async function authCall(path, body, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    const r = await api('POST', path, body, opts);
    const busy = r.status === 429 || (r.status === 503 && r.json?.error?.code === 'overloaded');
    if (!busy || attempt >= 20) return r;
    await sleep(1000 * Number(r.headers.get('retry-after') ?? 1) * (0.5 + Math.random()));
  }
}

// Registers a user (authCall: a busy answer is waited out).
// app: another application of the stack's nginx ({base, prefix}).
export async function registerUser(tag, app = {}) {
  const email = uniqueEmail(tag);
  const password = 'correct horse battery';
  const r = await authCall(`${app.prefix ?? '/api/v1'}/auth/register`, { email, password, display_name: tag },
    { base: app.base });
  if (r.status !== 201) throw new Error(`register ${email}: ${r.status} ${r.text}`);
  return { email, password, ...r.json };
}

// Signs an existing user in ({user, token}; authCall: a busy answer is
// waited out).
export async function signIn(email, password) {
  const r = await authCall('/api/v1/auth/login', { email, password });
  if (r.status !== 200) throw new Error(`login ${email}: ${r.status} ${r.text}`);
  return r.json;
}

export function pidOf(file) {
  return Number(readFileSync(`${RUN_DIR}/${file}`, 'utf8').trim());
}

// the worker processes: children of the backend supervisor
export async function workerPids() {
  try {
    const { stdout } = await run('pgrep', ['-P', String(pidOf('backend/backend.pid'))]);
    return stdout.trim().split('\n').filter(Boolean).map(Number).sort();
  } catch {
    return [];
  }
}

// the live worker processes that read one lane's streams: the streams'
// consumers, and those the backend's log says started on the lane (a
// worker becomes a consumer only once it has read something)
export async function lanePids(lane) {
  const live = new Set(await workerPids());
  const pids = new Set();
  let log = '';
  try { log = readFileSync(`${RUN_DIR}/backend/backend.log`, 'utf8'); } catch { /* none yet */ }
  const started = new RegExp(` (\\d+): started as consumer \\S+ on \\d+ shards of lane ${lane}$`, 'gm');
  for (const m of log.matchAll(started)) pids.add(Number(m[1]));
  for (let s = 0; s < STREAM_SHARDS; s++) {
    const lines = (await redis('XINFO', 'CONSUMERS', `chat:cmd:${lane}:{${s}}`, 'workers'))
      .split('\n');
    for (let i = 0; i + 1 < lines.length; i++) {
      if (lines[i] === 'name') pids.add(Number(lines[i + 1].split(':').at(-1)));
    }
  }
  return [...pids].filter((p) => live.has(p)).sort();
}

export function tokenSecret() {
  return readFileSync(`${RUN_DIR}/token_secret`, 'utf8').trim();
}

// An HS256 token with these claims, signed with the stack's real secret
// (header overrides the default {alg: HS256, typ: JWT}).  Every token
// names its sign-in session: without sid and sxp in claims it gets a
// fresh session that ends with the token (sid: undefined leaves it out).
export function signToken(claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  claims = { ...claims };
  if (!('sid' in claims)) claims.sid = randomBytes(16).toString('base64url');
  if (!('sxp' in claims) && typeof claims.exp === 'number') claims.sxp = claims.exp;
  const body = `${b64(header)}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', tokenSecret()).update(body).digest('base64url')}`;
}

// The bus's sealed fields (protocol/chat_seal.c), written again
// here from its description with node's own crypto, so a test both talks
// to the workers as the edge does and checks the C code's format: AES-256-
// GCM, key HKDF-SHA256(token secret, info "chat bus seal v1"), associated
// data dir \n op \n field \n gw \n req, text "s1." base64url(nonce ||
// ciphertext || tag).  ad = {dir: 'cmd' | 'reply', op, gw?, req?}.
function sealKey() {
  return Buffer.from(hkdfSync('sha256', tokenSecret(), Buffer.alloc(0), 'chat bus seal v1', 32));
}

function sealAad(ad, field) {
  return Buffer.from([ad.dir, ad.op, field, ad.gw ?? '', String(ad.req ?? '')].join('\n'));
}

export function sealField(ad, field, plain) {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', sealKey(), nonce);
  c.setAAD(sealAad(ad, field));
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return `s1.${Buffer.concat([nonce, ct, c.getAuthTag()]).toString('base64url')}`;
}

// the plain text, or null when it does not open
export function openField(ad, field, text) {
  if (typeof text !== 'string' || !text.startsWith('s1.')) return null;
  const raw = Buffer.from(text.slice(3), 'base64url');
  if (raw.length < 28) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', sealKey(), raw.subarray(0, 12));
    d.setAAD(sealAad(ad, field));
    d.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString('utf8');
  } catch {
    return null;
  }
}

// A log file of the stack (relative to RUN_DIR) read from where it ended
// when the tail was made: tail.read() -> the text written since.
export function logTail(file) {
  const path = `${RUN_DIR}/${file}`;
  const size = () => { try { return statSync(path).size; } catch { return 0; } };
  const start = size();
  return {
    read() {
      const end = size();
      if (end <= start) return '';
      const fd = openSync(path, 'r');
      try {
        const buf = Buffer.alloc(end - start);
        readSync(fd, buf, 0, buf.length, start);
        return buf.toString();
      } finally {
        closeSync(fd);
      }
    },
  };
}

// registers n users, at most `parallel` at a time (each costs a scrypt on
// a worker, so more in flight than workers only queues them)
// every one of `who` accepts conversation cid (a group made with people
// who are strangers to its creator is an invitation for them until they
// do: backend/README.md, Contacts and consent), `parallel` at a time
export async function acceptAll(cid, who, parallel = 16) {
  let next = 0;
  const lane = async () => {
    while (next < who.length) {
      const u = who[next++];
      const r = await api('POST', `/api/v1/conversations/${cid}/accept`, undefined, { token: u.token });
      if (r.status !== 200) throw new Error(`accept ${cid}: ${r.status} ${r.text}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, who.length) }, lane));
}

export async function registerUsers(tag, n, parallel = 8) {
  const users = new Array(n);
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      users[i] = await registerUser(`${tag}${i}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, lane));
  return users;
}

// pending (read, not yet acknowledged) commands of the worker group per
// consumer over every command stream, or over one lane's (chat_lanes.h):
// Map(consumer -> count)
export async function pendingByWorker(lane) {
  const streams = (await redis('KEYS', lane ? `chat:cmd:${lane}:*` : 'chat:cmd:*'))
    .split('\n').filter(Boolean);
  const counts = new Map();
  for (const s of streams) {
    // summary form: total, lowest id, highest id, then consumer/count pairs
    const lines = (await redis('XPENDING', s, 'workers')).split('\n');
    for (let i = 3; i + 1 < lines.length; i += 2) {
      counts.set(lines[i], (counts.get(lines[i]) ?? 0) + Number(lines[i + 1]));
    }
  }
  return counts;
}
