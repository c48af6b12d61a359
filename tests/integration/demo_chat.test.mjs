// make run's demo conversations (conf/demo-chat.mjs) on the test stack:
// the demo users made as conf/stack.sh makes them (user-add, the password
// on stdin); the script makes Alice and Bob's chat (Bob's last message
// unread for Alice) and the group "Book club" (an invitation for the
// admin) through the API; run again, it adds nothing.  On a test stack
// where an earlier run already made them, only the second part is checked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BASE, PG, api, signIn } from './lib.mjs';

const DEMO = [
  ['admin@example.com', 'Demo Admin', 'admin-demo-pass', ['--admin']],
  ['alice@example.com', 'Alice', 'alice-demo-pass', []],
  ['bob@example.com', 'Bob', 'bob-demo-pass', []],
];

const demoChat = () => spawnSync('node', ['conf/demo-chat.mjs', BASE], { encoding: 'utf8', timeout: 60000 });
const conversationsOf = async (who) => (await api('GET', '/api/v1/conversations', undefined, { token: who.token })).json.conversations;

test('make run demo conversations: made through the API once, a re-run adds nothing', async () => {
  for (const [email, name, password, flags] of DEMO) {
    // an earlier run on this stack may have made them: then the login below says so
    spawnSync('backend/chat-backend', ['--pg', PG, 'user-add', '--email', email, '--name', name, ...flags],
      { input: `${password}\n`, encoding: 'utf8' });
  }
  const [admin, alice, bob] = await Promise.all(DEMO.map(([email, , password]) => signIn(email, password)));

  const fresh = (await conversationsOf(alice)).length === 0;
  let out = demoChat();
  assert.equal(out.status, 0, out.stderr);
  if (fresh) {
    assert.match(out.stdout, /Alice and Bob .* "Book club"/);
    const mine = await conversationsOf(alice);
    const direct = mine.find((c) => c.type === 'direct');
    const club = mine.find((c) => c.title === 'Book club');
    assert.equal(mine.length, 2);
    assert.equal(direct.last_seq, 4);
    assert.equal(direct.unread, 1, 'Bob\'s last message waits for Alice');
    assert.equal(direct.last_message.sender_id, bob.user.id);
    assert.equal(club.last_seq, 2);
    assert.equal(club.unread, 0);
    const theirs = await conversationsOf(admin);
    assert.equal(theirs.find((c) => c.id === club.id)?.status, 'request', 'the admin is invited, not added');
    assert.equal((await conversationsOf(bob)).length, 2);
  }

  const before = await conversationsOf(alice);
  out = demoChat();
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /nothing added/);
  const after = await conversationsOf(alice);
  assert.deepEqual(after.map((c) => [c.id, c.last_seq]), before.map((c) => [c.id, c.last_seq]));
});
