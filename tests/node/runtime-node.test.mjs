// The npm package (pkg/, as scripts/build-pkg builds it) in Node: imported through its
// package.json entry point, connect() loads the wasm itself and the shared scenario
// (tests/runtimes/scenario.mjs: a work queue with prefetch and acks, a topic exchange, publisher
// confirms) runs on memory storage; and a storage adapter object (README, "Storage adapters")
// keeps a durable queue's persistent messages across close and reconnect in this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PKG, needPackage } from '../runtimes/helpers.mjs';
import { EXPECTED, scenario } from '../runtimes/scenario.mjs';

const TIMEOUT = 60_000;

/** The package's main module, found as a bundler or Node would: package.json's exports['.']. */
async function importPackage() {
  await needPackage();
  const manifest = JSON.parse(await readFile(join(PKG, 'package.json'), 'utf8'));
  assert.equal(manifest.type, 'module');
  const entry = manifest.exports?.['.']?.default ?? manifest.exports?.['.'] ?? manifest.main;
  assert.equal(typeof entry, 'string', 'package.json names no entry point');
  return import(pathToFileURL(join(PKG, entry)).href);
}

test('runtime node: the package publishes and consumes on memory storage', { timeout: TIMEOUT }, async () => {
  const tabbit = await importPackage();
  assert.equal(typeof tabbit.connect, 'function');
  const cargo = await readFile(new URL('../../Cargo.toml', import.meta.url), 'utf8');
  assert.equal(await tabbit.version(), cargo.match(/^\[package\][^[]*?^version\s*=\s*"([^"]+)"/ms)?.[1]);
  const result = await scenario(tabbit.connect);
  assert.deepEqual(result, { storage: 'memory', ...EXPECTED });
});

/** The README's example adapter, over a Map (records copied in and out, as a store would). */
function mapStorage() {
  const records = new Map();
  const stats = { loads: 0, writes: 0, inFlight: 0, maxInFlight: 0 };
  return {
    records,
    stats,
    async load() {
      stats.loads += 1;
      return [...records.values()].map(([store, key, value]) => [store, key, value.slice()]);
    },
    async write(writes) {
      stats.writes += 1;
      stats.inFlight += 1;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      await new Promise((ok) => setTimeout(ok, 1)); // durable only a little later, as a disk
      for (const { store, key, value } of writes) {
        assert.equal(typeof store, 'string');
        assert.ok(typeof key === 'string' || (Number.isInteger(key) && key >= 0), `bad key ${key}`);
        const k = `${store}/${typeof key}/${key}`;
        if (value === undefined) records.delete(k);
        else {
          assert.ok(value instanceof Uint8Array, 'a record value is a Uint8Array');
          records.set(k, [store, key, value.slice()]);
        }
      }
      stats.inFlight -= 1;
    },
  };
}

const text = (m) => new TextDecoder().decode(m.content);

test('runtime node: a storage adapter keeps a durable queue across close and reconnect', { timeout: TIMEOUT }, async () => {
  const { connect } = await importPackage();
  const storage = mapStorage();
  const name = 'runtime-node-adapter';

  // First life: a durable queue with persistent and transient messages, a transient queue,
  // one message acked and one delivered but not acked when the connection closes.
  let conn = await connect({ name, storage });
  assert.equal(conn.storage, 'adapter');
  let ch = await conn.createConfirmChannel();
  await ch.assertQueue('keep', { durable: true });
  await ch.assertQueue('scratch', { durable: false });
  await ch.assertExchange('jobs', 'direct', { durable: true });
  await ch.bindQueue('keep', 'jobs', 'job');
  for (let i = 0; i < 5; i++) ch.publish('jobs', 'job', `p${i}`, { persistent: true, messageId: `p${i}` });
  ch.sendToQueue('keep', 'transient', { persistent: false });
  ch.sendToQueue('scratch', 'gone', { persistent: true });
  await ch.waitForConfirms();
  const first = await ch.get('keep');
  assert.equal(text(first), 'p0');
  ch.ack(first);
  const second = await ch.get('keep');
  assert.equal(text(second), 'p1');
  assert.equal(second.fields.redelivered, false);
  await conn.flush(); // the ack of p0 is stored
  await conn.close(); // p1 goes back, unacked
  assert.ok(storage.records.size > 0, 'the adapter holds records');
  assert.ok(storage.stats.writes > 0);
  assert.equal(storage.stats.maxInFlight, 1, 'the broker never awaits two writes at once');

  // Second life on the same records: the durable queue, exchange and binding, and exactly the
  // persistent messages not acked, in order, p1 marked as redelivered.
  conn = await connect({ name, storage });
  assert.deepEqual([...conn.problems], [], 'records recovery skipped');
  ch = await conn.createConfirmChannel();
  assert.equal((await ch.checkQueue('keep')).messageCount, 4);
  const channelErrors = [];
  ch.on('error', (e) => channelErrors.push(e.code)); // as amqplib's: unheard, it would be thrown
  await assert.rejects(ch.checkQueue('scratch'), (e) => e.code === 404, 'a transient queue does not survive');
  assert.deepEqual(channelErrors, [404], 'the failed check closed the channel, as in AMQP');
  ch = await conn.createConfirmChannel();
  const back = [];
  for (let m; (m = await ch.get('keep')); ) {
    back.push({ text: text(m), id: m.properties.messageId, redelivered: m.fields.redelivered });
    ch.ack(m);
  }
  assert.deepEqual(back, [
    { text: 'p1', id: 'p1', redelivered: true },
    { text: 'p2', id: 'p2', redelivered: false },
    { text: 'p3', id: 'p3', redelivered: false },
    { text: 'p4', id: 'p4', redelivered: false },
  ]);
  // The binding came back too: a publish through the exchange reaches the queue.
  ch.publish('jobs', 'job', 'p5', { persistent: true });
  await ch.waitForConfirms();
  await conn.flush();
  await conn.close();

  // Third life: only p5 is left.
  conn = await connect({ name, storage });
  ch = await conn.createChannel();
  const last = await ch.get('keep', { noAck: true });
  assert.equal(text(last), 'p5');
  assert.equal(await ch.get('keep'), false);
  await conn.close();
  assert.equal(storage.stats.loads, 3);
});

test('runtime node: connect() right after the last close waits for it, so two brokers never share storage', { timeout: TIMEOUT }, async () => {
  const { connect } = await importPackage();
  const storage = mapStorage();
  let published = 0;
  for (let round = 0; round < 5; round++) {
    const conn = await connect({ name: 'reconnect-race', storage });
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('q');
    for (let i = 0; i < 10; i++) ch.sendToQueue('q', `r${round}-${i}`, { persistent: true });
    published += 10;
    conn.close(); // not awaited: the next connect() comes while this one still writes
  }
  const conn = await connect({ name: 'reconnect-race', storage });
  const ch = await conn.createChannel();
  const got = [];
  for (let m; (m = await ch.get('q', { noAck: true })); ) got.push(text(m));
  await conn.close();
  assert.equal(got.length, published, 'every message published before a close is there once');
  assert.deepEqual(got, [...got].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })), 'in order');
  assert.equal(storage.stats.maxInFlight, 1, 'never two writers at once');
});

