// The mesh, end to end in headless Chromium: every tab and worker of an origin that connects to
// one broker name joins ONE broker. The first context to take the Web Lock `tabbit:<name>:host`
// hosts it; the others are clients over BroadcastChannel('tabbit:<name>'). When a client dies its
// unacked messages go back to the queue; when the host dies another context hosts within 1 s and
// the clients' channels are rebuilt, losing no confirmed persistent message.
//
// The API these tests assume, beyond amqplib's (connect({name}) → IndexedDB storage):
//   conn.hosting                      boolean getter: this context hosts the broker now
//   conn.on('failover', info)         in a context that was a client, after the host died, a new
//                                     host took over and this context's channels were rebuilt;
//                                     info = {hosting: boolean, cancelled: string[]} (consumer tags
//                                     that could not be restored; their callbacks also get null)
//   (await conn.stats()).host         string: the hosting context's id
//
// The page side is tests/node/mesh-page.js (join, consume, publish, ..., state in __state); the
// workers of the worker test are tests/node/mesh-worker.js and tests/node/mesh-shared-worker.js.
// Each test has its own browser context (BroadcastChannel and Web Locks are per storage
// partition) and its own broker name. The chaos test prints its seed: MESH_SEED=<seed> replays
// its random choices (not its timing), MESH_SCHEDULES=<n> sets how many schedules (default 20).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { BLANK, CHROMIUM, CHROMIUM_ARGS, TEST_TIMEOUT, crashPage, openPage, prng, useServerAndBrowser, waitUntil } from './browser.mjs';

const QUEUE = 'jobs';
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

let server;
let browser;
useServerAndBrowser((s, b) => ([server, browser] = [s, b]));

// ---- helpers --------------------------------------------------------------------------------

/** A fresh browser context (one storage partition) for one test or schedule, closed after it. */
async function newContext(t) {
  const context = await browser.browser.newContext();
  t?.after(() => context.close().catch(() => {}));
  return context;
}

let names = 0;
/** A broker name no other test uses. */
const brokerName = (tag) => `mesh-${tag}-${Date.now()}-${++names}`;


/** How often each id occurs in `ids`: ids occurring more than once, with their counts. */
function repeated(ids) {
  const counts = new Map();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return [...counts].filter(([, n]) => n > 1);
}

/**
 * One tab in the mesh: a page on the blank test page that imported tests/node/mesh-page.js and
 * joined broker `name`. `call(fn, ...args)` runs mesh[fn](...args) in the page, `state()` reads
 * its __state. `errors` records the page's console errors, exceptions and rejections.
 */
class Tab {
  constructor(label, name, page, errors) {
    this.label = label;
    this.name = name;
    this.page = page;
    this.errors = errors;
    this.crashed = false;
    this.joined = null; // what join() answered: {hosting}
  }

  join() {
    return this.page.evaluate(async (name) => (await import('/tests/node/mesh-page.js')).join(name), this.name);
  }

  call(fn, ...args) {
    return this.page.evaluate(({ fn, args }) => globalThis.mesh[fn](...args), { fn, args });
  }

  state() {
    return this.page.evaluate(() => globalThis.__state);
  }

  /** Reads a part of the state: `pick` runs in the page with the state as argument. */
  read(pick) {
    return this.page.evaluate(`(${pick})(globalThis.__state)`);
  }

  hosting() {
    return this.page.evaluate(() => globalThis.mesh.hosting());
  }

  /** Crashes the renderer (CDP Page.crash) and closes the page. */
  async crash() {
    this.crashed = true;
    await crashPage(this.page);
    await this.page.close().catch(() => {});
  }

  /**
   * Reloads the page and joins again: a new document, with empty state. `unloaded()` runs
   * between the two, when Node has had every report of the old document.
   */
  async reload(unloaded) {
    await this.page.reload();
    await unloaded?.();
    this.joined = await this.join();
  }
}

/**
 * Opens a tab in `context` and joins broker `name` in it. With `onReport`, the page's reports
 * (see mesh-page.js) come to onReport(tab, batch) from before it joins.
 */
async function openTab(context, name, label = 'tab', { onReport } = {}) {
  const { page, errors } = await openPage(context, server.url + BLANK);
  const tab = new Tab(label, name, page, errors);
  if (onReport) await page.exposeFunction('__meshReport', (batch) => onReport(tab, batch));
  tab.joined = await tab.join();
  return tab;
}

/** Waits until `tab` (the host) sees QUEUE with these counts ({ready, unacked, consumers}). */
async function waitQueue(tab, expected, timeout = 5000) {
  let counts;
  await waitUntil(
    () => `the queue as ${tab.label} sees it to be ${JSON.stringify(expected)}: ${JSON.stringify(counts)}`,
    async () => {
      counts = await tab.call('queueCounts', QUEUE);
      return JSON.stringify(counts) === JSON.stringify(expected);
    },
    timeout,
    20,
  );
}

/** Asserts that the tabs that did not crash had no page errors and no unexpected events (__state.errors). */
async function assertClean(tabs) {
  for (const tab of tabs.filter((x) => !x.crashed)) {
    assert.deepEqual(tab.errors, [], `errors in tab ${tab.label}`);
    assert.deepEqual(await tab.read((s) => s.errors), [], `unexpected events in tab ${tab.label} (__state.errors)`);
  }
}

// ---- 1. three tabs, one broker ------------------------------------------------------------

test('mesh: three tabs share one broker; deliveries go round-robin, once each, within prefetch', { timeout: TEST_TIMEOUT }, async (t) => {
  const N = 60;
  const context = await newContext(t);
  const name = brokerName('share');
  const a = await openTab(context, name, 'A');
  const b = await openTab(context, name, 'B');
  const c = await openTab(context, name, 'C');
  assert.equal(a.joined.hosting, true, 'A connected first: it hosts');
  assert.equal(b.joined.hosting, false, 'B is a client');
  assert.equal(c.joined.hosting, false, 'C is a client');
  const hosts = await Promise.all([a, b, c].map((tab) => tab.call('hostId')));
  assert.equal(typeof hosts[0], 'string', `stats().host is a string: ${JSON.stringify(hosts[0])}`);
  assert.deepEqual(hosts, [hosts[0], hosts[0], hosts[0]], 'every tab names the same host in stats()');

  await b.call('consume', QUEUE, { prefetch: 1, ackDelay: 10 });
  await c.call('consume', QUEUE, { prefetch: 1, ackDelay: 10 });
  await a.call('waitConsumers', QUEUE, 2);
  const sent = await a.call('publish', QUEUE, N, 'm');
  assert.deepEqual(sent.failed, [], 'publishes whose confirm failed');
  assert.equal(sent.confirmed.length, N, 'every publish confirmed');

  const delivered = async () => (await b.read((s) => s.received.length)) + (await c.read((s) => s.received.length));
  await waitUntil(async () => `${N} deliveries (have ${await delivered()})`, async () => (await delivered()) >= N);
  await sleep(200); // a duplicate would come now
  const [sb, sc] = await Promise.all([b.state(), c.state()]);
  const ids = [...sb.received, ...sc.received].map((r) => r.id);
  console.log(
    `mesh share: ${N} published by the host, B got ${sb.received.length}, C got ${sc.received.length}; ` +
      `most unacked at once: B ${sb.consumers[0].maxOutstanding}, C ${sc.consumers[0].maxOutstanding}`,
  );
  assert.deepEqual(repeated(ids), [], 'ids delivered more than once');
  assert.deepEqual([...ids].sort(), [...sent.confirmed].sort(), 'every message delivered, once');
  assert.ok(sb.received.length >= N / 3 && sc.received.length >= N / 3, `round-robin: B ${sb.received.length}, C ${sc.received.length}`);
  assert.equal(sb.consumers[0].maxOutstanding, 1, 'B never held more than prefetch (1) unacked');
  assert.equal(sc.consumers[0].maxOutstanding, 1, 'C never held more than prefetch (1) unacked');
  assert.deepEqual([...sb.received, ...sc.received].filter((r) => r.redelivered).map((r) => r.id), [], 'redelivered with no failure');
  await waitUntil('B and C acked everything', async () => (await b.read((s) => s.acked.length)) + (await c.read((s) => s.acked.length)) === N);
  await waitQueue(a, { ready: 0, unacked: 0, consumers: 2 });
  await assertClean([a, b, c]);
});

