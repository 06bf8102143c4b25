// The package's Durable Object class, TabbitBroker ('tabbit/durable-object': pkg/durable-object.js
// as scripts/build-pkg ships it from js/durable-object.js), in the real workerd runtime (npm
// package `workerd`), objects on local disk (do-config.mjs), called over Workers RPC from the
// worker tests/runtimes/workerd/do-class-worker.js. Each case runs on both kinds of object:
// SQLite-backed and key-value only.
//
// - alarms: messages with a TTL (per message, and a queue's x-message-ttl) and a dead-letter
//   exchange are published, workerd is killed with SIGKILL before they expire and restarted,
//   and no request reaches the object: its alarm wakes it, and the dead-lettering is done by
//   then (the worker's subclass logs its queues after each alarm; nothing else logs that line);
//   the dead-lettered messages are then in the DLQ once each, with x-death reason 'expired';
// - publishes through the stub stream in while workerd is killed with SIGKILL; after the restart
//   every confirmed one is in the queue exactly once;
// - get / ack / nack by handle: an acked message does not come back, a held or nacked one comes
//   back redelivered after SIGKILL, a handle acked twice or from before the restart is refused;
//   fetch() answers 404;
// - the worker of docs/edge-cloudflare.md's "The TabbitBroker class", as printed;
// - the package exports 'tabbit/durable-object' with its types, and `npm pack` ships them;
// - Connection.nextWakeup(), which the class sets its alarm from, in Node: the earliest deadline.
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PKG, ROOT, assertExported, needBin, needPackage, removeDir, tempDir } from '../runtimes/helpers.mjs';
import { needAdapterBuild, writeDurableObjectConfig } from '../runtimes/workerd/do-config.mjs';
import { serveWorkerd } from '../runtimes/workerd/serve.mjs';

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const WORKER = join(ROOT, 'tests/runtimes/workerd/do-class-worker.js');
const KINDS = ['sql', 'kv'];

async function needClassBuild() {
  await needAdapterBuild();
  const built = await stat(join(PKG, 'durable-object.js')).catch(() => null);
  const source = await stat(join(ROOT, 'js/durable-object.js'));
  if (!built) throw new Error('pkg/durable-object.js is missing: build the package with scripts/build-pkg');
  if (built.mtimeMs < source.mtimeMs) throw new Error('pkg/durable-object.js is older than js/durable-object.js: rebuild the package with scripts/build-pkg');
}

async function setup(t) {
  await needPackage();
  await needClassBuild();
  const workerd = await needBin('workerd');
  const dir = await tempDir('tabbit-do-class-');
  t.after(() => removeDir(dir));
  const disk = join(dir, 'disk');
  await mkdir(disk);
  return { workerd, dir, disk };
}

/** workerd serving `worker` with class Broker (SQLite-backed or not) on `disk`. */
function serve(t, { workerd, dir, disk }, kind, worker = WORKER) {
  const classes = [{ className: 'Broker', binding: 'BROKER', sql: kind === 'sql' }];
  return serveWorkerd(t, workerd, dir, (file, address) => writeDurableObjectConfig(file, { disk, address, worker, classes }), { timeoutMs: 170_000 });
}

