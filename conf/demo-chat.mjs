// conf/demo-chat.mjs: the demo's conversations, for make run (conf/stack.sh
// runs it after the demo users exist).  Through the public API, as people
// would make them: Alice and Bob chat in a direct conversation (Bob's last
// message left unread for Alice, so her landing page and list show what
// waits), and Alice's group "Book club" with Bob and the demo admin, which
// the admin sees as an invitation until they answer.  A run that finds
// Alice already in a conversation adds nothing, so make run can run again
// on the same data.
//
//   node conf/demo-chat.mjs http://127.0.0.1:8080

const base = process.argv[2];
if (!base) {
  console.error('usage: node conf/demo-chat.mjs BASE_URL');
  process.exit(2);
}

// one API call; a 429 (the sign-in rate limit) or 503 overloaded is
// tried again after its Retry-After, as any client would
async function call(method, path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(base + path, { method, headers, body: body && JSON.stringify(body) });
    const json = await res.json().catch(() => ({}));
    if ((res.status === 429 || res.status === 503) && attempt < 10) {
      await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
      continue;
    }
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.error?.message ?? ''}`);
    return json;
  }
}

const signIn = (email, password) => call('POST', '/api/v1/auth/login', { email, password });

const alice = await signIn('alice@example.com', 'alice-demo-pass');
const { conversations } = await call('GET', '/api/v1/conversations', undefined, alice.token);
if (conversations.length) {
  console.log('demo-chat: Alice already has conversations, nothing added');
  process.exit(0);
}
const bob = await signIn('bob@example.com', 'bob-demo-pass');
const admin = await signIn('admin@example.com', 'admin-demo-pass');

// each message once, whatever happens to this run: a fixed client_msg_id
const say = (who, cid, n, text) => call('POST', `/api/v1/conversations/${cid}/messages`,
  { client_msg_id: `demo-${cid}-${n}`, text }, who.token);

const { conversation: direct } = await call('POST', '/api/v1/conversations',
  { type: 'direct', user_id: bob.user.id }, alice.token);
const chat = [
  [alice, 'Hi Bob! Have you finished the book you were reading?'],
  [bob, 'Almost, two chapters left. It got really good in the second half.'],
  [alice, 'No spoilers please, I just ordered it from the store.'],
  [bob, 'My lips are sealed. Tell me when you get to the lighthouse chapter.'],
];
for (const [i, [who, text]] of chat.entries()) await say(who, direct.id, i + 1, text);
// Alice has read all but Bob's last message
await call('POST', `/api/v1/conversations/${direct.id}/read`, { seq: chat.length - 1 }, alice.token);

const { conversation: club } = await call('POST', '/api/v1/conversations',
  { type: 'group', title: 'Book club', member_ids: [bob.user.id, admin.user.id] }, alice.token);
await say(alice, club.id, 1, 'Welcome to the book club! First pick: anything from the History shelf.');
await say(bob, club.id, 2, 'I vote for something with maps in it.');
await call('POST', `/api/v1/conversations/${club.id}/read`, { seq: 2 }, alice.token);

console.log(`demo-chat: Alice and Bob (conversation ${direct.id}), and the group "Book club" (${club.id})`);
