// Two "devices" (two browser contexts of headless Chromium, each with its own broker in IndexedDB)
// exchange messages both ways through the edge broker in a Cloudflare Durable Object: the
// package's TabbitBroker with Web-STOMP, in the real workerd (SQLite-backed object on local
// disk, hibernatable WebSockets: tests/runtimes/workerd/do-stomp-worker.js), reached by each
// tab's conn.bridge() as it reaches RabbitMQ's Web-STOMP (tests/node/bridge-page.js drives the
// tabs, as in edge-stomp-bridge.test.mjs, which does the same against Deno):
//   - device A's exchange 'to-rabbit' → its outbox → the edge queue 'to-b' → device B's 'inbox',
//     and B's 'to-rabbit' → 'to-a' → A's 'inbox';
//   - the offline outbox: workerd killed (SIGKILL) after the first exchange, both devices publish
//     (confirmed locally); workerd starts again on the same disk and port: everything arrives
//     once and in order, and nothing more is left to come (the outboxes and the edge queues
//     empty, and each device's inbox holds exactly what was sent to it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT, useServerAndBrowser, waitUntil } from './browser.mjs';
import { device } from './edge-devices.mjs';
import { doStompServer, kill9 } from '../runtimes/workerd/do-stomp-run.mjs';
import { publish, stompClient } from '../runtimes/stomp-client.mjs';

let server;
let browser;
useServerAndBrowser((s, b) => ([server, browser] = [s, b]));

const status = (page) => page.evaluate(() => __bridge.status());
const received = (page) => page.evaluate(() => __bridge.state.received);
const bodies = async (page) => (await received(page)).map((m) => m.body);
/** The device's local queues: {name: {ready, unacked}}. */
const localQueues = async (page) => Object.fromEntries((await page.evaluate(() => __bridge.stats())).queues.map((q) => [q.name, q]));
/** The edge broker's queues, from the object's stats (GET /stats on the worker). */
const edgeQueues = async (url) => Object.fromEntries((await (await fetch(`${url}/stats`)).json()).queues.map((q) => [q.name, q]));

/**
 * A persistent SEND with a receipt through the edge (@stomp/stompjs): once its RECEIPT is in, the
 * edge has committed everything it had to write before it, the acks it got included.
 */
async function fence(ws) {
  const c = stompClient(ws);
  await c.connected;
  await publish(c.client, '/queue/fence', 'fence', { persistent: 'true' });
  await c.stop();
}

test('edge DO bridge: two devices exchange messages both ways through the Durable Object with conn.bridge(), offline outbox across SIGKILL', { timeout: TEST_TIMEOUT }, async (t) => {
  const edge = await doStompServer(t);
  let { proc } = await edge.serve();
  const common = { url: edge.ws, login: 'alice', passcode: 'secret', reconnect: { initialMs: 200, maxMs: 1000 } };
  const a = await device(t, { server, browser }, { ...common, outbound: [{ exchange: 'to-rabbit', to: '/queue/to-b' }], inbound: [{ from: '/queue/to-a', to: { queue: 'inbox' } }] });
  const b = await device(t, { server, browser }, { ...common, outbound: [{ exchange: 'to-rabbit', to: '/queue/to-a' }], inbound: [{ from: '/queue/to-b', to: { queue: 'inbox' } }] });
  for (const d of [a, b]) await waitUntil('both bridges connected', async () => (await status(d.page))?.state === 'connected', 30_000);
  for (const d of [a, b]) await d.page.evaluate(() => __bridge.consume('inbox'));

  // Both ways at once.
  const [fromA, fromB] = await Promise.all([
    a.page.evaluate(() => __bridge.publish('to-rabbit', 'k', 20, 'a-on-')),
    b.page.evaluate(() => __bridge.publish('to-rabbit', 'k', 15, 'b-on-')),
  ]);
  assert.equal(fromA.length, 20);
  assert.equal(fromB.length, 15);
  const atB = await waitUntil('20 messages at device B', async () => {
    const r = await bodies(b.page);
    return r.length >= 20 && r;
  }, 30_000);
  const atA = await waitUntil('15 messages at device A', async () => {
    const r = await bodies(a.page);
    return r.length >= 15 && r;
  }, 30_000);
  assert.deepEqual(atB, fromA);
  assert.deepEqual(atA, fromB);
  // Each bridge acked what it took to the edge, and the edge stored the acks: none comes back.
  await waitUntil('the inbound messages acked to the edge', async () => (await status(a.page))?.inbound?.acked === 15 && (await status(b.page))?.inbound?.acked === 20);
  await fence(edge.ws);

  // The edge goes down; both devices publish meanwhile: their outboxes keep what the edge has not taken.
  await kill9(proc);
  for (const d of [a, b]) await waitUntil('the devices to notice', async () => (await status(d.page))?.state !== 'connected', 30_000);
  const [offA, offB] = await Promise.all([
    a.page.evaluate(() => __bridge.publish('to-rabbit', 'k', 30, 'a-off-')),
    b.page.evaluate(() => __bridge.publish('to-rabbit', 'k', 10, 'b-off-')),
  ]);
  assert.equal(offA.length, 30, "A's confirmed locally while the edge is down");
  assert.equal(offB.length, 10, "B's confirmed locally while the edge is down");
  for (const [d, n] of [[a, 30], [b, 10]]) {
    const outbox = (await localQueues(d.page))['bridge.default.to-rabbit'];
    assert.equal(outbox.ready + outbox.unacked, n, 'waiting in the outbox');
  }

  ({ proc } = await edge.serve());
  await waitUntil('every message at device B', async () => (await bodies(b.page)).length >= 50, 60_000);
  await waitUntil('every message at device A', async () => (await bodies(a.page)).length >= 25, 60_000);
  // Nothing more to come: each outbox emptied (everything confirmed by the edge), each edge queue
  // emptied (everything acked by the device it went to), each device's inbox consumed.
  await waitUntil(
    'the outboxes and the edge queues empty',
    async () => {
      const edgeNow = await edgeQueues(edge.url);
      const empty = (q) => q && q.ready === 0 && q.unacked === 0;
      for (const d of [a, b]) {
        const local = await localQueues(d.page);
        if (!empty(local['bridge.default.to-rabbit']) || !empty(local.inbox)) return false;
      }
      return empty(edgeNow['to-a']) && empty(edgeNow['to-b']);
    },
    60_000,
  );
  // Once each, in order (the offline ones after the first ones), nothing redelivered twice.
  assert.deepEqual(await bodies(b.page), [...fromA, ...offA]);
  assert.deepEqual(await bodies(a.page), [...fromB, ...offB]);
  for (const d of [a, b]) assert.equal((await status(d.page))?.state, 'connected');
  // Chromium itself logs each refused WebSocket (the reconnects while workerd was down): nothing else.
  const refused = /^console\.error: WebSocket connection to '.*' failed: Error in connection establishment/;
  for (const d of [a, b]) assert.deepEqual(d.errors.filter((e) => !refused.test(e)), []);
  await proc.kill();
  assert.doesNotMatch(proc.output(), /uncaught/i);
});