// ---- 2. a consumer tab crashes ------------------------------------------------------------

test('mesh: a consumer tab crashes; its unacked messages go to the other consumer, redelivered', { timeout: TEST_TIMEOUT }, async (t) => {
  const N = 40;
  const PREFETCH = 5;
  const context = await newContext(t);
  const name = brokerName('client-crash');
  const a = await openTab(context, name, 'A');
  const b = await openTab(context, name, 'B');
  const c = await openTab(context, name, 'C');
  assert.deepEqual([a.joined.hosting, b.joined.hosting, c.joined.hosting], [true, false, false], 'A hosts');

  await b.call('consume', QUEUE, { prefetch: PREFETCH, ack: false }); // holds what it gets
  await c.call('consume', QUEUE, { prefetch: PREFETCH, ackDelay: 5 });
  await a.call('waitConsumers', QUEUE, 2);
  const sent = await a.call('publish', QUEUE, N, 'm');
  assert.equal(sent.confirmed.length, N, 'every publish confirmed');

  await b.page.waitForFunction((n) => globalThis.__state.consumers[0].outstanding >= n, PREFETCH, { timeout: 10_000, polling: 10 });
  await sleep(100); // B must not get a 6th
  const held = (await b.state()).received;
  assert.equal(held.length, PREFETCH, `B holds prefetch (${PREFETCH}) unacked, no more`);
  const heldIds = held.map((r) => r.id);

  const crashedAt = Date.now();
  await b.crash();
  const got = async () => new Set(await c.read((s) => s.received.map((r) => r.id)));
  await waitUntil(
    async () => `C to receive all ${N} (has ${(await got()).size}; B held ${heldIds.join(' ')})`,
    async () => {
      const have = await got();
      return sent.confirmed.every((id) => have.has(id));
    },
    15_000,
  ).catch((e) => console.log(`mesh consumer crash: ${e.message}`)); // the assertions below say what is missing
  await sleep(200); // a duplicate would come now
  const sc = await c.state();
  const again = sc.received.filter((r) => heldIds.includes(r.id));
  console.log(
    `mesh consumer crash: B held ${heldIds.length} unacked (${heldIds.join(' ')}), C got them again ` +
      `${again.length ? Math.max(...again.map((r) => r.at)) - crashedAt : '(never)'} ms after the crash; C got ${sc.received.length} in all`,
  );
  const have = new Set(sc.received.map((r) => r.id));
  assert.deepEqual(sent.confirmed.filter((id) => !have.has(id)), [], 'confirmed messages C never got');
  assert.deepEqual(repeated(sc.received.map((r) => r.id)), [], 'ids delivered to C more than once');
  const byId = (x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0);
  assert.deepEqual(
    again.map((r) => [r.id, r.redelivered]).sort(byId),
    heldIds.map((id) => [id, true]).sort(byId),
    "B's unacked messages: redelivered to C, with redelivered = true",
  );
  assert.deepEqual(sc.received.filter((r) => !heldIds.includes(r.id) && r.redelivered).map((r) => r.id), [], 'redelivered = true on messages B never had');
  assert.ok(sc.consumers[0].maxOutstanding <= PREFETCH, `C held ${sc.consumers[0].maxOutstanding} unacked, prefetch ${PREFETCH}`);
  await waitUntil('C acked everything', async () => (await c.read((s) => s.acked.length)) === N);
  await waitQueue(a, { ready: 0, unacked: 0, consumers: 1 });
  assert.equal(await a.hosting(), true, 'A still hosts');
  await assertClean([a, b, c]);
});

// ---- 3. the host tab crashes --------------------------------------------------------------

