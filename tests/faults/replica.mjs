// The PostgreSQL replica under the fault run (STACK_PG=replica; backend/
// engine/replica.c): a writer that reads its own writes all run long, the
// faults that kill the replica or stop its replay, and their books.
import { execFileSync } from 'node:child_process';
import { RUN_DIR, sleep } from '../integration/lib.mjs';
import { makeUsers } from '../integration/shop.mjs';
import { call, untilAnswered } from './client.mjs';
import { log, runTag } from './common.mjs';
import { rcmd } from './resp.mjs';

export const REPLICA = process.env.CHAT_PG_REPLICA_CONNINFO ?? '';
const ROOT = new URL('../..', import.meta.url).pathname;

const book = { writes: 0, unread: 0, replicaBefore: null };

// where the workers' reads went, summed (CHAT_REPLICA_KEY)
async function routed() {
  const flat = await rcmd('HGETALL', 'chat:replica');
  const out = { replica: 0, lagging: 0, behind: 0, down: 0 };
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = Number(flat[i + 1]);
  return out;
}

function replicaSql(query) {
  return execFileSync('psql', [REPLICA, '-XtAq', '-v', 'ON_ERROR_STOP=1', '-c', query]).toString().trim();
}

// a user of its own, in a conversation of its own (not the devices', so
// the chat books do not count its messages), sends over HTTP and reads
// history at once, every ~150 ms: an acknowledged message missing from
// the next read is a broken read-your-writes
export async function ownWrites(running) {
  book.replicaBefore = await routed();
  const [a, b] = await makeUsers(`chaos-ryw-${runTag}-`, 2);
  const c = await call('POST', '/api/v1/conversations',
    { body: { type: 'group', title: 'own writes', member_ids: [b.id] }, token: a.token });
  if (c.status !== 201) throw new Error(`own writes: conversation: ${c.status} ${c.text}`);
  const cid = c.json.conversation.id;
  const path = `/api/v1/conversations/${cid}/messages`;
  for (let i = 0; running(); i++) {
    const cmid = `ryw-${runTag}-${i}`;
    const s = await untilAnswered('chat', () => call('POST', path,
      { body: { client_msg_id: cmid, text: cmid }, token: a.token }), (r) => r.status === 201 || r.status === 200);
    if (!s) continue;
    book.writes++;
    const seq = s.json.message.seq;
    const h = await untilAnswered('read', () => call('GET', `${path}?after_seq=${seq - 1}&limit=5`, { token: a.token }),
      (r) => r.status === 200);
    if (h && !h.json.messages.some((m) => m.seq === seq)) {
      book.unread++;
      if (book.unread <= 5) log(`own write ${cid}/${seq} not in the writer's next read`);
    }
    await sleep(100 + Math.random() * 100);
  }
}

function pgCtl(data, ...args) {
  const bin = execFileSync('sh', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1']).toString().trim();
  const asPg = process.getuid() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  const cmd = [...asPg, `${bin}/pg_ctl`, '-D', data, ...args];
  execFileSync(cmd[0], cmd.slice(1), { stdio: 'ignore' });
}

export const replicaFaults = {
  // the replica dies (immediate stop: a crash) and stays dead for the
  // settle: reads go to the primary; then it is started again
  async replica() {
    pgCtl(`${RUN_DIR}/pg-replica/data`, '-m', 'immediate', 'stop');
    return {
      what: 'stopped the postgres replica (immediate); reads go to the primary',
      after() {
        execFileSync(`${ROOT}/conf/stack.sh`, ['start'], { stdio: 'ignore' });
        log('started the postgres replica again');
      },
    };
  },
  // the replica receives but replays nothing for the settle: it falls
  // behind; writers must still read their writes
  async 'replica-lag'() {
    replicaSql('SELECT pg_wal_replay_pause()');
    return {
      what: 'paused the replica\'s replay (it falls behind)',
      after() { replicaSql('SELECT pg_wal_replay_resume()'); },
    };
  },
};

// the books: no own write unread; and the replica served reads at all
// (else the run proved nothing about it)
export async function replicaBooks() {
  const now = await routed();
  const before = book.replicaBefore ?? { replica: 0, lagging: 0, behind: 0, down: 0 };
  log(`replica: ${book.writes} own writes read back; reads routed since the start: ` +
      `replica ${now.replica - before.replica}, lagging ${now.lagging - before.lagging}, ` +
      `behind ${now.behind - before.behind}, down ${now.down - before.down}`);
  return {
    own_writes_unread: book.unread,
    replica_never_read: now.replica > before.replica ? 0 : 1,
  };
}
