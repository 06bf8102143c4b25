// Persistent storage on request and what the app is told, in headless Chromium:
//   connect({ persist: true }) asks navigator.storage.persist() (connect() without it never does),
//   conn.persist() gives the answer, conn.storageInfo() → { kind, persisted, usage, quota, persist },
//   and the connection's 'storage' event warns, once, when persistent messages go to a durable
//   queue while the origin's storage is not persisted. In a page and in a dedicated worker.
// The permission is set per browser context with CDP Browser.setPermission
// ({name: 'persistent-storage'}, https://chromedevtools.github.io/devtools-protocol/tot/Browser/#method-setPermission):
// playwright's context.grantPermissions() does not know 'persistent-storage' ("Unknown
// permission"). Without it, headless Chromium answers persist() false (no site engagement).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLANK, TEST_TIMEOUT, openPage, useServerAndBrowser } from './browser.mjs';

let server;
let browser;
useServerAndBrowser((s, b) => ([server, browser] = [s, b]));

let names = 0;
const brokerName = (tag) => `storage-info-${tag}-${Date.now()}-${++names}`;

/**
 * A page in a fresh browser context whose 'persistent-storage' permission is `setting`
 * ('granted', 'denied', or null to leave Chromium's default), with navigator.storage.persist
 * counted in globalThis.__persistCalls.
 */
async function openWith(t, setting) {
  const context = await browser.browser.newContext();
  t.after(() => context.close().catch(() => {}));
  const { page, errors } = await openPage(context, server.url + BLANK);
  if (setting) {
    const { targetInfo } = await (await context.newCDPSession(page)).send('Target.getTargetInfo');
    const cdp = await browser.browser.newBrowserCDPSession();
    await cdp.send('Browser.setPermission', {
      permission: { name: 'persistent-storage' },
      setting,
      origin: server.origin,
      browserContextId: targetInfo.browserContextId,
    });
  }
  await page.evaluate(() => {
    globalThis.__persistCalls = 0;
    const persist = navigator.storage.persist.bind(navigator.storage);
    navigator.storage.persist = () => {
      globalThis.__persistCalls++;
      return persist();
    };
  });
  return { page, errors };
}

/** In the page: connects with `options`, listens for 'storage' events (into __storageEvents). */
const connectIn = (page, options) =>
  page.evaluate(async (options) => {
    const { connect } = await import('/pkg/index.js');
    const conn = (globalThis.__conn = await connect(options));
    globalThis.__storageEvents = [];
    conn.on('storage', (info) => globalThis.__storageEvents.push(info));
    return { storage: conn.storage };
  }, options);

const isBytes = (n) => Number.isInteger(n) && n >= 0;

test('storage: connect() never asks to persist; storageInfo() reports best-effort storage', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, errors } = await openWith(t, null);
  await connectIn(page, { name: brokerName('default') });
  const info = await page.evaluate(() => globalThis.__conn.storageInfo());
  assert.equal(await page.evaluate(() => globalThis.__persistCalls), 0, 'connect() without persist: true never calls navigator.storage.persist()');
  assert.equal(info.kind, 'indexeddb');
  assert.equal(info.persisted, false, 'headless Chromium does not persist by default');
  assert.equal(info.persist, null, 'not asked');
  assert.ok(isBytes(info.usage) && isBytes(info.quota) && info.quota > 0, `usage and quota in bytes: ${JSON.stringify(info)}`);
  // Memory storage is not the origin's: nothing to report.
  const memory = await page.evaluate(async (name) => {
    const { connect } = await import('/pkg/index.js');
    const conn = await connect({ name, storage: 'memory', mesh: false });
    const info = await conn.storageInfo();
    await conn.close();
    return info;
  }, brokerName('memory'));
  assert.deepEqual(memory, { kind: 'memory', persisted: null, usage: null, quota: null, persist: null, emptied: null });
  assert.equal(info.emptied, null, 'a database the browser kept');
  const bad = await page.evaluate(async () => {
    const { connect } = await import('/pkg/index.js');
    return connect({ name: 'x', persist: 'yes' }).then(() => null, (e) => ({ code: e.code, message: e.message }));
  });
  assert.deepEqual(bad, { code: 406, message: "connect(): 'persist' must be true or false" });
  assert.deepEqual(errors, []);
});

test('storage: persist: true asks once; granted → persisted, and no storage warning', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, errors } = await openWith(t, 'granted');
  const name = brokerName('granted');
  await connectIn(page, { name, persist: true });
  const r = await page.evaluate(async (name) => {
    const conn = globalThis.__conn;
    const answer = await conn.persist();
    const { connect } = await import('/pkg/index.js');
    const again = await connect({ name, persist: true }); // a second connect asks no more
    const answer2 = await again.persist();
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('jobs', { durable: true });
    ch.sendToQueue('jobs', new Uint8Array([1]), { persistent: true });
    await ch.waitForConfirms();
    const info = await conn.storageInfo(); // after the storage check the publish started
    return { answer, answer2, info, calls: globalThis.__persistCalls, events: globalThis.__storageEvents };
  }, name);
  assert.equal(r.answer, true, 'persist() granted');
  assert.equal(r.answer2, true);
  assert.equal(r.calls, 1, 'navigator.storage.persist() called once in this context');
  assert.equal(r.info.persisted, true);
  assert.equal(r.info.persist, 'granted');
  assert.deepEqual(r.events, [], 'no storage warning when the storage is persisted');
  assert.deepEqual(errors, []);
});