test('mesh: the host tab crashes mid-stream; another tab hosts within 1 s, nothing lost, no duplicates', { timeout: TEST_TIMEOUT }, async (t) => {
  const N = 200;
  const MORE = 50;
  const PREFETCH = 10;
  const CRASH_AFTER = 60; // acks by B and C before the crash
  const context = await newContext(t);
  const name = brokerName('host-crash');
  const a = await openTab(context, name, 'A');
  const b = await openTab(context, name, 'B');
  const c = await openTab(context, name, 'C');
  assert.deepEqual([a.joined.hosting, b.joined.hosting, c.joined.hosting], [true, false, false], 'A hosts');
  const hostBefore = await b.call('hostId');

  const first = await a.call('publish', QUEUE, N, 'a');
  assert.deepEqual(first.failed, [], 'publishes whose confirm failed');
  assert.equal(first.confirmed.length, N, 'every publish confirmed');
  // One message at a time, 5 ms each: the stream lasts ~0.5 s.
  await b.call('consume', QUEUE, { prefetch: PREFETCH, ackDelay: 5, serial: true });
  await c.call('consume', QUEUE, { prefetch: PREFETCH, ackDelay: 5, serial: true });

  const acked = async () => (await b.read((s) => s.acked.length)) + (await c.read((s) => s.acked.length));
  await waitUntil(`B and C to ack ${CRASH_AFTER}`, async () => (await acked()) >= CRASH_AFTER);
  const atCrash = await Promise.all([b, c].map((tab) => tab.read((s) => ({ acked: s.acked.length, held: s.consumers[0].outstanding }))));
  const crashSent = Date.now();
  await a.crash();
  const crashSeen = Date.now();

  // Failover: B or C hosts, and both rebuild their channels.
  const newHost = await waitUntil(
    'B or C to host after the crash',
    async () => (await b.read((s) => s.hostingSince)) ? b : (await c.read((s) => s.hostingSince)) ? c : null,
    5000,
    5,
  );
  const other = newHost === b ? c : b;
  const hostingSince = await newHost.read((s) => s.hostingSince);
  await waitUntil('a failover event in B and in C', async () => (await b.read((s) => s.failovers.length)) > 0 && (await c.read((s) => s.failovers.length)) > 0, 5000);
  const failoverMs = hostingSince - crashSent;

  // The new host works: B publishes more.
  const more = await b.call('publish', QUEUE, MORE, 'b');
  const confirmed = [...first.confirmed, ...more.confirmed];
  const delivered = async () => new Set([...(await b.read((s) => s.received.map((r) => r.id))), ...(await c.read((s) => s.received.map((r) => r.id)))]);
  await waitUntil(
    async () => {
      const got = await delivered();
      return `every confirmed id delivered (${confirmed.filter((id) => !got.has(id)).length} of ${confirmed.length} missing)`;
    },
    async () => {
      const got = await delivered();
      return confirmed.every((id) => got.has(id));
    },
    15_000,
  ).catch((e) => console.log(`mesh host crash: ${e.message}`)); // the figures and assertions below say what is missing
  await sleep(300); // a duplicate would come now
  const [sb, sc] = await Promise.all([b.state(), c.state()]);
  const deliveries = [...sb.received, ...sc.received];
  const got = new Set(deliveries.map((r) => r.id));
  const dupes = repeated(deliveries.map((r) => r.id));
  const missing = confirmed.filter((id) => !got.has(id));
  console.log(
    `mesh host crash: ${newHost.label} hosts ${failoverMs} ms after the crash was sent (${hostingSince - crashSeen} ms after ` +
      `Node saw it); at the crash B/C had acked ${atCrash[0].acked}/${atCrash[1].acked} and held ${atCrash[0].held}/${atCrash[1].held}; ` +
      `${N} + ${more.confirmed.length} confirmed, ${got.size} delivered (${deliveries.length} deliveries, ` +
      `${deliveries.filter((r) => r.redelivered).length} redelivered), missing ${missing.length}, duplicates ${dupes.length}` +
      (dupes.length ? ` (${dupes.slice(0, 10).map(([id, n]) => `${id}×${n}`).join(' ')})` : ''),
  );

  assert.ok(failoverMs <= 1000, `another tab hosts ${failoverMs} ms after the host crashed: more than 1000 ms`);
  assert.equal(await newHost.hosting(), true, `${newHost.label} hosts`);
  assert.equal(await other.hosting(), false, `${other.label} does not host`);
  for (const s of [sb, sc]) {
    assert.equal(s.failovers.length, 1, `one failover event: ${JSON.stringify(s.failovers)}`);
    assert.deepEqual(s.failovers[0].cancelled, [], 'consumers of a durable queue are restored, none cancelled');
    assert.ok(s.consumers[0].maxOutstanding <= PREFETCH, `prefetch ${PREFETCH} respected: held ${s.consumers[0].maxOutstanding}`);
  }
  assert.equal((newHost === b ? sb : sc).failovers[0].hosting, true, "the new host's failover event says hosting: true");
  assert.equal((newHost === b ? sc : sb).failovers[0].hosting, false, "the other's failover event says hosting: false");
  const hostsAfter = await Promise.all([b, c].map((tab) => tab.call('hostId')));
  assert.equal(hostsAfter[0], hostsAfter[1], 'B and C name the same host in stats()');
  assert.notEqual(hostsAfter[0], hostBefore, 'stats().host changed with the failover');

  assert.deepEqual(more.failed, [], 'publishes to the new host whose confirm failed');
  assert.equal(more.confirmed.length, MORE, 'every publish to the new host confirmed');
  assert.deepEqual(missing, [], 'confirmed messages never delivered');
  assert.deepEqual(dupes, [], 'ids delivered more than once to the live consumers B and C');
  await waitUntil('B and C acked everything', async () => (await acked()) === got.size);
  await waitQueue(newHost, { ready: 0, unacked: 0, consumers: 2 });
  await assertClean([a, b, c]);
});

// Bug 2 of the README's fault schedules: a client that is busy when the host dies (a starved
// tab: here a 2.5 s loop) re-announces its channels late. The new host waits for every live
// client (each holds its client lock) before anything flows, so no other consumer gets a message
// the late one still holds, and its acks are taken.
test('mesh: a client busy for 2.5 s when the host crashes gets no duplicate of what it holds', { timeout: TEST_TIMEOUT }, async (t) => {
  const N = 40;
  const BUSY_MS = 2500;
  const context = await newContext(t);
  const name = brokerName('late-client');
  const a = await openTab(context, name, 'A');
  const b = await openTab(context, name, 'B'); // next in line for the host lock
  const c = await openTab(context, name, 'C');
  assert.deepEqual([a.joined.hosting, b.joined.hosting, c.joined.hosting], [true, false, false], 'A hosts');
  // C takes 5 and holds them for 4 s; B acks at once.
  await c.call('consume', QUEUE, { prefetch: 5, ackDelay: 4000 });
  await a.call('waitConsumers', QUEUE, 1);
  const sent = await a.call('publish', QUEUE, N, 'm');
  assert.equal(sent.confirmed.length, N, 'every publish confirmed');
  await waitUntil('C to hold 5', async () => (await c.read((s) => s.consumers[0].outstanding)) === 5);
  await b.call('consume', QUEUE, { prefetch: 5, ackDelay: 5 });
  const held = await c.read((s) => s.received.map((r) => r.id));
  // C's main thread is busy from now on for BUSY_MS: it sees the new host only after that.
  const busy = c.page.evaluate((ms) => {
    const end = Date.now() + ms;
    while (Date.now() < end);
  }, BUSY_MS);
  await sleep(100);
  await a.crash();
  await waitUntil('B to host', async () => (await b.read((s) => s.hostingSince)) != null, 5000, 5);
  await busy;
  const delivered = async () => [...(await b.read((s) => s.received.map((r) => r.id))), ...(await c.read((s) => s.received.map((r) => r.id)))];
  await waitUntil(
    async () => `every confirmed id delivered (${new Set(await delivered()).size} of ${N})`,
    async () => new Set(await delivered()).size === N,
    15_000,
  );
  await sleep(300); // a duplicate would come now
  const [sb, sc] = await Promise.all([b.state(), c.state()]);
  const toB = new Set(sb.received.map((r) => r.id));
  console.log(
    `mesh late client: C held ${held.length} (${held.join(' ')}) through a ${BUSY_MS} ms stall; B got ${sb.received.length}, ` +
      `C ${sc.received.length}; C's failover ${JSON.stringify(sc.failovers)}`,
  );
  assert.deepEqual(held.filter((id) => toB.has(id)), [], 'messages C still held, delivered to B as well');
  assert.deepEqual(repeated([...sb.received, ...sc.received].map((r) => r.id)), [], 'ids delivered more than once');
  await waitUntil('C acked what it held', async () => (await c.read((s) => s.acked.length)) === sc.received.length, 10_000);
  await waitQueue(b, { ready: 0, unacked: 0, consumers: 2 });
  await assertClean([a, b, c]);
});

