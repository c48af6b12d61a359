// The browser client as a package (web/package.json, web/chat-client.js,
// web/chat-client.d.ts): the manifest points at files that exist and
// carries the project's version and license; every method and event the
// declarations promise exists in the code; and a usage example
// type-checks against the declarations (tsc --strict, tsconfig.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..', '..');
const web = path.join(root, 'web');
const pkg = JSON.parse(readFileSync(path.join(web, 'package.json'), 'utf8'));
const dts = readFileSync(path.join(web, 'chat-client.d.ts'), 'utf8');
const js = readFileSync(path.join(web, 'chat-client.js'), 'utf8');

test('the manifest names files that exist, the version and the license', () => {
  const version = /CHAT_VERSION\s+"([^"]+)"/.exec(
    readFileSync(path.join(root, 'protocol', 'chat_version.h'), 'utf8'))[1];
  assert.equal(pkg.version, version);
  assert.equal(pkg.license, 'BSD-2-Clause');
  assert.equal(pkg.type, 'module');
  for (const f of [pkg.main, pkg.types, pkg.exports['.'].types, pkg.exports['.'].default, ...pkg.files]) {
    assert.ok(existsSync(path.join(web, f)), f);
  }
});

test('every declared method exists on ChatClient, every declared event is emitted', async () => {
  const { ChatClient, newId } = await import(path.join(web, 'chat-client.js'));
  const cls = /export class ChatClient[^{]*\{([\s\S]*?)\n\}/.exec(dts)[1];
  const methods = [...cls.matchAll(/^ {2}([a-zA-Z]+)(<[^>]*>)?\(/gm)].map((m) => m[1]);
  assert.ok(methods.length >= 12, methods.join(','));
  for (const m of methods) assert.equal(typeof ChatClient.prototype[m], 'function', m);
  assert.equal(typeof newId(), 'string');

  const events = /export interface ChatClientEvents \{([\s\S]*?)\n\}/.exec(dts)[1];
  const names = [...events.matchAll(/^ {2}([a-z_]+):/gm)].map((m) => m[1]);
  const emitted = new Set([...js.matchAll(/emit\('([a-z_]+)'/g)].map((m) => m[1]));
  assert.deepEqual([...names].sort(), [...emitted].sort());
});

test('a usage example type-checks against the declarations', () => {
  const tsc = path.join(here, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(tsc, ['-p', path.join(here, 'tsconfig.json')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