async function kill9(proc) {
  try {
    process.kill(-proc.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await proc.exited;
}

/** `method(...args)` on object `object`'s stub, through the worker; rejects with the error it answers. */
async function rpc(url, object, method, ...args) {
  const r = await fetch(`${url}/${object}/${method}`, { method: 'POST', body: JSON.stringify(args), signal: AbortSignal.timeout(60_000) });
  const out = JSON.parse(await r.text());
  if (r.status !== 200) throw Object.assign(new Error(out.error), { status: r.status });
  return out;
}

for (const kind of KINDS) {
  test(`TabbitBroker (${kind}): after SIGKILL, the object's alarm dead-letters expired messages with no request to it`, { timeout: 180_000 }, async (t) => {
    const env = await setup(t);
    let { url, proc } = await serve(t, env, kind);
    const TTL = 5_000;
    const dlx = { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': 'dlq' };
    await rpc(url, 'ttl', 'assertQueue', 'dlq', { durable: true });
    await rpc(url, 'ttl', 'assertQueue', 'work', { durable: true, arguments: dlx });
    await rpc(url, 'ttl', 'assertQueue', 'timed', { durable: true, arguments: { ...dlx, 'x-message-ttl': TTL } });
    const publishedAt = Date.now();
    assert.equal(await rpc(url, 'ttl', 'sendToQueue', 'work', 'per-message', { persistent: true, expiration: String(TTL) }), true);
    assert.equal(await rpc(url, 'ttl', 'sendToQueue', 'timed', 'per-queue', { persistent: true }), true);
    assert.equal(await rpc(url, 'ttl', 'sendToQueue', 'work', 'no-ttl', { persistent: true }), true);
    await kill9(proc);
    assert.ok(Date.now() - publishedAt < TTL, 'workerd was killed before the messages expired (a slow machine: raise TTL)');
    assert.doesNotMatch(proc.output(), /tabbit-test alarm/, 'no alarm ran before the kill');

    // Restarted: the object is not in memory, and nothing calls it (the start-up probe gets the
    // worker's 404). Only its alarm can wake it.
    ({ url, proc } = await serve(t, env, kind));
    const reports = () => [...proc.output().matchAll(/tabbit-test alarm (\{.*\})/g)].map((m) => JSON.parse(m[1]));
    const deadline = Date.now() + 60_000;
    while (!reports().length && Date.now() < deadline) await sleep(200);
    const first = reports()[0];
    assert.ok(first, `no alarm ran within 60 s of the restart:\n${proc.output().slice(-3000)}`);
    t.diagnostic(`${kind}: the first alarm after the restart: ${JSON.stringify(first)}`);
    assert.ok(first.at >= publishedAt + TTL, 'the alarm ran once the TTL was over');
    assert.ok(first.queues.dlq.ready >= 1, 'the alarm dead-lettered what had expired');
    assert.equal(first.queues.work.ready, 1, 'the message without a TTL stays');

    // Now the first request: the DLQ holds each once (the second may have expired a moment
    // after the alarm, on the broker's own timer), dead-lettered as expired.
    const dlqReady = async () => (await rpc(url, 'ttl', 'stats')).queues.find((q) => q.name === 'dlq').ready;
    for (const until = Date.now() + 30_000; (await dlqReady()) < 2 && Date.now() < until; ) await sleep(100);
    const got = [await rpc(url, 'ttl', 'get', 'dlq', { noAck: true }), await rpc(url, 'ttl', 'get', 'dlq', { noAck: true })];
    assert.deepEqual(got.map((m) => m.text).sort(), ['per-message', 'per-queue']);
    for (const m of got) {
      const death = m.properties.headers['x-death'][0];
      assert.equal(death.reason, 'expired');
      assert.equal(death.queue, m.text === 'per-message' ? 'work' : 'timed');
    }
    assert.equal(await rpc(url, 'ttl', 'get', 'dlq', { noAck: true }), null);
    assert.equal((await rpc(url, 'ttl', 'get', 'work', { noAck: true })).text, 'no-ttl');
    await proc.kill();
    assert.doesNotMatch(proc.output(), /uncaught/i);
  });

  test(`TabbitBroker (${kind}): publishes confirmed through the stub survive SIGKILL mid-stream, each exactly once`, { timeout: 180_000 }, async (t) => {
    const env = await setup(t);
    let { url, proc } = await serve(t, env, kind);
    await rpc(url, 'stream', 'assertQueue', 'orders', { durable: true });
    const sent = new Set();
    const confirmed = [];
    let next = 0;
    let killed = false;
    let failure = null;
    let cut = 0;
    // Four clients, each with 5 publishes (one RPC call each) in flight at a time.
    const client = async () => {
      while (!killed) {
        const bodies = Array.from({ length: 5 }, () => `m${next++}`);
        await Promise.all(
          bodies.map(async (b) => {
            sent.add(b);
            try {
              assert.equal(await rpc(url, 'stream', 'sendToQueue', 'orders', b, { persistent: true }), true);
              confirmed.push(b);
            } catch (e) {
              if (killed) cut += 1;
              else failure ??= e;
            }
          }),
        );
        if (failure) return;
      }
    };
    const clients = Array.from({ length: 4 }, client);
    while (confirmed.length < 300 && !failure) await sleep(5);
    if (failure) throw failure;
    killed = true;
    await kill9(proc);
    await Promise.all(clients);
    const confirmedAtKill = confirmed.length;

    ({ url, proc } = await serve(t, env, kind));
    const counts = new Map();
    for (;;) {
      const m = await rpc(url, 'stream', 'get', 'orders', { noAck: true });
      if (!m) break;
      counts.set(m.text, (counts.get(m.text) ?? 0) + 1);
    }
    assert.deepEqual([...counts].filter(([, n]) => n > 1), [], 'no message is there twice');
    assert.deepEqual(confirmed.filter((b) => !counts.has(b)), [], 'every confirmed message is there');
    assert.deepEqual([...counts.keys()].filter((b) => !sent.has(b)), [], 'nothing never sent');
    t.diagnostic(`${kind}: ${confirmedAtKill} confirmed before SIGKILL, ${cut} calls cut by it, ${counts.size} in the queue after the restart`);
    await proc.kill();
  });

  test(`TabbitBroker (${kind}): get, ack and nack by handle across SIGKILL; fetch() is a 404`, { timeout: 120_000 }, async (t) => {
    const env = await setup(t);
    let { url, proc } = await serve(t, env, kind);
    await rpc(url, 'acks', 'assertQueue', 'jobs', { durable: true });
    await rpc(url, 'acks', 'assertExchange', 'jobs-x', 'direct', { durable: true });
    await rpc(url, 'acks', 'bindQueue', 'jobs', 'jobs-x', 'job');
    for (const b of ['j0', 'j1', 'j2', 'j3']) assert.equal(await rpc(url, 'acks', 'publish', 'jobs-x', 'job', b, { persistent: true }), true);
    await assert.rejects(rpc(url, 'acks', 'publish', 'no-such-x', 'job', 'lost', { persistent: true }), /no exchange 'no-such-x'/);
    await assert.rejects(rpc(url, 'acks', 'get', 'no-such-queue'), /no queue 'no-such-queue'/);
    await assert.rejects(rpc(url, 'acks', 'sendToQueue', 'jobs', 42), /the body must be a string, an ArrayBuffer or a Uint8Array/);

    const held = await rpc(url, 'acks', 'get', 'jobs');
    assert.equal(held.text, 'j0');
    assert.equal(typeof held.handle, 'string');
    assert.equal(held.fields.redelivered, false);
    const acked = await rpc(url, 'acks', 'get', 'jobs');
    assert.equal(acked.text, 'j1');
    assert.equal(await rpc(url, 'acks', 'ack', acked.handle), true);
    await assert.rejects(rpc(url, 'acks', 'ack', acked.handle), /no delivery with handle .* acked or nacked already, or the object restarted/);
    const nacked = await rpc(url, 'acks', 'get', 'jobs');
    assert.equal(nacked.text, 'j2');
    assert.equal(await rpc(url, 'acks', 'nack', nacked.handle, { requeue: true }), true);
    // A failed get (missing queue, above) did not drop the held delivery: j0 is still held.
    const stats = await rpc(url, 'acks', 'stats');
    assert.deepEqual(
      stats.queues.filter((q) => q.name === 'jobs').map((q) => [q.ready, q.unacked]),
      [[2, 1]],
    );
    assert.deepEqual(await rpc(url, 'acks', 'fetchStatus'), {
      status: 404,
      body: { error: 'TabbitBroker has no HTTP API: call its methods on the stub (await stub.publish(...), stub.get(...)) from your worker' },
    });
    await kill9(proc);

    ({ url, proc } = await serve(t, env, kind));
    await assert.rejects(rpc(url, 'acks', 'ack', held.handle), /no delivery with handle/);
    const after = [];
    for (let m; (m = await rpc(url, 'acks', 'get', 'jobs', { noAck: true })); ) after.push([m.text, m.fields.redelivered]);
    assert.deepEqual(after.sort(), [
      ['j0', true],
      ['j2', true],
      ['j3', false],
    ]);
    await proc.kill();
  });
}

test("TabbitBroker: docs/edge-cloudflare.md's worker for the class, as printed, across SIGKILL", { timeout: 120_000 }, async (t) => {
  const env = await setup(t);
  const doc = await readFile(join(ROOT, 'docs/edge-cloudflare.md'), 'utf8');
  const code = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((c) => c.includes("from 'tabbit/durable-object'") && c.includes('export default'));
  assert.ok(code, "the doc has a js block with a worker (export default) that imports from 'tabbit/durable-object'");
  // The doc's subclass too (class Broker extends TabbitBroker), bound as SUB; the test reaches it
  // through a fetch handler of its own, in front of the doc's (POST /sub/publishMany, /sub/stats).
  const subclass = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((c) => c.includes('extends TabbitBroker'));
  assert.ok(subclass, 'the doc has a js block with a subclass of TabbitBroker');
  const imports = { 'tabbit/durable-object': './pkg/durable-object.js' };
  const worker = join(env.dir, 'doc-class-worker.js');
  const front = `
import { TabbitBroker } from 'tabbit/durable-object';
${subclass}
const testFront = {
  async fetch(request, env) {
    const [, sub, method] = new URL(request.url).pathname.split('/');
    if (sub !== 'sub') return docWorker.fetch(request, env);
    const stub = env.SUB.get(env.SUB.idFromName('sub'));
    return Response.json(await stub[method](...(await request.json())));
  },
};
export default testFront;
`;
  const doc_ = code.replace('export default {', 'const docWorker = {');
  assert.notEqual(doc_, code, "the doc's worker is `export default { ... }`");
  await writeFile(worker, (doc_ + front).replace(/from '(tabbit[^']*)'/g, (all, name) => `from '${imports[name] ?? name}'`));
  // The doc's wrangler config binds the class TabbitBroker as BROKER, SQLite-backed.
  const classes = [
    { className: 'TabbitBroker', binding: 'BROKER', sql: true },
    { className: 'Broker', binding: 'SUB', sql: true },
  ];
  const start = () => serveWorkerd(t, env.workerd, env.dir, (file, address) => writeDurableObjectConfig(file, { disk: env.disk, address, worker, classes }));
  const request = async (url, method, path, body) => {
    const r = await fetch(url + path, { method, body, signal: AbortSignal.timeout(30_000) });
    return { status: r.status, text: await r.text() };
  };
  let { url, proc } = await start();
  assert.deepEqual(await request(url, 'POST', '/orders', 'first'), { status: 202, text: 'stored\n' });
  assert.deepEqual(await request(url, 'POST', '/orders', 'second'), { status: 202, text: 'stored\n' });
  await kill9(proc);
  ({ url, proc } = await start());
  const first = await request(url, 'POST', '/orders/next');
  assert.equal(first.status, 200);
  const m = JSON.parse(first.text);
  assert.equal(m.body, 'first');
  assert.deepEqual(await request(url, 'POST', `/orders/ack/${m.handle}`), { status: 200, text: 'acked\n' });
  assert.equal(JSON.parse((await request(url, 'POST', '/orders/next')).text).body, 'second');
  assert.equal((await request(url, 'POST', '/orders/next')).status, 204, 'first was acked; second is held unacked');
  assert.equal((await request(url, 'POST', `/orders/ack/${m.handle}`)).status, 409, 'a handle acked already');
  assert.equal((await request(url, 'GET', '/stats')).status, 200);
  const sub = async (method, ...args) => JSON.parse((await request(url, 'POST', `/sub/${method}`, JSON.stringify(args))).text);
  await sub('assertQueue', 'many', { durable: true });
  assert.equal(await sub('publishMany', 'many', ['a', 'b', 'c']), 3);
  assert.deepEqual((await sub('stats')).queues.filter((q) => q.name === 'many').map((q) => q.ready), [3]);
  await proc.kill();
});

test("TabbitBroker: the package exports 'tabbit/durable-object' with its types, and npm pack ships them", async () => {
  await needClassBuild();
  await assertExported('durable-object');
  // What `npm pack` would put in the tarball (--dry-run: nothing is written or sent).
  const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: PKG, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  const files = new Set(packed[0].files.map((f) => f.path));
  for (const f of ['durable-object.js', 'durable-object.d.ts', 'storage/durable-object.js', 'index.js', 'tabbit_bg.wasm']) assert.ok(files.has(f), `npm pack ships ${f}`);
});

test('Connection.nextWakeup(): the earliest TTL or x-expires deadline, null without one', async () => {
  await needPackage();
  const { connect } = await import(pathToFileURL(join(PKG, 'index.js')).href);
  const conn = await connect({ name: 'next-wakeup', storage: 'memory', mesh: false });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('plain');
  ch.sendToQueue('plain', new Uint8Array(1));
  await ch.waitForConfirms();
  assert.equal(conn.nextWakeup(), null, 'no deadline: a message without a TTL');
  const before = Date.now();
  // A message expires from the head of its queue (RabbitMQ's rule): here it is the head.
  await ch.assertQueue('ttl');
  ch.sendToQueue('ttl', new Uint8Array(1), { expiration: '60000' });
  await ch.waitForConfirms();
  const ttl = conn.nextWakeup();
  assert.ok(ttl >= before + 60_000 && ttl <= Date.now() + 60_000, `a message's TTL: ${ttl - before} ms from the publish`);
  await ch.assertQueue('leased', { arguments: { 'x-expires': 30_000 } });
  const lease = conn.nextWakeup();
  assert.ok(lease >= before + 30_000 && lease < ttl, `an x-expires lease comes first: ${lease - before} ms`);
  await ch.deleteQueue('leased');
  await ch.purgeQueue('ttl');
  assert.equal(conn.nextWakeup(), null, 'nothing left with a deadline');
  await conn.close();
});