// ---- 4. workers ---------------------------------------------------------------------------

test('mesh: a dedicated worker publishes, a shared worker consumes, the page hosts', { timeout: TEST_TIMEOUT }, async (t) => {
  const N = 100;
  const context = await newContext(t);
  const name = brokerName('workers');
  const page = await openTab(context, name, 'page');
  assert.equal(page.joined.hosting, true, 'the page connected first: it hosts');

  // The shared worker consumes; the page collects what the workers post in __workers.
  await page.page.evaluate(
    ({ name, queue }) => {
      const w = (globalThis.__workers = { shared: [], dedicated: [], errors: [] });
      const shared = new SharedWorker('/tests/node/mesh-shared-worker.js', { type: 'module', name: `consumer-${name}` });
      shared.onerror = (e) => w.errors.push(`shared worker: ${e.message ?? 'failed to start'}`);
      shared.port.onmessage = ({ data }) => (data.type === 'error' ? w.errors.push(`shared worker: ${data.message}`) : w.shared.push(data));
      shared.port.start();
      shared.port.postMessage({ name, queue, prefetch: 10 });
      globalThis.__sharedWorker = shared;
    },
    { name, queue: QUEUE },
  );
  await page.page.waitForFunction(() => __workers.errors.length > 0 || __workers.shared.some((m) => m.type === 'consuming'), null, { timeout: 15_000 });
  assert.deepEqual(await page.page.evaluate(() => __workers.errors), [], 'errors in the shared worker');
  await page.call('waitConsumers', QUEUE, 1);

  // The dedicated worker publishes.
  await page.page.evaluate(
    ({ name, queue, count }) => {
      const w = globalThis.__workers;
      const worker = new Worker('/tests/node/mesh-worker.js', { type: 'module' });
      worker.onerror = (e) => w.errors.push(`dedicated worker: ${e.message ?? 'failed to start'}`);
      worker.onmessage = ({ data }) => (data.type === 'error' ? w.errors.push(`dedicated worker: ${data.message}`) : w.dedicated.push(data));
      worker.postMessage({ name, queue, count, prefix: 'w' });
      globalThis.__dedicatedWorker = worker;
    },
    { name, queue: QUEUE, count: N },
  );
  await page.page.waitForFunction(
    (n) =>
      __workers.errors.length > 0 ||
      (__workers.dedicated.some((m) => m.type === 'published') && __workers.shared.filter((m) => m.type === 'received').length >= n),
    N,
    { timeout: 20_000 },
  );
  await sleep(200); // a duplicate would come now
  const w = await page.page.evaluate(() => __workers);
  assert.deepEqual(w.errors, [], 'errors in the workers');
  const published = w.dedicated.find((m) => m.type === 'published');
  const received = w.shared.filter((m) => m.type === 'received');
  console.log(`mesh workers: the dedicated worker published ${published.confirmed.length} confirmed, the shared worker received ${received.length}`);
  assert.equal(w.dedicated.find((m) => m.type === 'joined')?.hosting, false, 'the dedicated worker is a client');
  assert.equal(w.shared.find((m) => m.type === 'joined')?.hosting, false, 'the shared worker is a client');
  assert.deepEqual(published.failed, [], 'publishes whose confirm failed');
  assert.equal(published.confirmed.length, N, 'every publish confirmed');
  assert.deepEqual(repeated(received.map((m) => m.id)), [], 'ids delivered more than once');
  assert.deepEqual(received.map((m) => m.id).sort(), [...published.confirmed].sort(), 'every message delivered to the shared worker');
  assert.ok(received.every((m) => m.text === `${m.id} from a dedicated worker` && m.redelivered === false), 'contents and redelivered flags');
  assert.equal(w.shared.some((m) => m.type === 'cancelled'), false, 'the consumer was cancelled');
  assert.equal(await page.hosting(), true, 'the page still hosts');
  await assertClean([page]);
});

// ---- 5. chaos -----------------------------------------------------------------------------


/**
 * What Node knows of one schedule, from the pages' reports. Consumers report a delivery, then
 * 'acking' (and wait until Node has it) before they ack, then 'acked'. So an id not reported as
 * 'acking' was never acked by anyone; an id reported 'acking' by a tab that then died, and not
 * 'acked', may or may not have been acked (maybeAcked).
 */
class Ledger {
  confirmed = new Set();
  failed = 0;
  deliveries = new Map(); // id → [{tab, redelivered}]
  acked = new Set();
  maybeAcked = new Set();
  cancelled = [];
  failovers = [];
  live = new Map(); // tab → {acking: Set}

  onReport = (tab, batch) => {
    const mine = this.live.get(tab) ?? { acking: new Set() };
    this.live.set(tab, mine);
    for (const [kind, data] of batch) {
      if (kind === 'confirmed') this.confirmed.add(data);
      else if (kind === 'failed') this.failed++;
      else if (kind === 'delivered') {
        const list = this.deliveries.get(data.id) ?? [];
        list.push({ tab: tab.label, redelivered: data.redelivered });
        this.deliveries.set(data.id, list);
      } else if (kind === 'acking') mine.acking.add(data);
      else if (kind === 'acked') {
        mine.acking.delete(data);
        this.acked.add(data);
      } else if (kind === 'cancelled') this.cancelled.push(`${tab.label}: ${data}`);
      else if (kind === 'failover') this.failovers.push({ tab: tab.label, ...data });
    }
  };

  /** The tab's document is gone (crash or reload): what it was acking may have been acked. */
  died(tab) {
    for (const id of this.live.get(tab)?.acking ?? []) this.maybeAcked.add(id);
    this.live.delete(tab);
  }
}

