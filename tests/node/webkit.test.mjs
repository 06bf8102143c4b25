// The browser tests in Safari's engine: WebKitGTK (Debian's webkit2gtk-driver: WebKitWebDriver
// and MiniBrowser) under Xvfb, driven over plain W3C WebDriver by tests/node/webkit.mjs.
// (a) the package loads in a page, a durable queue (IndexedDB) publishes with confirms and gets,
//     and the broker survives a reload;
// (b) a consumer in a dedicated worker, the page hosting;
// (c) two tabs of one origin: a consumer tab closed → its unacked messages redelivered to the
//     other; the hosting tab closed → the other hosts, no confirmed message lost.
// It also prints, and checks, what WebKit offers that tabbit uses or reports (Web Locks,
// BroadcastChannel, IndexedDB, WebAssembly, navigator.storage): see docs/storage.md.
//
// Skips, saying why, when WebKitWebDriver, Xvfb or MiniBrowser are missing, unless CI=true: there
// scripts/setup has installed them, so a missing one fails the test.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { BLANK, TEST_TIMEOUT, startServer, waitUntil } from './browser.mjs';
import { launchWebKit, missing } from './webkit.mjs';

const absent = missing();
const onCI = process.env.CI === 'true';
const skip =
  absent.length > 0 && !onCI
    ? `WebKit is not installed (missing ${absent.join(', ')}): scripts/setup installs Debian's webkit2gtk-driver and xvfb`
    : false;
if (skip) console.log(`# webkit: skipped: ${skip}`);

const QUEUE = 'jobs';
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
let names = 0;
const brokerName = (tag) => `webkit-${tag}-${Date.now()}-${++names}`;

let server;
let wk;
before(async () => {
  if (skip) return;
  if (absent.length > 0) {
    throw new Error(`CI=true but WebKit is not installed (missing ${absent.join(', ')}): scripts/setup installs webkit2gtk-driver and xvfb`);
  }
  server = await startServer();
  wk = await launchWebKit();
});
after(async () => {
  await wk?.close();
  await server?.close();
});

/** Installs in the current window's page a record of its uncaught errors and rejections (globalThis.__errors). */
const watchErrors = (s) =>
  s.evaluate(() => {
    const errors = (globalThis.__errors = []);
    addEventListener('error', (e) => errors.push(`error: ${e.error?.stack ?? e.message}`));
    addEventListener('unhandledrejection', (e) => errors.push(`unhandled rejection: ${e.reason?.stack ?? e.reason}`));
    const log = console.error.bind(console);
    console.error = (...args) => {
      errors.push(`console.error: ${args.join(' ')}`);
      log(...args);
    };
  });

/** A tab of a WebKit session on the blank test page, joined to broker `name` with tests/node/mesh-page.js. */
class Tab {
  constructor(label, s, handle) {
    this.label = label;
    this.s = s;
    this.handle = handle;
    this.closed = false;
  }

  static async open(label, s, name, { newWindow = true } = {}) {
    const handle = newWindow ? await s.newWindow('tab') : await s.windowHandle();
    const tab = new Tab(label, s, handle);
    await tab.focus();
    await s.navigate(server.url + BLANK);
    await watchErrors(s);
    tab.joined = await s.evaluate(async (name) => (await import('/tests/node/mesh-page.js')).join(name), name);
    return tab;
  }

  /** Makes this tab the session's current window (each command runs in the current window). */
  async focus() {
    if (this.s.current !== this.handle) {
      await this.s.switchTo(this.handle);
      this.s.current = this.handle;
    }
  }

  async call(fn, ...args) {
    await this.focus();
    return this.s.evaluate((fn, args) => globalThis.mesh[fn](...args), fn, args);
  }

  async read(expr) {
    await this.focus();
    return this.s.evaluate(new Function(`return (${expr})(globalThis.__state)`));
  }

  async errors() {
    await this.focus();
    return this.s.evaluate(() => [...globalThis.__errors, ...globalThis.__state.errors]);
  }

  /** Closes this tab's window (W3C "Close Window"); `to` becomes the current window. */
  async close(to) {
    await this.focus();
    await this.s.closeWindow();
    this.closed = true;
    this.s.current = null;
    await to.focus();
  }
}

/** Waits until `tab` (the host) sees QUEUE with nothing ready or unacked, and one consumer. */
async function drained(tab) {
  let counts;
  await waitUntil(
    () => `the queue to drain, as ${tab.label} sees it: ${JSON.stringify(counts)}`,
    async () => {
      counts = await tab.call('queueCounts', QUEUE);
      return counts?.ready === 0 && counts.unacked === 0 && counts.consumers === 1;
    },
    5000,
    50,
  );
}

