// GET /metrics: the Prometheus text format, served only to the configured
// addresses (nginx allow/deny: 127.0.0.1 in the test stack), counters that
// move with traffic and are shared by every nginx worker, and what Redis
// knows (streams, dead letters, live backend workers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { api, BASE, registerUser, waitFor } from './lib.mjs';
import { WsClient } from './ws.mjs';

function get(path, localAddress) {
  const url = new URL(path, BASE);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, localAddress, agent: false },
      (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
      });
    req.on('error', reject);
    req.end();
  });
}

// the value of one sample, e.g. value(text, 'chat_http_responses_total{status="200"}')
function value(text, sample) {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  assert.ok(line, `no sample ${sample} in\n${text}`);
  return Number(line.slice(sample.length + 1));
}

test('metrics are Prometheus text with HELP and TYPE for every family', async () => {
  const r = await get('/metrics', '127.0.0.1');
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  const families = r.body.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
  assert.ok(families.length >= 15, families.join(','));
  for (const line of r.body.split('\n').filter((l) => l && !l.startsWith('#'))) {
    assert.match(line, /^[a-z_]+(\{[a-z_]+="[^"]*"\})? \d+$/, line);
    const family = line.split(/[{ ]/)[0];
    assert.ok(families.includes(family), `${family} has no TYPE line`);
  }
  assert.equal(value(r.body, 'chat_redis_up'), 1);
  assert.equal(value(r.body, 'chat_postgres_up'), 1);
  assert.ok(value(r.body, 'chat_backend_workers') >= 1);
  assert.ok(value(r.body, 'chat_stream_length{stream="chat:cmd:chat:{0}"}') >= 0);
  // the lanes' admission: every lane's depth and the bound its pool published
  for (const lane of ['chat', 'read', 'auth', 'orders', 'admin']) {
    assert.ok(value(r.body, `chat_lane_depth{lane="${lane}"}`) >= 0, lane);
    assert.ok(value(r.body, `chat_lane_queue_limit{lane="${lane}"}`) > 0, lane);
  }
  assert.ok(value(r.body, 'chat_bus_overloaded_total') >= 0);
});

test('metric names follow the Prometheus conventions, and build_info names the version', async () => {
  const r = await get('/metrics', '127.0.0.1');
  const types = new Map(r.body.split('\n').filter((l) => l.startsWith('# TYPE '))
    .map((l) => l.split(' ').slice(2, 4)));
  for (const [name, type] of types) {
    assert.match(name, /^chat_[a-z_]+$/, name);
    // a counter is <family>_total; nothing else may take <family> (in
    // OpenMetrics the two would be one family of two types)
    if (type === 'counter') {
      assert.match(name, /_total$/, `counter ${name}`);
      assert.ok(!types.has(name.replace(/_total$/, '')), `${name} and ${name.replace(/_total$/, '')} collide`);
    } else {
      assert.doesNotMatch(name, /_total$/, `${type} ${name}`);
    }
  }
  const version = /CHAT_VERSION\s+"([^"]+)"/.exec(readFileSync('ngx_chat_module/chat_version.h', 'utf8'))[1];
  assert.equal(value(r.body, `chat_build_info{version="${version}"}`), 1);
});

test('only the configured addresses may scrape', async () => {
  const r = await get('/metrics', '127.0.0.2');
  assert.equal(r.status, 403);
});

test('counters follow the traffic, whichever nginx worker answers', async () => {
  const before = (await get('/metrics', '127.0.0.1')).body;
  const u = await registerUser('metrics');
  for (let i = 0; i < 5; i++) {
    assert.equal((await api('GET', '/api/v1/users/me', undefined, { token: u.token })).status, 200);
  }
  assert.equal((await api('GET', '/api/v1/users/me')).status, 401);
  const ws = await WsClient.connect({ token: u.token });
  ws.sendJson({ type: 'ping' });
  await ws.message((m) => m.type === 'pong', 'pong');

  // scrapes on fresh connections land on either worker: all see the same counters
  const during = (await get('/metrics', '127.0.0.1')).body;
  assert.ok(value(during, 'chat_http_responses_total{status="200"}')
    >= value(before, 'chat_http_responses_total{status="200"}') + 5);
  assert.ok(value(during, 'chat_http_responses_total{status="201"}')
    >= value(before, 'chat_http_responses_total{status="201"}') + 1);
  assert.ok(value(during, 'chat_http_responses_total{status="401"}')
    >= value(before, 'chat_http_responses_total{status="401"}') + 1);
  assert.ok(value(during, 'chat_bus_commands_total') >= value(before, 'chat_bus_commands_total') + 6);
  assert.ok(value(during, 'chat_bus_replies_total') >= value(before, 'chat_bus_replies_total') + 6);
  assert.ok(value(during, 'chat_ws_open_connections') >= 1);
  assert.ok(value(during, 'chat_ws_messages_received_total') >= value(before, 'chat_ws_messages_received_total') + 1);

  const open = value(during, 'chat_ws_open_connections');
  ws.close();
  await waitFor('the gauge to drop', async () =>
    value((await get('/metrics', '127.0.0.1')).body, 'chat_ws_open_connections') === open - 1);
});