/** One chaos schedule in its own browser context: 3 tabs, 2-3 random actions, then a drain. */
async function runSchedule(index, seed) {
  const rng = prng(seed);
  const began = Date.now();
  const context = await newContext();
  const name = brokerName(`chaos${index}`);
  const total = 100 + rng.int(151);
  const ledger = new Ledger();
  const tabs = []; // every tab opened, for the error check
  const log = [];
  const slots = [0, 1, 2].map((i) => ({ index: i, role: 'consumer', tab: null, lives: 0 }));
  const publisher = slots[rng.int(3)];
  publisher.role = 'publisher';
  const failoverTimes = [];

  /** Starts the slot's role in its tab; random choices are drawn before any await. */
  const startRole = (slot) => {
    if (slot.role === 'publisher') {
      const count = Math.max(20, total - ledger.confirmed.size);
      const prefix = `s${index}.${slot.lives}-`;
      return slot.tab.call('startPublishing', QUEUE, count, prefix, { window: 20, interval: 5, batch: 1 });
    }
    const options = { prefetch: 1 + rng.int(10), ackDelay: rng.int(10), reportFirst: true };
    return slot.tab.call('consume', QUEUE, options);
  };
  const launch = async (slot) => {
    slot.lives++;
    const label = `${slot.role === 'publisher' ? 'P' : 'C'}${slot.index}.${slot.lives}`;
    slot.tab = await openTab(context, name, label, { onReport: ledger.onReport });
    tabs.push(slot.tab);
    await startRole(slot);
  };
  const hostSlot = (timeout) =>
    waitUntil('a tab that hosts', async () => {
      for (const slot of slots) if (slot.tab && !slot.tab.crashed && (await slot.tab.read((s) => s.hosting === true).catch(() => false))) return slot;
      return null;
    }, timeout, 5);

  try {
    await launch(slots[0]); // the host
    await Promise.all([launch(slots[1]), launch(slots[2])]);

    const actions = 2 + rng.int(2);
    for (let k = 0; k < actions; k++) {
      await sleep(100 + rng.int(300));
      const kind = rng.pick(['crash-consumer', 'crash-host', 'reload']);
      const pickIndex = rng.int(3); // drawn now, whatever the candidates turn out to be
      const at = Date.now() - began;
      const host = await hostSlot(3000);
      if (kind === 'reload') {
        const slot = slots[pickIndex];
        await slot.tab.reload(() => ledger.died(slot.tab));
        slot.lives++;
        slot.tab.label = `${slot.role === 'publisher' ? 'P' : 'C'}${slot.index}.${slot.lives}`;
        await startRole(slot);
        log.push(`${at}ms reload ${slot.index}${slot === host ? ' (host)' : ''}`);
        continue;
      }
      let slot;
      if (kind === 'crash-host') slot = host;
      else {
        const candidates = slots.filter((s) => s.role === 'consumer' && s !== host);
        slot = candidates[pickIndex % candidates.length];
      }
      const crashSent = Date.now();
      await slot.tab.crash();
      ledger.died(slot.tab);
      let note = '';
      if (slot === host) {
        const next = await hostSlot(3000);
        const ms = (await next.tab.read((s) => s.hostingSince)) - crashSent;
        failoverTimes.push(ms);
        note = ` → slot ${next.index} hosts after ${ms} ms`;
      }
      await launch(slot);
      log.push(`${at}ms ${kind} ${slot.index} (${slot.role}${slot.role === 'publisher' && slot === host ? ', host' : ''})${note}`);
    }

    // The publisher finishes (failed confirms included), the consumers stop, a fresh consumer drains.
    const run = await waitUntil(
      async () => `the publisher to finish: ${JSON.stringify(await publisher.tab.read((s) => s.publishes.at(-1)).catch((e) => e.message))}`,
      () => publisher.tab.read((s) => (s.publishes.at(-1)?.done ? s.publishes.at(-1) : null)),
      20_000,
      20,
    );
    const stillHeld = []; // what live consumers had not acked 5 s after their cancel
    for (const slot of slots) if (slot.role === 'consumer') stillHeld.push(...(await slot.tab.call('stopConsuming')));
    const drain = await openTab(context, name, 'drain', { onReport: ledger.onReport });
    tabs.push(drain);
    await drain.call('consume', QUEUE, { prefetch: 50, reportFirst: true });
    const settled = await drain.call('settle', QUEUE, { quiet: 300, timeout: 10_000 });
    await drain.call('stopConsuming');

    const lost = [...ledger.confirmed].filter((id) => !ledger.acked.has(id) && !ledger.maybeAcked.has(id));
    const uncertain = [...ledger.maybeAcked].filter((id) => !ledger.acked.has(id));
    const multi = [...ledger.deliveries].filter(([, list]) => list.length > 1);
    const redelivered = [...ledger.deliveries.values()].flat().filter((d) => d.redelivered).length;
    const channelErrors = [];
    for (const tab of tabs.filter((x) => !x.crashed)) channelErrors.push(...(await tab.read((s) => s.errors)).map((e) => `${tab.label}: ${e}`));
    const summary =
      `schedule ${index} (seed ${seed}), ${((Date.now() - began) / 1000).toFixed(1)} s: ${total} to publish from slot ${publisher.index}; ` +
      `${log.join('; ')}; confirmed ${ledger.confirmed.size}, failed ${ledger.failed}, last run pending ${run.pending}, ` +
      `acked ${ledger.acked.size}, maybe acked by a dead tab ${uncertain.length}, delivered more than once ${multi.length}, ` +
      `redelivered ${redelivered}, consumers cancelled ${ledger.cancelled.length}, channel errors ${channelErrors.length}, ` +
      `still held by stopped consumers ${stillHeld.reduce((a, b) => a + b, 0)}, drained: ${settled.drained} ${JSON.stringify(settled.counts)}, ` +
      `lost ${lost.length}`;
    console.log(summary);
    if (channelErrors.length) console.log(`  channel errors: ${channelErrors.slice(0, 5).join(' | ')}`);

    const where = (id) => `${id}: delivered to ${JSON.stringify(ledger.deliveries.get(id) ?? [])}`;
    assert.deepEqual(lost.slice(0, 20).map(where), [], `confirmed, never acked, and not drained: lost (${lost.length}). ${summary}`);
    for (const tab of tabs.filter((x) => !x.crashed)) assert.deepEqual(tab.errors, [], `errors in tab ${tab.label}. ${summary}`);
    return { confirmed: ledger.confirmed.size, failed: ledger.failed, duplicates: multi.length, uncertain: uncertain.length, failoverTimes };
  } catch (e) {
    e.message += `\n  in chaos schedule ${index} (seed ${seed}, publisher slot ${publisher.index}) after ${Date.now() - began} ms; actions: ${log.join('; ') || 'none yet'}`;
    throw e;
  } finally {
    await context.close().catch(() => {});
  }
}

const SCHEDULES = Number(process.env.MESH_SCHEDULES || 20);

test('mesh: chaos: crashes and reloads of hosts and consumers while a tab publishes lose no confirmed message', { timeout: Math.max(TEST_TIMEOUT, SCHEDULES * 10_000) }, async () => {
  const seed = process.env.MESH_SEED ? Number(process.env.MESH_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`mesh chaos: seed ${seed} (MESH_SEED=${seed} replays the random choices), ${SCHEDULES} schedules`);
  const began = Date.now();
  const totals = { confirmed: 0, failed: 0, duplicates: 0, uncertain: 0, failoverTimes: [] };
  for (let i = 0; i < SCHEDULES; i++) {
    const r = await runSchedule(i, (seed + Math.imul(i, 0x9e3779b9)) >>> 0);
    for (const k of ['confirmed', 'failed', 'duplicates', 'uncertain']) totals[k] += r[k];
    totals.failoverTimes.push(...r.failoverTimes);
  }
  const slowest = totals.failoverTimes.length ? Math.max(...totals.failoverTimes) : 'n/a';
  console.log(
    `mesh chaos: ${SCHEDULES} schedules in ${((Date.now() - began) / 1000).toFixed(1)} s, ${totals.confirmed} confirmed, ` +
      `${totals.failed} confirms failed, lost 0, delivered more than once ${totals.duplicates}, maybe acked by a dead tab ` +
      `${totals.uncertain}, ${totals.failoverTimes.length} host crashes, slowest failover ${slowest} ms`,
  );
});