test('runtime node: structured values round-trip through a queue, cycles and all', { timeout: TIMEOUT }, async () => {
  const { connect, STRUCTURED } = await importPackage();
  const conn = await connect({ name: 'structured', storage: 'memory' });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('values');
  const shared = { n: 1 };
  const cyclic = { name: 'loop' };
  cyclic.self = cyclic;
  const value = {
    text: 'héllo',
    numbers: [0, -0, 1.5, NaN, Infinity, 2n ** 70n],
    when: new Date(1_700_000_000_000),
    pattern: /a+b/gi,
    map: new Map([['k', shared], [1, [true, false, null, undefined]]]),
    set: new Set(['x', shared]),
    bytes: new Uint8Array([1, 2, 3]),
    floats: new Float64Array([0.5]),
    buffer: new Uint16Array([7, 8]).buffer,
    error: new RangeError('too far'),
    cyclic,
    again: shared,
  };
  ch.sendToQueue('values', value, { structured: true, persistent: true });
  ch.sendToQueue('values', 'plain text');
  await ch.waitForConfirms();

  const got = await ch.get('values', { structured: true, noAck: true });
  assert.equal(got.properties.contentType, STRUCTURED);
  assert.ok(got.content instanceof Uint8Array, 'content stays bytes, as in amqplib');
  const v = got.value;
  assert.equal(v.text, 'héllo');
  assert.ok(Object.is(v.numbers[1], -0) && Number.isNaN(v.numbers[3]) && v.numbers[5] === 2n ** 70n);
  assert.equal(v.when.getTime(), 1_700_000_000_000);
  assert.equal(String(v.pattern), '/a+b/gi');
  assert.equal(v.map.get('k'), v.again, 'shared references stay shared');
  assert.ok(v.set.has(v.again));
  assert.deepEqual([...v.bytes], [1, 2, 3]);
  assert.ok(v.floats instanceof Float64Array && v.floats[0] === 0.5);
  assert.deepEqual([...new Uint16Array(v.buffer)], [7, 8]);
  assert.ok(v.error instanceof RangeError && v.error.message === 'too far');
  assert.equal(v.cyclic.self, v.cyclic, 'cycles survive');

  const plain = await ch.get('values', { structured: true, noAck: true });
  assert.equal(plain.value, undefined, 'a message that is not structured gets no value');
  assert.equal(new TextDecoder().decode(plain.content), 'plain text');

  assert.throws(() => ch.sendToQueue('values', { f() {} }, { structured: true }), (e) => e.code === 406 && /function/.test(e.message));
  assert.throws(() => ch.sendToQueue('values', 1, { structured: true, contentType: 'text/plain' }), (e) => e.code === 406);
  const seen = [];
  ch.sendToQueue('values', [1, { two: 2 }], { structured: true });
  await ch.consume('values', (m) => (seen.push(m.value), ch.ack(m)), { structured: true });
  await ch.waitForConfirms();
  assert.deepEqual(seen, [[1, { two: 2 }]]);
  await conn.close();
});