/** The same id more than once in `ids`. */
function repeated(ids) {
  const seen = new Set();
  return ids.filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
}

// ---- (a) a page: load, durable queue, reload --------------------------------------------------

test('webkit: the package loads, a durable queue publishes with confirms and gets, and survives a reload', { skip, timeout: TEST_TIMEOUT }, async (t) => {
  const s = await wk.session();
  t.after(() => s.close().catch(() => {}));
  await s.navigate(server.url + BLANK);
  await watchErrors(s);
  const name = brokerName('reload');
  const first = await s.evaluate(async (name, queue) => {
    const { connect, version } = await import('/pkg/index.js');
    const storage = navigator.storage;
    const features = {
      userAgent: navigator.userAgent,
      webLocks: typeof navigator.locks?.request === 'function',
      broadcastChannel: typeof BroadcastChannel === 'function',
      indexedDB: typeof indexedDB === 'object' && indexedDB !== null,
      wasmStreaming: typeof WebAssembly.instantiateStreaming === 'function',
      storageManager: typeof storage === 'object' && storage !== null,
      persist: typeof storage?.persist === 'function',
      persisted: typeof storage?.persisted === 'function',
      estimate: typeof storage?.estimate === 'function',
    };
    const conn = await connect({ name, persist: true });
    const storageEvents = [];
    conn.on('storage', (info) => storageEvents.push(info));
    const answer = await conn.persist();
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: true });
    const encoder = new TextEncoder();
    for (let i = 0; i < 20; i++) ch.sendToQueue(queue, encoder.encode(`body ${i}`), { persistent: true, messageId: `m${i}` });
    await ch.waitForConfirms();
    const got = [];
    for (let i = 0; i < 5; i++) {
      const msg = await ch.get(queue);
      got.push(msg.properties.messageId);
      ch.ack(msg);
    }
    await conn.flush(); // the acks are stored
    const info = await conn.storageInfo();
    return { version: await version(), storage: conn.storage, hosting: conn.hosting, features, got, answer, info, storageEvents };
  }, name, QUEUE);
  console.log(`webkit features: ${JSON.stringify(first.features)}`);
  assert.match(first.version, /^\d+\.\d+\.\d+/, 'version()');
  assert.equal(first.storage, 'indexeddb', 'a page gets IndexedDB storage by default');
  assert.equal(first.hosting, true, 'the only context hosts');
  assert.deepEqual(first.got, ['m0', 'm1', 'm2', 'm3', 'm4'], 'get() in publish order');
  // What tabbit needs of the platform, all in WebKitGTK 2.50 (Safari's engine).
  for (const f of ['webLocks', 'broadcastChannel', 'indexedDB']) assert.equal(first.features[f], true, `WebKit has ${f}`);
  // What the app is told. WebKitGTK 2.50 has no navigator.storage at all (Safari has it): tabbit
  // cannot ask for persistence or tell usage and quota there, and says so with nulls; storage
  // not known to be persisted gets the 'storage' warning once durable messages are stored.
  console.log(`webkit storageInfo: ${JSON.stringify(first.info)}; persist() answered ${first.answer}`);
  if (!first.features.storageManager) {
    assert.equal(first.answer, null, 'no persist() to ask: conn.persist() is null');
    assert.deepEqual(first.info, { kind: 'indexeddb', persisted: null, usage: null, quota: null, persist: 'unavailable', emptied: null });
  } else {
    assert.equal(typeof first.answer, 'boolean', 'persist() answered');
    assert.equal(first.info.persist, first.answer ? 'granted' : 'denied');
  }
  assert.equal(first.storageEvents.length, first.info.persisted === true ? 0 : 1, `storage warnings: ${JSON.stringify(first.storageEvents)}`);

  await s.refresh();
  await watchErrors(s);
  const second = await s.evaluate(async (name, queue) => {
    const { connect } = await import('/pkg/index.js');
    const conn = await connect({ name });
    const ch = await conn.createChannel();
    const { messageCount } = await ch.checkQueue(queue);
    const rest = [];
    for (;;) {
      const msg = await ch.get(queue);
      if (!msg) break;
      rest.push({ id: msg.properties.messageId, text: new TextDecoder().decode(msg.content), redelivered: msg.fields.redelivered });
      ch.ack(msg);
    }
    await conn.close();
    return { messageCount, rest, problems: conn.problems ?? [] };
  }, name, QUEUE);
  assert.equal(second.messageCount, 15, 'after the reload the queue still holds the 15 not acked');
  assert.deepEqual(
    second.rest,
    Array.from({ length: 15 }, (_, i) => ({ id: `m${i + 5}`, text: `body ${i + 5}`, redelivered: false })),
    'the same messages, in order, never delivered before',
  );
  assert.deepEqual(await s.evaluate(() => globalThis.__errors), [], 'errors in the page');
});