test('storage: persist: true denied → reported; the storage warning comes once, for persistent messages to a durable queue', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, errors } = await openWith(t, 'denied');
  const name = brokerName('denied');
  await connectIn(page, { name, persist: true });
  const r = await page.evaluate(async (name) => {
    const conn = globalThis.__conn;
    const events = () => globalThis.__storageEvents.length;
    const seen = {};
    seen.answer = await conn.persist(); // the answer to connect's request, or (if that came already) a new one
    seen.callsBefore = globalThis.__persistCalls;
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('jobs', { durable: true });
    await ch.assertQueue('scratch', { durable: false });
    ch.sendToQueue('scratch', new Uint8Array([1]), { persistent: true }); // a transient queue stores nothing
    ch.sendToQueue('jobs', new Uint8Array([2]), { persistent: false }); // nor does a transient message
    await ch.waitForConfirms();
    await conn.storageInfo();
    seen.beforeDurable = events();
    ch.sendToQueue('jobs', new Uint8Array([3]), { deliveryMode: 2 });
    ch.sendToQueue('jobs', new Uint8Array([4]), { persistent: true });
    await ch.waitForConfirms();
    seen.info = await conn.storageInfo();
    seen.afterDurable = events();
    seen.event = globalThis.__storageEvents[0];
    // Through an exchange, on another connection: its own warning, once.
    const { connect } = await import('/pkg/index.js');
    const other = await connect({ name, persist: true });
    seen.callsAfterConnect = globalThis.__persistCalls; // connect() does not ask again after a refusal
    seen.askedAgain = await other.persist(); // conn.persist() does (an app's button)
    seen.callsAfterPersist = globalThis.__persistCalls;
    const otherEvents = [];
    other.on('storage', (info) => otherEvents.push(info));
    const ch2 = await other.createChannel();
    await ch2.assertExchange('fan', 'fanout', { durable: true });
    await ch2.assertExchange('to-fan', 'direct', { durable: true });
    await ch2.bindExchange('fan', 'to-fan', 'k');
    await ch2.bindQueue('jobs', 'fan', '');
    ch2.publish('to-fan', 'k', new Uint8Array([5]), { persistent: true });
    ch2.publish('to-fan', 'k', new Uint8Array([6]), { persistent: true });
    await other.storageInfo();
    seen.otherEvents = otherEvents.length;
    seen.total = events();
    return seen;
  }, name);
  assert.equal(r.answer, false, 'persist() denied');
  assert.equal(r.info.persisted, false);
  assert.equal(r.info.persist, 'denied');
  assert.equal(r.beforeDurable, 0, 'no warning for a persistent message to a transient queue, or a transient one to a durable queue');
  assert.equal(r.afterDurable, 1, 'one warning once persistent messages went to a durable queue');
  assert.equal(r.event.kind, 'indexeddb');
  assert.equal(r.event.persisted, false);
  assert.equal(r.event.persist, 'denied');
  assert.ok(isBytes(r.event.usage) && isBytes(r.event.quota), `usage and quota: ${JSON.stringify(r.event)}`);
  assert.ok(r.callsBefore === 1 || r.callsBefore === 2, `persist() calls: ${r.callsBefore}`);
  assert.equal(r.callsAfterConnect, r.callsBefore, 'a second connect({ persist: true }) after a refusal does not ask again');
  assert.equal(r.askedAgain, false);
  assert.equal(r.callsAfterPersist, r.callsBefore + 1, 'conn.persist() after a refusal asks again');
  assert.equal(r.otherEvents, 1, 'the other connection warned once, for its publishes through exchanges to the durable queue');
  assert.equal(r.total, 1, 'the first connection did not warn again');
  assert.deepEqual(errors, []);
});

test('storage: in a dedicated worker, storageInfo() reports, and persist() cannot be asked', { timeout: TEST_TIMEOUT }, async (t) => {
  for (const setting of ['granted', 'denied']) {
    const { page, errors } = await openWith(t, setting);
    const out = await page.evaluate(
      (name) =>
        new Promise((ok) => {
          const worker = new Worker('/tests/node/worker-consumer.js', { type: 'module' });
          worker.onerror = (e) => ok({ type: 'error', message: e.message ?? 'failed to start' });
          worker.onmessage = ({ data }) => ok(data);
          worker.postMessage({ op: 'storageInfo', name, persist: true });
        }),
      brokerName(`worker-${setting}`),
    );
    assert.equal(out.type, 'storageInfo', JSON.stringify(out));
    assert.equal(out.features.persist, 'undefined', 'no persist() in a worker (StorageManager.persist is [Exposed=Window])');
    assert.equal(out.answer, null, 'conn.persist() in a worker: null');
    assert.equal(out.info.kind, 'indexeddb');
    assert.equal(out.info.persisted, setting === 'granted', `persisted() in a worker follows the permission (${setting})`);
    assert.equal(out.info.persist, 'unavailable');
    assert.ok(isBytes(out.info.usage) && isBytes(out.info.quota), `usage and quota: ${JSON.stringify(out.info)}`);
    assert.equal(await page.evaluate(() => globalThis.__persistCalls), 0, "the worker's request did not reach the page");
    assert.deepEqual(errors, []);
  }
});