// ---- 6. page lifecycle ----------------------------------------------------------------------

test('mesh: navigating the host tab away hands hosting over; back from the bfcache, its channels close with 320', { timeout: TEST_TIMEOUT }, async (t) => {
  // Playwright turns the back/forward cache off by default; this browser has it on.
  const withCache = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    ignoreDefaultArgs: ['--disable-back-forward-cache'],
  });
  t.after(() => withCache.close());
  const context = await withCache.newContext();
  const name = brokerName('away');
  const a = await openTab(context, name, 'A');
  const b = await openTab(context, name, 'B');
  assert.equal(a.joined.hosting, true, 'A hosts');
  await a.page.evaluate(async () => {
    const ch = await globalThis.mesh.conn().createChannel();
    globalThis.__closed = [];
    ch.on('error', (e) => globalThis.__closed.push(e.code));
    await ch.assertQueue('kept', { durable: true });
  });

  const left = Date.now();
  await a.page.goto(`${server.url}${BLANK}?away`);
  await waitUntil('B to host after A navigated away', () => b.hosting(), 5000);
  const handover = Date.now() - left;

  await a.page.goBack({ waitUntil: 'commit' }); // a page restored from the bfcache fires no load event
  await a.page.waitForFunction(() => document.readyState === 'complete');
  const back = await a.page.evaluate(() => ({
    restored: Array.isArray(globalThis.__closed), // a reloaded page has no such state
    closed: globalThis.__closed ?? null,
    hosting: globalThis.mesh?.conn?.().hosting ?? null,
    why: JSON.stringify(performance.getEntriesByType('navigation')[0]?.notRestoredReasons?.reasons ?? null),
  }));
  console.log(`mesh navigate away: B hosts ${handover} ms after A left; A ${back.restored ? 'came back from the bfcache' : `was reloaded (not kept in the bfcache: ${back.why})`}`);
  assert.ok(back.restored, `A was kept in the back/forward cache (else this test shows nothing of it): ${back.why}`);
  assert.deepEqual(back.closed, [320], "the restored page's channel closed with CONNECTION_FORCED");
  assert.equal(back.hosting, false, 'the restored page no longer hosts');
  // The broker goes on in B, with the durable queue A declared.
  const counts = await b.call('queueCounts', 'kept');
  assert.deepEqual(counts, { ready: 0, unacked: 0, consumers: 0 });
  assert.deepEqual(b.errors, []);
});

// ---- 7. what dies with its context ------------------------------------------------------------

test("mesh: a client's exclusive queue goes with it; after a host crash a client's own transient topology is declared again, the dead host's is gone and its consumers are told", { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await newContext(t);
  const name = brokerName('transient');
  const a = await openTab(context, name, 'A');
  const b = await openTab(context, name, 'B');
  const c = await openTab(context, name, 'C');
  // C owns an exclusive queue. A (the host) declares a transient queue and a transient
  // exchange; B declares a transient queue of its own, binds it to A's exchange and to
  // amq.topic, and consumes A's queue, its own and a durable one.
  await c.page.evaluate(async () => {
    const ch = await globalThis.mesh.conn().createChannel();
    await ch.assertQueue('mine', { exclusive: true });
  });
  await a.page.evaluate(async () => {
    const ch = await globalThis.mesh.conn().createChannel();
    await ch.assertQueue('hosts', { durable: false });
    await ch.assertExchange('hosts-x', 'fanout', { durable: false });
  });
  const tags = await b.page.evaluate(async () => {
    const ch = await globalThis.mesh.conn().createChannel();
    globalThis.__nulls = [];
    globalThis.__got = [];
    await ch.assertQueue('temp', { durable: false });
    await ch.assertQueue('kept', { durable: true });
    await ch.bindQueue('temp', 'hosts-x', '');
    await ch.bindQueue('temp', 'amq.topic', 'b.#');
    const on = (q) => (m) => (m === null ? globalThis.__nulls.push(q) : globalThis.__got.push(`${q}:${new TextDecoder().decode(m.content)}`));
    const hosts = await ch.consume('hosts', on('hosts'), { noAck: true });
    const temp = await ch.consume('temp', on('temp'), { noAck: true });
    const kept = await ch.consume('kept', on('kept'), { noAck: true });
    return [hosts.consumerTag, temp.consumerTag, kept.consumerTag];
  });
  assert.ok(await a.call('queueCounts', 'mine'), 'A sees C\'s exclusive queue');

  await c.crash();
  await waitUntil("C's exclusive queue to go with C", async () => (await a.call('queueCounts', 'mine')) === null, 5000);

  await a.crash();
  await waitUntil('B to host', () => b.hosting(), 5000);
  await waitUntil('B to be told of the failover', async () => (await b.state()).failovers.length === 1, 5000);
  const { failovers } = await b.state();
  const nulls = await b.page.evaluate(() => globalThis.__nulls);
  assert.deepEqual(failovers[0].cancelled, [tags[0]], 'the consumer of the queue only the dead host declared is listed as cancelled');
  assert.deepEqual(
    failovers[0].notRestored,
    [{ what: "binding of queue 'temp' to exchange 'hosts-x' with pattern ''", code: 404 }],
    'the binding to the exchange only the dead host declared could not be restored, and B is told why',
  );
  assert.deepEqual(nulls, ['hosts'], 'its callback got null; the others go on');
  assert.equal(await b.call('queueCounts', 'hosts'), null, 'the dead host\'s transient queue is gone');
  assert.deepEqual(await b.call('queueCounts', 'temp'), { ready: 0, unacked: 0, consumers: 1 }, 'B\'s own transient queue is back, consumed');
  assert.deepEqual(await b.call('queueCounts', 'kept'), { ready: 0, unacked: 0, consumers: 1 });
  // B's binding of its transient queue to amq.topic came back with it.
  await b.page.evaluate(async () => {
    const ch = await globalThis.mesh.conn().createChannel();
    ch.publish('amq.topic', 'b.news', new TextEncoder().encode('after'));
  });
  await waitUntil('the message published after the failover to reach temp', async () => (await b.page.evaluate(() => globalThis.__got)).includes('temp:after'), 5000);
  await assertClean([b]);
});

// ---- 8. the management view ----------------------------------------------------------------

