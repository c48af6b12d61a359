// Reads on a streaming replica (STACK_PG=replica, backend/engine/replica.c):
// history goes to the replica; a writer always reads its own write, even
// while the replica replays nothing; a paused or dead replica sends reads
// back to the primary, and they return once it is back.  Without a replica
// in the stack the file checks that every read stays on the primary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { api, redis, sleep, waitFor, RUN_DIR } from './lib.mjs';
import { makeUsers } from './shop.mjs';

const REPLICA = process.env.CHAT_PG_REPLICA_CONNINFO ?? '';
const ROOT = new URL('../..', import.meta.url).pathname;

// psql on the replica itself
function replicaSql(query) {
  return execFileSync('psql', [REPLICA, '-XtAq', '-v', 'ON_ERROR_STOP=1', '-c', query]).toString().trim();
}

// where the workers' reads went, summed (CHAT_REPLICA_KEY)
async function routed() {
  const flat = (await redis('HGETALL', 'chat:replica')).split('\n').filter(Boolean);
  const out = { replica: 0, lagging: 0, behind: 0, down: 0 };
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = Number(flat[i + 1]);
  return out;
}

let n = 0;
const tag = () => `r${process.pid}-${Date.now()}-${n++}`;

async function pair() {
  const [a, b] = await makeUsers(`replica-${tag()}-`, 2);
  const r = await api('POST', '/api/v1/conversations', { type: 'group', title: 'replica', member_ids: [b.id] },
    { token: a.token });
  assert.equal(r.status, 201, r.text);
  return { a, b, cid: r.json.conversation.id };
}

async function sendAndRead(who, cid) {
  const text = `own write ${tag()}`;
  const s = await api('POST', `/api/v1/conversations/${cid}/messages`, { client_msg_id: tag(), text },
    { token: who.token });
  assert.equal(s.status, 201, s.text);
  const h = await api('GET', `/api/v1/conversations/${cid}/messages`, undefined, { token: who.token });
  assert.equal(h.status, 200, h.text);
  assert.ok(h.json.messages.some((m) => m.seq === s.json.message.seq && m.text === text),
    `the writer's history lacks its own message ${s.json.message.seq}`);
  return s.json.message;
}

test('without a replica every read stays on the primary', { skip: REPLICA !== '' }, async () => {
  const { a, cid } = await pair();
  for (let i = 0; i < 5; i++) await sendAndRead(a, cid);
  await sleep(1500);   // a heartbeat: the counts are published with it
  assert.deepEqual(await routed(), { replica: 0, lagging: 0, behind: 0, down: 0 });
});

test('history reads go to the replica, and a writer sees its own writes', { skip: REPLICA === '' }, async () => {
  const { a, b, cid } = await pair();
  const before = await routed();
  for (let i = 0; i < 10; i++) await sendAndRead(a, cid);
  // the other member's reads see them too once replayed
  await waitFor('b reads a\'s messages', async () => {
    const h = await api('GET', `/api/v1/conversations/${cid}/messages`, undefined, { token: b.token });
    return h.status === 200 && h.json.messages.length >= 10;
  });
  await waitFor('replica reads counted', async () => (await routed()).replica > before.replica,
    { timeout: 30000, every: 300 });
});

test('a replica that replays nothing: the writer still reads its writes, reads leave the replica',
  { skip: REPLICA === '' }, async () => {
    const { a, cid } = await pair();
    const before = await routed();
    replicaSql('SELECT pg_wal_replay_pause()');
    try {
      // each read either waited for the replica (it cannot) or read the
      // primary: never without its own message
      for (let i = 0; i < 8; i++) await sendAndRead(a, cid);
      await sleep(1500);   // past the lag bound: every read avoids it
      for (let i = 0; i < 3; i++) await sendAndRead(a, cid);
      await waitFor('reads counted as behind or lagging', async () => {
        const now = await routed();
        return now.behind + now.lagging > before.behind + before.lagging;
      }, { timeout: 30000, every: 300 });
    } finally {
      replicaSql('SELECT pg_wal_replay_resume()');
    }
    // and they come back to the replica
    const resumed = (await routed()).replica;
    await waitFor('reads back on the replica', async () => {
      await sendAndRead(a, cid);
      return (await routed()).replica > resumed;
    }, { timeout: 60000, every: 500 });
  });

test('a dead replica: reads go to the primary, nothing fails, and they return when it is back',
  { skip: REPLICA === '' }, async () => {
    const { a, cid } = await pair();
    const data = `${RUN_DIR}/pg-replica/data`;
    const bin = execFileSync('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1']).toString().trim();
    const asPg = process.getuid() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
    const stop = [...asPg, `${bin}/pg_ctl`, '-D', data, '-m', 'immediate', 'stop'];
    const before = await routed();
    execFileSync(stop[0], stop.slice(1), { stdio: 'ignore' });
    try {
      for (let i = 0; i < 8; i++) await sendAndRead(a, cid);
      await waitFor('reads counted as down', async () => (await routed()).down > before.down,
        { timeout: 30000, every: 300 });
    } finally {
      execFileSync(`${ROOT}/conf/stack.sh`, ['start'], { stdio: 'ignore' });
    }
    const back = (await routed()).replica;
    await waitFor('reads back on the replica', async () => {
      await sendAndRead(a, cid);
      return (await routed()).replica > back;
    }, { timeout: 60000, every: 500 });
  });
