// tabbit in a Cloudflare Durable Object, in the real workerd runtime (npm package `workerd`):
// tests/runtimes/workerd/broker-do.js hosts a broker per object on the object's storage through
// the package's adapter ('tabbit/storage/durable-object': pkg/storage/durable-object.js, which
// scripts/build-pkg builds from js/storage/durable-object.js); the
// objects live on local disk (do-config.mjs: `durableObjectStorage = (localDisk = ...)`), so they
// outlive the process. The worker's fetch handler calls the object through its stub (RPC); this
// file talks HTTP to the worker. Each case runs on both kinds of object: SQLite-backed
// (`enableSql = true`: the adapter's 'sql' backend) and key-value only (its 'kv' backend).
//
// - publishes with confirms stream in while workerd is killed with SIGKILL; restarted on the same
//   disk, the queue holds every confirmed message exactly once (and nothing never sent);
// - messages delivered but not acked at the kill come back with redelivered: true; those acked
//   (then conn.flush()) do not come back;
// - the adapter alone: a batch over the platform's limits (values over 128 KiB / 1 MiB, more than
//   128 keys) round-trips and is stored within them; a batch whose write fails part-way leaves
//   nothing of it; a key too long for the backend is refused with nothing written;
// - the worker and object of docs/edge-cloudflare.md, as the doc has them, keep what they stored
//   across SIGKILL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, needBin, needPackage, removeDir, tempDir } from '../runtimes/helpers.mjs';
import { needAdapterBuild, writeDurableObjectConfig } from '../runtimes/workerd/do-config.mjs';
import { callObject, serveWorkerd } from '../runtimes/workerd/serve.mjs';

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const KINDS = ['sql', 'kv'];

/** Starts workerd serving broker-do.js with its objects on `disk`. */
async function serveObjects(t, workerd, dir, disk) {
  const { url, proc } = await serveWorkerd(t, workerd, dir, (file, address) => writeDurableObjectConfig(file, { disk, address }), { timeoutMs: 170_000 });
  return { url, proc, kill9: () => kill9(proc) };
}

