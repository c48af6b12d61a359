// A page's use of the client, type-checked (tsc --strict) against
// web/chat-client.d.ts: if the declarations drift from what the README
// shows, this stops compiling.
import { ChatClient, newId, type Ack, type Message } from '../../web/chat-client.js';

declare function show(m: Message): void;

const client = new ChatClient({
  token: () => 'token-from-storage',
  refreshToken: async () => {
    const r = await fetch('/api/v1/auth/refresh', { method: 'POST' });
    return r.ok ? ((await r.json()) as { token: string }).token : null;
  },
  cursors: { '12': 40 },
  heartbeatMs: 10000,
});

client.addEventListener('message', (e) => show(e.detail));
client.addEventListener('message_update', (e) => show(e.detail));
client.addEventListener('state', (e) => {
  const s: 'connecting' | 'ws' | 'polling' | 'offline' = e.detail.state;
  void s;
});
client.addEventListener('closed', (e) => {
  if (e.detail.code === 1008) console.log('signed out or expired:', e.detail.reason);
});
client.addEventListener('error', (e) => {
  if (e.detail.status === 401) console.log('sign in again');
});
client.start();

async function talk(): Promise<void> {
  const ack: Ack = await client.send(12, 'hello', newId());
  client.read(12, ack.seq);
  const page = await client.history(12, { before_seq: ack.seq, limit: 50 });
  const first: Message | undefined = page.messages[0];
  if (first) await client.edit(12, first.seq, 'edited');
  const typed: boolean = client.typing(12);
  void typed;
  client.stop();
}
void talk;
