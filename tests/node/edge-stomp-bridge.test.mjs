// Two "devices" (two browser contexts of headless Chromium, each with its own broker in IndexedDB)
// exchange messages through the edge broker: serveStomp() in the real `deno` on Deno KV
// (tests/runtimes/deno/stomp-server.js), reached by each tab's conn.bridge() as it reaches
// RabbitMQ's Web-STOMP (tests/node/bridge-page.js drives the tabs, as in bridge.test.mjs).
//   - device A's exchange 'to-rabbit' → its outbox → the edge queue 'shared' → device B's 'inbox';
//   - the offline outbox: with deno stopped (SIGKILL), A publishes (confirmed locally); deno starts
//     again on the same KV: everything arrives at B once and in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { TEST_TIMEOUT, useServerAndBrowser, waitUntil } from './browser.mjs';
import { device } from './edge-devices.mjs';
import { stompServer } from '../runtimes/deno/stomp-run.mjs';

let server;
let browser;
useServerAndBrowser((s, b) => ([server, browser] = [s, b]));

/**
 * A persistent SEND with a receipt through the edge (@stomp/stompjs): once its RECEIPT is in, the
 * edge has committed everything it had to write before it, the acks it got included.
 */
function fence(url) {
  return new Promise((ok, fail) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(url, ['v12.stomp']),
      connectHeaders: { login: 'alice', passcode: 'secret' },
      reconnectDelay: 0,
      onConnect: () => {
        client.watchForReceipt('fence', () => client.deactivate().then(ok));
        client.publish({ destination: '/queue/fence', body: 'fence', headers: { persistent: 'true', receipt: 'fence' } });
      },
      onStompError: (f) => fail(new Error(`${f.headers.message}: ${f.body}`)),
    });
    client.activate();
  });
}

const status = (page) => page.evaluate(() => __bridge.status());
const bodies = async (page) => (await page.evaluate(() => __bridge.state.received)).map((m) => m.body);

test('edge stomp: two devices exchange messages through the deno broker with conn.bridge(), offline outbox included', { timeout: TEST_TIMEOUT }, async (t) => {
  const edge = await stompServer(t);
  let deno = await edge.serve();
  const common = { url: edge.url, login: 'alice', passcode: 'secret', reconnect: { initialMs: 200, maxMs: 1000 } };
  const a = await device(t, { server, browser }, { ...common, outbound: [{ exchange: 'to-rabbit', to: '/queue/shared' }] });
  const b = await device(t, { server, browser }, { ...common, inbound: [{ from: '/queue/shared', to: { queue: 'inbox' } }] });
  for (const d of [a, b]) await waitUntil('both bridges connected', async () => (await status(d.page))?.state === 'connected');
  await b.page.evaluate(() => __bridge.consume('inbox'));

  const first = await a.page.evaluate(() => __bridge.publish('to-rabbit', 'k', 20, 'on-'));
  assert.equal(first.length, 20);
  const got = await waitUntil('20 messages at device B', async () => {
    const r = await bodies(b.page);
    return r.length >= 20 && r;
  }, 30_000);
  assert.deepEqual(got, first);
  // B's bridge acked the 20 to the edge, and the edge stored the acks: none comes back to B.
  await waitUntil('the 20 acked to the edge', async () => (await status(b.page))?.inbound?.acked === 20);
  await fence(edge.url);

  // The edge goes down; device A publishes meanwhile: its outbox keeps what the edge has not taken.
  process.kill(-deno.p.child.pid, 'SIGKILL');
  await deno.p.exited;
  await waitUntil('device A to notice', async () => (await status(a.page))?.state !== 'connected', 30_000);
  const offline = await a.page.evaluate(() => __bridge.publish('to-rabbit', 'k', 30, 'off-'));
  assert.equal(offline.length, 30, 'confirmed locally while the edge is down');
  deno = await edge.serve();
  const all = await waitUntil('every message at device B', async () => {
    const r = await bodies(b.page);
    return r.length >= 50 && r;
  }, 60_000);
  // Once each, in order (the offline ones after the first 20).
  assert.deepEqual(all, [...first, ...offline]);
  // Chromium itself logs each refused WebSocket (the reconnects while deno was down): nothing else.
  const refused = /^console\.error: WebSocket connection to '.*' failed: Error in connection establishment/;
  for (const d of [a, b]) assert.deepEqual(d.errors.filter((e) => !refused.test(e)), []);
});
