// The broker's IndexedDB database deleted by the browser, in headless Chromium:
//   under a running broker (CDP Storage.clearDataForOrigin, as "clear site data" does: Chromium
//   closes the connection, and a reopen creates the database anew), the host writes everything it
//   holds in memory again, so that what it confirmed survives a restart; stats().storageEmptied
//   and storageInfo().emptied say when, in every context;
//   while no broker ran (indexedDB.deleteDatabase with the tabs closed), the next host finds it
//   new while the mark kept in localStorage says it existed, and says so: stats().storageEmptied
//   with lost null, and conn.problems.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLANK, TEST_TIMEOUT, openPage, useServerAndBrowser } from './browser.mjs';

let server;
let browser;
useServerAndBrowser((s, b) => ([server, browser] = [s, b]));

/** In the page: connects to broker `name` (into globalThis.__conn), a confirm channel (__ch) with durable queue 'q'. */
const join = (page, name) =>
  page.evaluate(async (name) => {
    const { connect } = await import('/pkg/index.js');
    const conn = (globalThis.__conn = await connect({ name }));
    globalThis.__ch = await conn.createConfirmChannel();
    await globalThis.__ch.assertQueue('q', { durable: true });
    return conn.stats().then((s) => s.hosting);
  }, name);

/** In the page: publishes persistent messages with these bodies to 'q' and waits for their confirms. */
const publish = (page, bodies) =>
  page.evaluate(async (bodies) => {
    for (const b of bodies) globalThis.__ch.sendToQueue('q', new TextEncoder().encode(b), { persistent: true });
    await globalThis.__ch.waitForConfirms();
  }, bodies);

/** In the page: gets every ready message of 'q' (acked): [body, redelivered]. */
const drain = (page) =>
  page.evaluate(async () => {
    const out = [];
    for (let m; (m = await globalThis.__ch.get('q', { noAck: true })); ) out.push([new TextDecoder().decode(m.content), m.fields.redelivered]);
    return out;
  });

test('storage emptied: deleted under a running broker, it is written again; deleted while closed, the next host says so', { timeout: TEST_TIMEOUT }, async (t) => {
  const name = `emptied-${Date.now()}`;
  const context = await browser.browser.newContext();
  t.after(() => context.close().catch(() => {}));
  const { page: a, errors: errorsA } = await openPage(context, server.url + BLANK);
  const { page: b, errors: errorsB } = await openPage(context, server.url + BLANK);
  assert.equal(await join(a, name), true, 'the first page hosts');
  assert.equal(await join(b, name), false);
  await publish(a, ['m1', 'm2', 'm3', 'm4']);
  // One held unacked by the client page.
  const held = await b.evaluate(async () => {
    const m = await globalThis.__ch.get('q');
    globalThis.__held = m;
    return new TextDecoder().decode(m.content);
  });
  assert.equal(held, 'm1');
  assert.equal((await a.evaluate(() => globalThis.__conn.stats())).storageEmptied, null, 'not emptied yet');

  // "Clear site data" for IndexedDB, with the broker running.
  const cdp = await context.newCDPSession(a);
  await cdp.send('Storage.clearDataForOrigin', { origin: server.origin, storageTypes: 'indexeddb' });
  await publish(b, ['m5']);
  const emptied = await b.evaluate(() => globalThis.__conn.stats().then((s) => s.storageEmptied));
  assert.ok(emptied && Number.isFinite(emptied.at), `stats().storageEmptied in a client: ${JSON.stringify(emptied)}`);
  assert.equal(emptied.lost, 0, 'nothing was paged out');
  const info = await b.evaluate(() => globalThis.__conn.storageInfo());
  assert.deepEqual(info.emptied, emptied, 'storageInfo().emptied');
  await a.evaluate(() => globalThis.__ch.waitForConfirms());

  // Every tab closes: a new one finds what the broker confirmed, m1 flagged (it was handed out).
  for (const p of [b, a]) await p.evaluate(() => globalThis.__conn.close());
  const { page: c, errors: errorsC } = await openPage(context, server.url + BLANK);
  assert.equal(await join(c, name), true);
  assert.deepEqual(await drain(c), [
    ['m1', true],
    ['m2', false],
    ['m3', false],
    ['m4', false],
    ['m5', false],
  ]);
  assert.equal((await c.evaluate(() => globalThis.__conn.stats())).storageEmptied, null, 'a new host, a store that was kept');

  // Deleted while no broker runs (the mark in localStorage stays): the next host says so.
  await publish(c, ['m6']);
  await c.evaluate(() => globalThis.__conn.close());
  const deleted = await c.evaluate(
    (db) =>
      new Promise((ok) => {
        const r = indexedDB.deleteDatabase(db);
        r.onsuccess = () => ok('deleted');
        r.onerror = () => ok(String(r.error));
        r.onblocked = () => ok('blocked');
      }),
    `tabbit:${name}`,
  );
  assert.equal(deleted, 'deleted');
  assert.equal(await join(c, name), true);
  const s = await c.evaluate(() => globalThis.__conn.stats());
  assert.ok(s.storageEmptied && s.storageEmptied.lost === null, `found deleted at the open: ${JSON.stringify(s.storageEmptied)}`);
  const problems = await c.evaluate(() => globalThis.__conn.problems);
  assert.ok(problems.some((p) => /was deleted since a broker last used it/.test(p)), JSON.stringify(problems));
  assert.deepEqual(await drain(c), [], 'm6 went with the database');
  assert.deepEqual([...errorsA, ...errorsB, ...errorsC], []);
});