test('mesh: stats() from a client lists contexts with labels, exchanges, bindings, totals and rates; peek() shows without consuming', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await newContext(t);
  const name = brokerName('stats');
  const open = async (label) => {
    const { page, errors } = await openPage(context, server.url + BLANK);
    await page.evaluate(
      async ({ name, label }) => {
        const { connect } = await import('/pkg/index.js');
        globalThis.conn = await connect({ name, label });
        globalThis.ch = await globalThis.conn.createChannel();
      },
      { name, label },
    );
    return { page, errors };
  };
  const host = await open('host tab');
  const client = await open('client tab');
  const s = await client.page.evaluate(async () => {
    const { ch, conn } = globalThis;
    await ch.assertExchange('logs', 'topic', { durable: true });
    await ch.assertQueue('errors', { durable: true });
    await ch.bindQueue('errors', 'logs', '*.error');
    await conn.stats(); // a first sample for the rates
    for (let i = 0; i < 5; i++) ch.publish('logs', 'auth.error', `m${i}`, { headers: { n: i } });
    await new Promise((ok) => setTimeout(ok, 400));
    const stats = await conn.stats();
    const peeked = await conn.peek('errors', 3);
    const after = await conn.stats();
    return {
      stats,
      peeked: peeked.map((m) => [new TextDecoder().decode(m.content), m.fields.routingKey, m.properties.headers.n]),
      readyAfter: after.queues.find((q) => q.name === 'errors').ready,
    };
  });
  const { stats } = s;
  assert.equal(stats.hosting, false);
  assert.deepEqual(stats.contexts.map((c) => [c.label, c.hosting, c.self, c.connections, c.channels]).sort(), [
    ['client tab', false, true, 1, 1],
    ['host tab', true, false, 1, 1],
  ]);
  const logs = stats.exchanges.find((x) => x.name === 'logs');
  assert.deepEqual([logs.type, logs.durable], ['topic', true]);
  assert.ok(stats.exchanges.some((x) => x.name === ''), 'the default exchange is listed');
  assert.deepEqual(stats.bindings, [
    { source: 'logs', destination: 'errors', destinationType: 'queue', routingKey: '*.error', arguments: {} },
  ]);
  assert.equal(stats.totals.published, 5);
  assert.ok(stats.rates.published > 0, `a publish rate: ${JSON.stringify(stats.rates)}`);
  assert.deepEqual(s.peeked, [['m0', 'auth.error', 0], ['m1', 'auth.error', 1], ['m2', 'auth.error', 2]]);
  assert.equal(s.readyAfter, 5, 'peek consumed nothing');
  assert.deepEqual([...host.errors, ...client.errors], []);
});

// ---- 9. a panic ---------------------------------------------------------------------------

test('mesh: a panic in the host fails its connections with 541, another tab hosts, and connect() starts afresh', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await newContext(t);
  const name = brokerName('panic');
  const open = async () => {
    const { page, errors } = await openPage(context, server.url + BLANK);
    await page.evaluate(async (name) => {
      const { connect } = await import('/pkg/index.js');
      globalThis.events = [];
      globalThis.conn = await connect({ name });
      globalThis.ch = await globalThis.conn.createConfirmChannel();
      globalThis.conn.on('error', (e) => globalThis.events.push(`connection error ${e.code}`));
      globalThis.conn.on('close', () => globalThis.events.push('connection close'));
      globalThis.ch.on('error', (e) => globalThis.events.push(`channel error ${e.code}`));
      await globalThis.ch.assertQueue('q', { durable: true });
    }, name);
    return { page, errors };
  };
  const a = await open();
  const b = await open();
  assert.equal(await a.page.evaluate(() => globalThis.conn.hosting), true);

  const trap = await a.page.evaluate(async () => {
    try {
      (await import('/pkg/tabbit.js')).__testPanic();
      return 'no trap';
    } catch (e) {
      return e.constructor.name;
    }
  });
  assert.equal(trap, 'RuntimeError', 'the instance traps');
  await a.page.waitForFunction(() => globalThis.events.length >= 3);
  assert.deepEqual(await a.page.evaluate(() => globalThis.events), ['channel error 541', 'connection error 541', 'connection close']);
  const late = await a.page.evaluate(() => {
    try {
      globalThis.ch.sendToQueue('q', 'late', {}, () => {});
      return 'sent';
    } catch (e) {
      return e.code;
    }
  });
  assert.equal(late, 541, 'the dead channel says why');
  await waitUntil('B to host after A panicked', () => b.page.evaluate(() => globalThis.conn.hosting), 5000);

  // A connects again: a fresh instance, now a client of B.
  const again = await a.page.evaluate(async (name) => {
    const { connect } = await import('/pkg/index.js');
    const conn = await connect({ name });
    const ch = await conn.createConfirmChannel();
    ch.sendToQueue('q', 'after the panic', { persistent: true });
    await ch.waitForConfirms();
    const m = await ch.get('q', { noAck: true });
    return { hosting: conn.hosting, text: m && new TextDecoder().decode(m.content) };
  }, name);
  assert.deepEqual(again, { hosting: false, text: 'after the panic' });
  assert.deepEqual([...a.errors, ...b.errors], []);
});

// ---- 10. limits ------------------------------------------------------------------------------

test("mesh: the host's limits apply to every context, with errors that name them; a large turn goes out in several posts", { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await newContext(t);
  const name = brokerName('limits');
  const { page: host, errors: hostErrors } = await openPage(context, server.url + BLANK);
  const setup = await host.evaluate(async (name) => {
    const { connect } = await import('/pkg/index.js');
    const refused = [];
    for (const limits of [{ maxMesages: 5 }, { maxQueues: 0 }, { maxMessageBytes: 2 ** 30 }, 7]) {
      await connect({ name: `${name}-bad`, limits }).then(
        () => refused.push('accepted'),
        (e) => refused.push(`${e.code} ${e.message}`),
      );
    }
    globalThis.conn = await connect({ name, limits: { maxMessageBytes: 200_000, maxQueues: 3, maxQueueLength: 60 } });
    return { hosting: globalThis.conn.hosting, refused };
  }, name);
  assert.equal(setup.hosting, true);
  assert.match(setup.refused[0], /^406 PRECONDITION_FAILED - unknown limit 'maxMesages'/);
  assert.match(setup.refused[1], /^406 .*limits\.maxQueues/);
  assert.match(setup.refused[2], /^406 PRECONDITION_FAILED - limits\.maxMessageBytes can be at most/);
  assert.match(setup.refused[3], /^406 .*'limits'/);

  const { page: client, errors: clientErrors } = await openPage(context, server.url + BLANK);
  const got = await client.evaluate(async (name) => {
    const { connect } = await import('/pkg/index.js');
    const conn = await connect({ name });
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('big', { durable: false });
    // 60 messages of 150 KB in one turn: 9 MB, more than one post.
    const body = new Uint8Array(150_000).fill(7);
    for (let i = 0; i < 60; i++) ch.sendToQueue('big', body, { messageId: `b${i}` });
    await ch.waitForConfirms();
    // The host's maxQueueLength (60) is full: the next publish is nacked, naming it.
    const full = await new Promise((ok) => ch.sendToQueue('big', 'one more', {}, (e) => ok(e && `${e.code} ${e.message}`)));
    const effective = (await conn.stats()).queues.find((q) => q.name === 'big').effectiveMaxLength;
    const ids = [];
    for (let m; (m = await ch.get('big', { noAck: true })); ) ids.push(m.properties.messageId);
    // Over the host's limit: the channel closes with an error naming it.
    const error = new Promise((ok) => ch.once('error', (e) => ok(`${e.code} ${e.message}`)));
    ch.sendToQueue('big', new Uint8Array(300_000), {}, () => {});
    const tooBig = await error;
    const ch2 = await conn.createChannel();
    ch2.on('error', () => {}); // the refused declare closes it, as in AMQP
    const queues = [];
    for (let i = 0; i < 3; i++) {
      await ch2.assertQueue(`q${i}`).then(() => queues.push('ok'), (e) => queues.push(`${e.code} ${e.message}`));
    }
    return { ids, tooBig, queues, full, effective };
  }, name);
  assert.match(got.full, /^506 RESOURCE_ERROR - queue 'big' is full: it holds 60 ready messages.*limits\.maxQueueLength/);
  assert.equal(got.effective, 60, "the host's default, in a client's stats");
  assert.deepEqual(got.ids, Array.from({ length: 60 }, (_, i) => `b${i}`), 'every message of the large turn arrived, in order');
  assert.match(got.tooBig, /^406 .*limits\.maxMessageBytes.*raise it in connect\(\)/);
  assert.deepEqual(got.queues.slice(0, 2), ['ok', 'ok']);
  assert.match(
    got.queues[2],
    /^406 Operation failed: QueueDeclare; 406 \(PRECONDITION-FAILED\) with message "PRECONDITION_FAILED - the broker has 3 queues, its limit \(limits\.maxQueues\)/,
  );
  assert.deepEqual([...hostErrors, ...clientErrors], []);
});

