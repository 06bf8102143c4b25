// What loads on first use, in headless Chromium: the bridge's code (bridge.js) is fetched only
// when a page bridges, not at connect(); bridge() then loads it and runs the bridge (here to a
// port where nothing listens, so its status says it waits to retry).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLANK, TEST_TIMEOUT, openPage, useServerAndBrowser } from './browser.mjs';

let server;
let browser;
useServerAndBrowser((s, b) => ([server, browser] = [s, b]));

test('lazy: bridge.js is fetched on the first bridge(), not at connect()', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await browser.browser.newContext();
  t.after(() => context.close().catch(() => {}));
  const { page, errors } = await openPage(context, server.url + BLANK);
  const fetched = () => page.evaluate(() => performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname.split('/').pop()));
  const name = `lazy-${Date.now()}`;
  const before = await page.evaluate(async (name) => {
    const { connect } = await import('/pkg/index.js');
    const conn = (globalThis.__conn = await connect({ name }));
    const ch = await conn.createChannel();
    await ch.assertQueue('q');
    ch.sendToQueue('q', new TextEncoder().encode('hi'));
    const m = await new Promise((done) => ch.consume('q', done));
    return new TextDecoder().decode(m.content);
  }, name);
  assert.equal(before, 'hi');
  const loaded = await fetched();
  assert.ok(loaded.includes('index.js') && loaded.includes('tabbit_bg.wasm'), `fetched: ${loaded}`);
  assert.ok(!loaded.includes('bridge.js'), `bridge.js fetched before any bridge(): ${loaded}`);

  const status = await page.evaluate(async () => {
    const ch = await globalThis.__conn.createChannel();
    await ch.assertExchange('to-server', 'topic');
    const bridge = await globalThis.__conn.bridge({
      url: 'ws://127.0.0.1:1/ws',
      login: 'guest',
      passcode: 'guest',
      outbound: [{ exchange: 'to-server', to: '/amq/queue/tasks' }],
    });
    const deadline = Date.now() + 10_000;
    while (bridge.status?.state !== 'waiting' && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
    const s = bridge.status;
    await bridge.close();
    await globalThis.__conn.close();
    return { state: s?.state, error: s?.error };
  });
  assert.ok((await fetched()).includes('bridge.js'), 'bridge.js fetched by bridge()');
  assert.equal(status.state, 'waiting', `the bridge to a closed port waits to retry: ${JSON.stringify(status)}`);
  // The browser logs the refused WebSocket itself; nothing else may be logged.
  assert.deepEqual(errors.filter((e) => !/WebSocket connection to 'ws:\/\/127\.0\.0\.1:1\/ws' failed/.test(e)), []);
});
