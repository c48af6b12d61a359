// HTTP for the fault run's clients: one call from a loopback address of
// the client's own (so the edge's per-address limits see many clients, as
// they would), and the rule every client of the contract follows when an
// answer says nothing about the outcome: the same request again, with the
// same Idempotency-Key or client_msg_id,
//
//   503 overloaded, 429   after its Retry-After (with jitter): the lane is
//                         full or the caller is over a rate; nothing ran
//   502, 503, 504, no answer at all (a dropped connection)
//                         after a short pause: it may or may not have run
//
// until a definite answer, for at most five minutes.  Counted per lane
// (protocol/chat_lanes.c), so the run can say what each lane saw.

import http from 'node:http';
import { BASE, sleep } from '../integration/lib.mjs';

export const LANES = ['chat', 'read', 'auth', 'orders', 'admin'];

// per lane: requests, answered, retried, overloaded (503 overloaded),
// timeouts (504), dropped (no answer), unanswered (gave up), in flight
export const laneStats = Object.fromEntries(LANES.map((l) => [l, {
  requests: 0, answered: 0, retried: 0, overloaded: 0, timeouts: 0, dropped: 0, unanswered: 0, inflight: 0,
}]));

const base = new URL(BASE);

// call('POST', path, {body, token, headers, address}) -> {status, headers, json}
// (throws when no answer came: refused, dropped, 45 s without one)
export function call(method, path, { body, token, headers = {}, address } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) h['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: base.hostname, port: base.port, path, method, headers: h, agent: false, localAddress: address,
    }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* left null */ }
        resolve({ status: res.statusCode, headers: res.headers, json, text });
      });
      res.on('error', reject);
    });
    req.setTimeout(45000, () => req.destroy(new Error('no answer in 45 s')));
    req.on('error', reject);
    req.end(payload);
  });
}

export const isOverloaded = (r) => r?.status === 503 && r.json?.error?.code === 'overloaded';

// how long to wait before the same request again, after answer r (null:
// none came)
export function retryDelayMs(r) {
  if (r && (r.status === 429 || isOverloaded(r))) {
    return 1000 * Number(r.headers['retry-after'] ?? 1) * (0.5 + Math.random());
  }
  return 250 + Math.random() * 500;
}

// send() until definite(answer), counted on lane; the definite answer, or
// null after five minutes of answers that said nothing
export async function untilAnswered(lane, send, definite, { limitMs = 300000 } = {}) {
  const s = laneStats[lane];
  const end = Date.now() + limitMs;
  s.requests++;
  s.inflight++;
  try {
    for (;;) {
      let r = null;
      try { r = await send(); } catch { s.dropped++; }
      if (r && definite(r)) { s.answered++; return r; }
      if (isOverloaded(r)) s.overloaded++;
      else if (r?.status === 504) s.timeouts++;
      if (Date.now() > end) { s.unanswered++; return null; }
      s.retried++;
      await sleep(retryDelayMs(r));
    }
  } finally {
    s.inflight--;
  }
}