// ---- 11. apps on one origin ------------------------------------------------------------------
// connect({ app }): two apps on one origin that use the same broker name get two brokers (their
// own IndexedDB database, locks and channels), tabs of one app share one, and an app-less connect()
// keeps the database name of earlier versions (`tabbit:<name>`).

/** In a tab: connects to broker `name` of `app` (undefined: none) and keeps the connection. */
async function joinApp(page, name, app) {
  return page.evaluate(
    async ({ name, app }) => {
      const { connect } = await import('/pkg/index.js');
      globalThis.conn = await connect(app === undefined ? { name } : { name, app });
      globalThis.ch = await globalThis.conn.createConfirmChannel();
      globalThis.ch.on('error', () => {}); // a refused checkQueue closes it, as in AMQP
      return { hosting: globalThis.conn.hosting };
    },
    { name, app },
  );
}

/** In a tab: publishes `body` persistently to durable queue 'jobs', confirmed. */
function publishJob(page, body) {
  return page.evaluate(async (body) => {
    await globalThis.ch.assertQueue('jobs', { durable: true });
    globalThis.ch.sendToQueue('jobs', body, { persistent: true });
    await globalThis.ch.waitForConfirms();
  }, body);
}

/** In a tab: the queues the broker has, and the bodies waiting in 'jobs' (taken, acked). */
function lookJobs(page) {
  return page.evaluate(async () => {
    const queues = (await globalThis.conn.stats()).queues.map((q) => q.name).filter((n) => !n.startsWith('amq.'));
    const ch = await globalThis.conn.createChannel();
    ch.on('error', () => {});
    const bodies = [];
    const found = await ch.checkQueue('jobs').then(
      () => true,
      (e) => `${e.code}`,
    );
    if (found === true) {
      for (let m; (m = await ch.get('jobs', { noAck: true })); ) bodies.push(new TextDecoder().decode(m.content));
    }
    return { queues, found, bodies };
  });
}

test('mesh: apps: two apps with one broker name on one origin do not see each other; tabs of one app share', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await newContext(t);
  const name = `shared-${Date.now()}`;
  const tabs = {};
  for (const tab of ['alpha1', 'alpha2', 'beta', 'none']) tabs[tab] = await openPage(context, server.url + BLANK);

  assert.deepEqual(await joinApp(tabs.alpha1.page, name, 'alpha'), { hosting: true });
  assert.deepEqual(await joinApp(tabs.beta.page, name, 'beta'), { hosting: true }, 'another app: its own broker, hosted here');
  assert.deepEqual(await joinApp(tabs.none.page, name, undefined), { hosting: true }, 'no app: its own broker too');
  assert.deepEqual(await joinApp(tabs.alpha2.page, name, 'alpha'), { hosting: false }, 'the same app: a client of the first tab');

  await publishJob(tabs.alpha1.page, 'from alpha');
  await publishJob(tabs.beta.page, 'from beta');

  assert.deepEqual(await lookJobs(tabs.none.page), { queues: [], found: '404', bodies: [] });
  assert.deepEqual(await lookJobs(tabs.beta.page), { queues: ['jobs'], found: true, bodies: ['from beta'] });
  assert.deepEqual(await lookJobs(tabs.alpha2.page), { queues: ['jobs'], found: true, bodies: ['from alpha'] }, 'the other tab of alpha sees its message');

  const checks = await tabs.none.page.evaluate(async (name) => {
    const { connect } = await import('/pkg/index.js');
    const refused = [];
    for (const app of ['alpha:v2', '', 7]) {
      await connect({ name, app }).then(
        () => refused.push('accepted'),
        (e) => refused.push(`${e.code} ${e.message}`),
      );
    }
    const databases = (await indexedDB.databases()).map((d) => d.name).filter((n) => n.endsWith(name)).sort();
    return { refused, databases };
  }, name);
  assert.match(checks.refused[0], /^406 PRECONDITION_FAILED - connect\(\): 'app' is 'alpha:v2'; it must be 1 to 255 bytes without ':'.*use e\.g\. 'my-app'/);
  assert.match(checks.refused[1], /^406 .*'app' is ''/);
  assert.match(checks.refused[2], /^406 .*'app' must be a string/);
  assert.deepEqual(
    checks.databases,
    [`tabbit:${name}`, `tabbit@alpha:${name}`, `tabbit@beta:${name}`],
    'no app: the database name of earlier versions; each app its own',
  );
  for (const tab of Object.values(tabs)) assert.deepEqual(tab.errors, []);
});

test('mesh: apps: an app-less broker reopens the data an earlier version stored under tabbit:<name>', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await newContext(t);
  const name = `legacy-${Date.now()}`;
  const { page: first, errors: firstErrors } = await openPage(context, server.url + BLANK);
  await joinApp(first, name, undefined);
  await publishJob(first, 'kept');
  await first.evaluate(() => globalThis.conn.close());
  await first.close();
  // A database named as before namespaces, opened again without an app: the message is there.
  const { page, errors } = await openPage(context, server.url + BLANK);
  await joinApp(page, name, undefined);
  assert.deepEqual(await lookJobs(page), { queues: ['jobs'], found: true, bodies: ['kept'] });
  const inOtherApp = await openPage(context, server.url + BLANK);
  await joinApp(inOtherApp.page, name, 'someapp');
  assert.deepEqual(await lookJobs(inOtherApp.page), { queues: [], found: '404', bodies: [] }, 'an app does not see app-less data');
  assert.deepEqual([...firstErrors, ...errors, ...inOtherApp.errors], []);
});