test('runtime node: limits.maxQueueLength refuses publishes to a full queue with an error that names it', { timeout: TIMEOUT }, async () => {
  const { connect } = await importPackage();
  for (const [maxQueueLength, expected] of [
    [0, /^406 .*limits\.maxQueueLength.*Infinity/],
    [2.5, /^406 .*limits\.maxQueueLength/],
    [-Infinity, /^406 .*limits\.maxQueueLength/],
  ]) {
    const error = await connect({ name: 'ql-bad', storage: 'memory', limits: { maxQueueLength } }).then(
      () => 'accepted',
      (e) => `${e.code} ${e.message}`,
    );
    assert.match(error, expected, `maxQueueLength ${maxQueueLength}`);
  }

  const conn = await connect({ name: 'queue-length', storage: 'memory', limits: { maxQueueLength: 3 } });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('plain', { durable: false });
  await ch.assertQueue('own', { durable: false, maxLength: 5 });
  const sent = ['a', 'b', 'c', 'd'].map((body) => new Promise((ok) => ch.sendToQueue('plain', body, {}, (err) => ok(err))));
  const results = await Promise.all(sent);
  assert.deepEqual(results.slice(0, 3), [null, null, null]);
  const err = results[3];
  assert.ok(err instanceof Error, 'the fourth publish is nacked');
  assert.equal(err.code, 506);
  assert.match(err.message, /queue 'plain' is full: it holds 3 ready messages.*\(limits\.maxQueueLength\).*raise limits\.maxQueueLength in connect\(\)/);
  for (let i = 0; i < 5; i++) ch.sendToQueue('own', `o${i}`);
  await ch.waitForConfirms(); // the queue's own x-max-length (5) wins over the default (3)

  const byName = Object.fromEntries((await conn.stats()).queues.map((q) => [q.name, q]));
  assert.deepEqual([byName.plain.ready, byName.plain.effectiveMaxLength, byName.plain.arguments], [3, 3, {}]);
  assert.deepEqual([byName.own.ready, byName.own.effectiveMaxLength, byName.own.arguments], [5, 5, { 'x-max-length': 5 }]);
  await conn.close();

  const unbounded = await connect({ name: 'queue-length-off', storage: 'memory', limits: { maxQueueLength: Infinity } });
  const ch2 = await unbounded.createConfirmChannel();
  await ch2.assertQueue('q', { durable: false });
  for (let i = 0; i < 10; i++) ch2.sendToQueue('q', `m${i}`);
  await ch2.waitForConfirms();
  const [q] = (await unbounded.stats()).queues.filter((x) => x.name === 'q');
  assert.deepEqual([q.ready, q.effectiveMaxLength], [10, null]);
  await unbounded.close();

  const stock = await connect({ name: 'queue-length-stock', storage: 'memory' });
  const ch3 = await stock.createChannel();
  await ch3.assertQueue('q', { durable: false });
  assert.equal((await stock.stats()).queues.find((x) => x.name === 'q').effectiveMaxLength, 1_000_000);
  await stock.close();
});

test('runtime node: an amqplib/callback_api program runs on tabbit/callback_api with only the import changed', { timeout: TIMEOUT }, async () => {
  await needPackage();
  const manifest = JSON.parse(await readFile(join(PKG, 'package.json'), 'utf8'));
  const entry = manifest.exports?.['./callback_api']?.default;
  assert.equal(entry, './callback_api.js', "package.json exports './callback_api'");
  const { default: amqp } = await import(pathToFileURL(join(PKG, entry)).href);
  const { run, CALLBACK_EXPECTED } = await import('../runtimes/callback-program.mjs');
  const name = `callback-${Date.now()}`;
  const summary = await new Promise((ok, fail) => run(amqp, name, { storage: 'memory' }, (err, out) => (err ? fail(err) : ok(out))));
  assert.deepEqual(summary, CALLBACK_EXPECTED);
  // connect() with a URL fails through the callback, as every failure does.
  const err = await new Promise((ok) => amqp.connect('amqp://localhost', (e) => ok(e)));
  assert.equal(err?.code, 406);
});

test('runtime node: an amqplib program (promise API) runs on tabbit with only the import changed', { timeout: TIMEOUT }, async () => {
  const tabbit = await importPackage();
  const { run, PROMISE_EXPECTED } = await import('../runtimes/amqplib-program.mjs');
  assert.deepEqual(await run(tabbit.default, `amqplib-${Date.now()}`, { storage: 'memory' }), PROMISE_EXPECTED);
});