// ---- (b) a dedicated worker consumes ----------------------------------------------------------

test('webkit: a dedicated worker consumes what the hosting page publishes', { skip, timeout: TEST_TIMEOUT }, async (t) => {
  const N = 30;
  const s = await wk.session();
  t.after(() => s.close().catch(() => {}));
  const name = brokerName('worker');
  const page = await Tab.open('page', s, name, { newWindow: false });
  assert.equal(page.joined.hosting, true, 'the page hosts');
  await s.evaluate(
    (name, queue, count) => {
      const w = (globalThis.__worker = { messages: [], errors: [] });
      const worker = new Worker('/tests/node/worker-consumer.js', { type: 'module' });
      worker.onerror = (e) => w.errors.push(`worker: ${e.message ?? 'failed to start'}`);
      worker.onmessage = ({ data }) => (data.type === 'error' ? w.errors.push(`worker: ${data.message}`) : w.messages.push(data));
      worker.postMessage({ op: 'consume', name, queue, count });
      globalThis.__workerRef = worker;
    },
    name,
    QUEUE,
    N,
  );
  const worker = () => s.evaluate(() => globalThis.__worker);
  await waitUntil(
    async () => `the worker to consume: ${JSON.stringify(await worker())}`,
    async () => {
      const w = await worker();
      return w.errors.length > 0 || (w.messages.some((m) => m.type === 'joined') && (await page.call('queueCounts', QUEUE))?.consumers === 1);
    },
    15_000,
    50,
  );
  assert.deepEqual((await worker()).errors, [], 'errors in the worker');
  const sent = await page.call('publish', QUEUE, N, 'p');
  assert.deepEqual(sent.failed, [], 'publishes whose confirm failed');
  assert.equal(sent.confirmed.length, N, 'every publish confirmed');
  await waitUntil(
    async () => `the worker to get ${N}: ${JSON.stringify(await worker())}`,
    async () => {
      const w = await worker();
      return w.errors.length > 0 || w.messages.some((m) => m.type === 'done');
    },
    15_000,
    50,
  );
  const w = await worker();
  assert.deepEqual(w.errors, [], 'errors in the worker');
  assert.equal(w.messages.find((m) => m.type === 'joined').hosting, false, 'the worker is a client of the page');
  const received = w.messages.filter((m) => m.type === 'received');
  assert.deepEqual(received.map((m) => m.id).sort(), [...sent.confirmed].sort(), 'every confirmed message delivered to the worker, once');
  assert.ok(received.every((m) => m.text.startsWith(`${m.id} `) && m.redelivered === false), 'contents and redelivered flags');
  await drained(page);
  assert.deepEqual(await page.errors(), [], 'errors in the page');
});

// ---- (c) two tabs: a consumer tab closed, the hosting tab closed ------------------------------

/** A new session (its own storage) with two tabs joined to a new broker: the first hosts. */
async function twoTabs(t, tag, first, second) {
  const s = await wk.session();
  t.after(() => s.close().catch(() => {}));
  const name = brokerName(tag);
  const a = await Tab.open(first, s, name, { newWindow: false });
  const b = await Tab.open(second, s, name);
  assert.deepEqual([a.joined.hosting, b.joined.hosting], [true, false], `${first} hosts, ${second} is a client`);
  return [a, b];
}

