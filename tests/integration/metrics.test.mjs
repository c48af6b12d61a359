// GET /metrics (this edge) and /metrics/cluster (what every edge would say
// the same): the Prometheus text format, served only to the configured
// addresses (nginx allow/deny: 127.0.0.1 in the test stack), counters that
// move with traffic and are shared by every nginx worker, per-op latency
// histograms, and what Redis knows (streams, dead letters, live backend
// workers and their own figures).  promtool checks both when it can be had
// (conf/promtool.sh takes it out of Debian's prometheus package).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
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

// every sample line: a name, labels, a number (histograms' sums have decimals)
const SAMPLE = /^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \d+(\.\d+)?$/;

function checkFormat(body) {
  const families = body.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
  const types = new Map(body.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ').slice(2, 4)));
  for (const line of body.split('\n').filter((l) => l && !l.startsWith('#'))) {
    assert.match(line, SAMPLE, line);
    let family = line.split(/[{ ]/)[0];
    if (!families.includes(family)) family = family.replace(/_(bucket|sum|count)$/, '');
    assert.ok(families.includes(family), `${family} has no TYPE line`);
    if (family !== line.split(/[{ ]/)[0]) assert.equal(types.get(family), 'histogram', line);
  }
  return families;
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
  const families = checkFormat(r.body);
  assert.ok(families.length >= 15, families.join(','));
  assert.equal(value(r.body, 'chat_redis_up'), 1);
  // this edge's figures only: the cluster's are on /metrics/cluster
  assert.ok(!families.includes('chat_stream_length'), 'stream figures on the per-edge endpoint');
  assert.ok(!families.includes('chat_backend_workers'), 'worker figures on the per-edge endpoint');
  // the lanes' admission: every lane's depth and the bound its pool published
  for (const lane of ['chat', 'read', 'auth', 'orders', 'admin']) {
    assert.ok(value(r.body, `chat_lane_depth{lane="${lane}"}`) >= 0, lane);
    assert.ok(value(r.body, `chat_lane_queue_limit{lane="${lane}"}`) > 0, lane);
  }
  assert.ok(value(r.body, 'chat_bus_overloaded_total') >= 0);
});

test('metric names follow the Prometheus conventions, and build_info names the version', async () => {
  const r = await get('/metrics', '127.0.0.1');
  const cluster = await get('/metrics/cluster', '127.0.0.1');
  const types = new Map((r.body + cluster.body).split('\n').filter((l) => l.startsWith('# TYPE '))
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
    // a histogram's unit is in its name
    if (type === 'histogram') assert.match(name, /_seconds$/, `histogram ${name}`);
  }
  const version = /CHAT_VERSION\s+"([^"]+)"/.exec(readFileSync('protocol/chat_version.h', 'utf8'))[1];
  assert.equal(value(r.body, `chat_build_info{version="${version}"}`), 1);
});

test('the cluster endpoint: streams, dead letters, the backend workers and their own figures', async () => {
  // a message, so the chat lane's workers have committed something
  const [a, b] = [await registerUser('mc-a'), await registerUser('mc-b')];
  const conv = await api('POST', '/api/v1/conversations', { type: 'direct', user_id: b.user.id }, { token: a.token });
  assert.ok([200, 201].includes(conv.status), conv.text);
  const sent = await api('POST', `/api/v1/conversations/${conv.json.conversation.id}/messages`,
    { client_msg_id: `mc-${Date.now()}`, text: 'hello' }, { token: a.token });
  assert.equal(sent.status, 201, sent.text);

  // the workers publish their figures with their heartbeat (every second)
  const body = await waitFor('the chat workers\' figures', async () => {
    const r = await get('/metrics/cluster', '127.0.0.1');
    assert.equal(r.status, 200);
    const committed = r.body.split('\n').filter((l) => l.startsWith('chat_backend_batch_commands_total{lane="chat",'))
      .reduce((n, l) => n + Number(l.split(' ')[1]), 0);
    return committed >= 1 && r.body;
  });
  checkFormat(body);
  assert.equal(value(body, 'chat_cluster_redis_up'), 1);
  assert.equal(value(body, 'chat_postgres_up'), 1);
  assert.ok(value(body, 'chat_backend_workers') >= 1);
  assert.ok(value(body, 'chat_stream_length{stream="chat:cmd:chat:{0}"}') >= 0);
  assert.ok(value(body, 'chat_dead_letters_total') >= 0);
  // one series per worker, labelled with its lane: every lane has some
  for (const lane of ['chat', 'read', 'auth', 'orders', 'admin']) {
    assert.ok(new RegExp(`^chat_backend_commands_total\\{lane="${lane}",worker="[^"]+"\\} \\d+$`, 'm').test(body), lane);
  }
  // a histogram's buckets are cumulative and end at its count
  const worker = /^chat_backend_commit_duration_seconds_count\{(lane="chat",worker="[^"]+")\} [1-9]/m.exec(body)?.[1];
  assert.ok(worker, 'a chat worker with a committed batch');
  const buckets = body.split('\n').filter((l) => l.startsWith(`chat_backend_commit_duration_seconds_bucket{${worker},`))
    .map((l) => Number(l.split(' ')[1]));
  assert.equal(buckets.length, 14);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1]);
  assert.equal(buckets.at(-1), value(body, `chat_backend_commit_duration_seconds_count{${worker}}`));
});

test('every op answered at this edge has a latency histogram with its lane', async () => {
  const u = await registerUser('mh');
  assert.equal((await api('GET', '/api/v1/users/me', undefined, { token: u.token })).status, 200);
  const r = await get('/metrics', '127.0.0.1');
  for (const [lane, op] of [['auth', 'auth.register'], ['read', 'user.me']]) {
    const labels = `lane="${lane}",op="${op}"`;
    const count = value(r.body, `chat_command_duration_seconds_count{${labels}}`);
    assert.ok(count >= 1, op);
    assert.equal(value(r.body, `chat_command_duration_seconds_bucket{${labels},le="+Inf"}`), count);
    assert.ok(value(r.body, `chat_command_duration_seconds_bucket{${labels},le="10.000"}`) <= count);
    assert.ok(Number(r.body.split('\n').find((l) => l.startsWith(`chat_command_duration_seconds_sum{${labels}} `))
      .split(' ')[1]) >= 0);
  }
});

test('promtool accepts both endpoints, when it can be had', async (t) => {
  const tool = spawnSync('conf/promtool.sh', [], { encoding: 'utf8' });
  if (tool.status !== 0) {
    t.skip(`no promtool: ${tool.stderr.trim()} (the naming-rules test stands in)`);
    return;
  }
  for (const path of ['/metrics', '/metrics/cluster']) {
    const r = await get(path, '127.0.0.1');
    const out = spawnSync(tool.stdout.trim(), ['check', 'metrics'], { input: r.body, encoding: 'utf8' });
    assert.equal(out.status, 0, `${path}: ${out.stdout}${out.stderr}`);
  }
});

test('only the configured addresses may scrape', async () => {
  assert.equal((await get('/metrics', '127.0.0.2')).status, 403);
  assert.equal((await get('/metrics/cluster', '127.0.0.2')).status, 403);
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