/** SIGKILL to workerd's process group; resolves once it has exited. */
async function kill9(proc) {
  try {
    process.kill(-proc.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await proc.exited;
}

const call = callObject;

async function setup(t) {
  await needPackage();
  await needAdapterBuild();
  const workerd = await needBin('workerd');
  const dir = await tempDir('tabbit-edge-workerd-');
  t.after(() => removeDir(dir));
  const disk = join(dir, 'disk');
  await mkdir(disk);
  return { workerd, dir, disk };
}

for (const kind of KINDS) {
  test(`edge workerd (${kind}): confirmed publishes survive SIGKILL mid-stream, each exactly once`, { timeout: 180_000 }, async (t) => {
    const { workerd, dir, disk } = await setup(t);
    let server = await serveObjects(t, workerd, dir, disk);
    assert.deepEqual(await call(server.url, kind, 'stream', 'info'), { backend: kind, storage: 'adapter' });

    const queue = 'orders';
    const sent = new Set();
    const confirmed = [];
    let failedRequests = 0;
    let next = 0;
    let killed = false;
    // Four clients, each publishing 5 messages per request, one request after another.
    const client = async () => {
      while (!killed) {
        const bodies = Array.from({ length: 5 }, () => `m${next++}`);
        bodies.forEach((b) => sent.add(b));
        try {
          const out = await call(server.url, kind, 'stream', 'publish', queue, bodies);
          assert.deepEqual(out.refused, [], 'no publish refused before the kill');
          confirmed.push(...out.confirmed);
        } catch (e) {
          if (!killed) {
            failure ??= e;
            return;
          }
          failedRequests += 1; // in flight at the kill: unconfirmed, may or may not be stored
        }
      }
    };
    let failure = null;
    const clients = Array.from({ length: 4 }, client);
    while (confirmed.length < 400 && !failure) await sleep(5);
    if (failure) throw failure;
    killed = true;
    await server.kill9();
    await Promise.all(clients);
    const confirmedAtKill = confirmed.length;

    server = await serveObjects(t, workerd, dir, disk);
    const got = await call(server.url, kind, 'stream', 'get', queue, 1e6, true);
    const bodies = got.map((m) => m.body);
    const counts = new Map();
    for (const b of bodies) counts.set(b, (counts.get(b) ?? 0) + 1);
    const duplicated = [...counts].filter(([, n]) => n > 1).map(([b]) => b);
    assert.deepEqual(duplicated, [], 'no message is there twice');
    const lost = confirmed.filter((b) => !counts.has(b));
    assert.deepEqual(lost, [], 'every confirmed message is there');
    const unknown = bodies.filter((b) => !sent.has(b));
    assert.deepEqual(unknown, [], 'nothing that was never sent');
    t.diagnostic(`${kind}: ${confirmedAtKill} confirmed before SIGKILL, ${failedRequests} requests cut by it, ${bodies.length} in the queue after the restart`);
    // Nothing comes back a second time once acked and flushed.
    assert.deepEqual(await call(server.url, kind, 'stream', 'get', queue, 10, true), []);
    await server.proc.kill();
  });

  test(`edge workerd (${kind}): unacked deliveries come back redelivered after SIGKILL, acked ones do not`, { timeout: 120_000 }, async (t) => {
    const { workerd, dir, disk } = await setup(t);
    let server = await serveObjects(t, workerd, dir, disk);
    const queue = 'jobs';
    const bodies = Array.from({ length: 10 }, (_, i) => `job${i}`);
    assert.deepEqual((await call(server.url, kind, 'acks', 'publish', queue, bodies)).confirmed, bodies);
    const held = await call(server.url, kind, 'acks', 'get', queue, 3, false);
    assert.deepEqual(held, bodies.slice(0, 3).map((body) => ({ body, redelivered: false })));
    const acked = await call(server.url, kind, 'acks', 'get', queue, 3, true);
    assert.deepEqual(acked, bodies.slice(3, 6).map((body) => ({ body, redelivered: false })));
    await server.kill9();

    server = await serveObjects(t, workerd, dir, disk);
    const after = await call(server.url, kind, 'acks', 'get', queue, 100, true);
    const byBody = Object.fromEntries(after.map((m) => [m.body, m.redelivered]));
    assert.deepEqual(Object.keys(byBody).sort(), [...bodies.slice(0, 3), ...bodies.slice(6)].sort(), 'the acked messages are gone, the others are back');
    for (const b of bodies.slice(0, 3)) assert.equal(byBody[b], true, `${b} was delivered before the kill: redelivered`);
    assert.equal(after.length, 7, 'each once');
    t.diagnostic(`${kind}: after the restart ${JSON.stringify(after)}`);
    await server.proc.kill();
  });

  test(`edge workerd (${kind}): the adapter keeps a batch over the platform's limits within them, and a failed batch leaves nothing`, { timeout: 120_000 }, async (t) => {
    const { workerd, dir, disk } = await setup(t);
    const server = await serveObjects(t, workerd, dir, disk);
    const big = 20 << 20; // 20 MiB: 163 entries of the KV backend's 126 KiB, 20 SQLite rows of 1 MiB
    const small = Array.from({ length: 300 }, (_, i) => ({ store: 'acks', key: i, size: 40 + i, fill: i % 256 }));
    const batch = [
      { store: 'segments', key: 1, size: big, fill: 1 },
      { store: 'segments', key: 2, size: 200_000, fill: 2 },
      { store: 'meta', key: 'clock', size: 8, fill: 3 },
      { store: 'meta', key: '5', size: 1, fill: 4 },
      { store: 'meta', key: 5, size: 2, fill: 5 },
      { store: 'queues', key: 'é ü 🐇', size: 0, fill: 0 },
      { store: 'bindings', key: 2 ** 53 - 1, size: 3, fill: 6 },
      ...small,
    ];
    const want = (writes) =>
      writes
        .map(({ store, key, size, fill }) => ({ store, key, size, fill: size > 0 ? fill : null }))
        .sort((a, b) => `${a.store}/${typeof a.key}/${a.key}`.localeCompare(`${b.store}/${typeof b.key}/${b.key}`));

    const first = await call(server.url, kind, 'limits', 'adapterWrite', batch);
    assert.equal(first.error, null);
    assert.deepEqual(first.records, want(batch), 'every record comes back whole, keys with their types');

    const raw = await call(server.url, kind, 'limits', 'rawSizes');
    const maxValue = kind === 'kv' ? 128 << 10 : 2 << 20;
    for (const r of raw) {
      if (r.descriptor) {
        assert.ok(r.descriptor.chunks > 1, `${r.key}: a descriptor names its chunks`);
        continue;
      }
      assert.ok(r.size >= 0 && r.size <= maxValue, `${r.key}: ${r.size} bytes stored in one ${kind} value`);
      if (kind === 'kv') {
        assert.ok(r.keyBytes <= 2048, `${r.key}: a key of ${r.keyBytes} bytes`);
        assert.equal(r.buffer, r.size, `${r.key}: the stored view is its whole buffer`);
      }
    }
    assert.ok(raw.length >= batch.length + (kind === 'kv' ? 160 : 19), `the big value is in chunks (${raw.length} entries)`);

    // Rewrite: the big record shrinks (its extra chunks go), one is deleted, one grows.
    const second = [
      { store: 'segments', key: 1, size: 300_000, fill: 7 },
      { store: 'segments', key: 2, delete: true },
      { store: 'meta', key: 'clock', size: 3 << 20, fill: 8 },
    ];
    const after = await call(server.url, kind, 'limits', 'adapterWrite', second);
    assert.equal(after.error, null);
    const expected = want([...batch.filter((w) => !(w.store === 'segments' || (w.store === 'meta' && w.key === 'clock'))), second[0], second[2]]);
    assert.deepEqual(after.records, expected);
    const rawAfter = await call(server.url, kind, 'limits', 'rawSizes');
    const stored = rawAfter.reduce((n, r) => n + (r.size ?? 0), 0);
    const live = expected.reduce((n, r) => n + r.size, 0);
    assert.equal(stored, live, 'no chunk of an old value is left behind');

    // A batch whose write fails part-way, after some of it went through (SQLite: a delete and two
    // inserts of 1 MiB; KV: a put of 128 entries inside the transaction): nothing of it is visible.
    const failAt = kind === 'sql' ? 4 : 2;
    const failing = [
      { store: 'segments', key: 9, size: big, fill: 9 },
      ...small.map((w) => ({ ...w, fill: 200 })),
      { store: 'meta', key: 'clock', size: 1, fill: 10 },
    ];
    const failed = await call(server.url, kind, 'limits', 'adapterFailingWrite', failing, failAt);
    assert.match(failed.error, new RegExp(`tabbit durable-object storage: a batch of 302 writes failed and was rolled back, none of it applied .*injected failure at write operation ${failAt}`));
    assert.equal(failed.operations, failAt);
    assert.deepEqual(failed.records, expected, 'the storage is as before the failed batch');

    // A key the backend cannot hold is refused before anything is written.
    const long = kind === 'kv' ? 'k'.repeat(2100) : 'k'.repeat((256 << 10) + 1);
    const refused = await call(server.url, kind, 'limits', 'adapterWrite', [{ store: 'meta', key: 'ok', size: 1, fill: 1 }, { store: 'queues', key: long, size: 1, fill: 1 }]);
    assert.match(refused.error, /a key in store 'queues' .* nothing of the batch was written/);
    assert.deepEqual(refused.records, expected);
    await server.proc.kill();
    assert.doesNotMatch(server.proc.output(), /uncaught/i, 'workerd logged an uncaught error');
  });
}

test("edge workerd: docs/edge-cloudflare.md's worker and object, as written, across SIGKILL", { timeout: 120_000 }, async (t) => {
  const { workerd, dir, disk } = await setup(t);
  // The doc's JavaScript block with the worker, its package imports pointed at pkg/.
  const doc = await readFile(join(ROOT, 'docs/edge-cloudflare.md'), 'utf8');
  const code = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((c) => c.includes('export class Broker'));
  assert.ok(code, 'the doc has a js block with the worker (export class Broker)');
  const imports = { tabbit: './pkg/index.js', 'tabbit/storage/durable-object': './pkg/storage/durable-object.js', 'tabbit/tabbit_bg.wasm': './pkg/tabbit_bg.wasm' };
  const worker = join(dir, 'doc-worker.js');
  await writeFile(worker, code.replace(/from '(tabbit[^']*)'/g, (all, name) => `from '${imports[name] ?? name}'`));
  const serve = () =>
    serveWorkerd(t, workerd, dir, (file, address) => writeDurableObjectConfig(file, { disk, address, worker, classes: [{ className: 'Broker', binding: 'BROKER', sql: true }] }));
  const request = async (url, path, body) => {
    const r = await fetch(url + path, { method: 'POST', body, signal: AbortSignal.timeout(30_000) });
    return { status: r.status, text: await r.text() };
  };

  let { url, proc } = await serve();
  assert.deepEqual(await request(url, '/orders', 'first'), { status: 202, text: 'stored\n' });
  assert.deepEqual(await request(url, '/orders', 'second'), { status: 202, text: 'stored\n' });
  await kill9(proc);
  ({ url, proc } = await serve());
  assert.deepEqual(JSON.parse((await request(url, '/orders/next')).text), { body: 'first', redelivered: false });
  assert.deepEqual(JSON.parse((await request(url, '/orders/next')).text), { body: 'second', redelivered: false });
  assert.equal((await request(url, '/orders/next')).status, 204);
  await proc.kill();
});
