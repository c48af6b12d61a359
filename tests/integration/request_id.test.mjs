// One request followed from the edge's access log to the worker's log: the
// edge sends nginx's $request_id with the command (the envelope's rid) and
// the worker prints it as rid=<id> in every line it logs for the command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logTail, registerUser, waitFor } from './lib.mjs';

test('a sign-up names the same request id in the access log and the backend log', async () => {
  const backend = logTail('backend/backend.log');
  const access = logTail('nginx/access.log');
  const user = await registerUser('rid');

  // the worker logs "registered user <id> (<email>)" while it runs the command
  const line = await waitFor('the backend logged the sign-up',
    () => backend.read().split('\n').find((l) => l.includes(`(${user.email})`)));
  const rid = /\brid=([0-9a-f]{32}):/.exec(line)?.[1];
  assert.ok(rid, `the backend's line names a request id: ${line}`);

  // the access log line of the POST that answered 201 carries the same id
  await waitFor('the access log names the same request id', () => access.read().split('\n')
    .some((l) => l.includes('POST /api/v1/auth/register') && l.includes('" 201 ') && l.endsWith(`rid=${rid}`)));
});