test('webkit: a consumer tab closed; its unacked messages are redelivered to the other tab', { skip, timeout: TEST_TIMEOUT }, async (t) => {
  const N = 20;
  const PREFETCH = 5;
  const [a, b] = await twoTabs(t, 'consumer-closed', 'A', 'B');

  await b.call('consume', QUEUE, { prefetch: PREFETCH, ack: false }); // holds what it gets
  await a.call('waitConsumers', QUEUE, 1);
  const sent = await a.call('publish', QUEUE, N, 'm');
  assert.equal(sent.confirmed.length, N, 'every publish confirmed');
  await waitUntil('B to hold prefetch', async () => (await b.read('(s) => s.consumers[0].outstanding')) >= PREFETCH, 10_000, 20);
  const held = await b.read('(s) => s.received.map((r) => r.id)');
  assert.equal(held.length, PREFETCH, `B holds prefetch (${PREFETCH}) unacked, no more`);
  assert.deepEqual(await b.errors(), [], 'errors in B');

  await b.close(a);
  // Once the broker has seen B go, its messages are ready again: A consumes them all.
  await waitUntil(
    async () => `B's consumer to go: ${JSON.stringify(await a.call('queueCounts', QUEUE))}`,
    async () => (await a.call('queueCounts', QUEUE))?.consumers === 0,
    10_000,
    50,
  );
  await a.call('consume', QUEUE, { prefetch: PREFETCH, ackDelay: 0 });
  await waitUntil(async () => `A to get all ${N} (has ${await a.read('(s) => s.received.length')})`, async () => (await a.read('(s) => s.received.length')) >= N, 10_000, 50);
  await sleep(200); // a duplicate would come now
  const got = await a.read('(s) => s.received');
  console.log(`webkit consumer closed: B held ${held.join(' ')}; A got ${got.length}, ${got.filter((r) => r.redelivered).length} redelivered`);
  assert.deepEqual(repeated(got.map((r) => r.id)), [], 'ids delivered to A more than once');
  assert.deepEqual(got.map((r) => r.id).sort(), [...sent.confirmed].sort(), 'every confirmed message delivered to A');
  assert.deepEqual(got.filter((r) => r.redelivered).map((r) => r.id).sort(), [...held].sort(), "redelivered = true on exactly B's unacked messages");
  await waitUntil('A acked everything', async () => (await a.read('(s) => s.acked.length')) === N, 5000, 50);
  assert.deepEqual(await a.errors(), [], 'errors in A');
});

test('webkit: the hosting tab closed; the other tab hosts, no confirmed message lost', { skip, timeout: TEST_TIMEOUT }, async (t) => {
  const N = 30;
  const MORE = 10;
  const [a, c] = await twoTabs(t, 'host-closed', 'A', 'C');
  const hostBefore = await c.call('hostId');
  // Confirmed persistent messages from both tabs, then the host goes.
  const fromA = await a.call('publish', QUEUE, N, 'a');
  const fromC = await c.call('publish', QUEUE, N, 'c');
  assert.equal(fromA.confirmed.length + fromC.confirmed.length, 2 * N, 'every publish confirmed');
  assert.deepEqual(await a.errors(), [], 'errors in A');

  const closedAt = Date.now();
  await a.close(c);
  await waitUntil('C to host', async () => (await c.read('(s) => s.hostingSince')) != null, 10_000, 20);
  const hostingSince = await c.read('(s) => s.hostingSince');
  await waitUntil('a failover event in C', async () => (await c.read('(s) => s.failovers.length')) > 0, 5000, 20);
  const failovers = await c.read('(s) => s.failovers');
  assert.equal(failovers.length, 1, `one failover event: ${JSON.stringify(failovers)}`);
  assert.equal(failovers[0].hosting, true, "C's failover event says hosting: true");
  assert.notEqual(await c.call('hostId'), hostBefore, 'stats().host changed with the failover');

  const more = await c.call('publish', QUEUE, MORE, 'x');
  assert.equal(more.confirmed.length, MORE, 'publishes to the new host confirmed');
  await c.call('consume', QUEUE, { prefetch: 10, ackDelay: 0 });
  const confirmed = [...fromA.confirmed, ...fromC.confirmed, ...more.confirmed];
  await waitUntil(
    async () => `C to get all ${confirmed.length} (has ${await c.read('(s) => s.received.length')})`,
    async () => (await c.read('(s) => s.received.length')) >= confirmed.length,
    10_000,
    50,
  );
  await sleep(200);
  const got = await c.read('(s) => s.received');
  console.log(
    `webkit host closed: C hosts ${hostingSince - closedAt} ms after Node asked to close A's window; ` +
      `${confirmed.length} confirmed, ${got.length} delivered, ${got.filter((r) => r.redelivered).length} redelivered`,
  );
  const have = new Set(got.map((r) => r.id));
  assert.deepEqual(confirmed.filter((id) => !have.has(id)), [], 'confirmed messages lost');
  assert.deepEqual(repeated(got.map((r) => r.id)), [], 'ids delivered more than once');
  await drained(c);
  assert.deepEqual(await c.errors(), [], 'errors in C');
});
