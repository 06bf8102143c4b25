// The bridge's outbound pipeline (js/bridge.js) against a scripted STOMP server: a stand-in
// that decides when each receipt comes, in which order, and when the connection drops, which a
// real RabbitMQ does not let a test decide (tests/node/bridge.test.mjs runs the bridge against
// RabbitMQ itself). What it checks:
//   - the receipt window: at most `prefetch` SENDs not acked locally, whatever is waiting;
//   - several SENDs in one WebSocket message when several places free up at once;
//   - a receipt that comes before an older one's frees nothing until the older one's comes;
//   - across a reconnect: what was not acked locally is sent again, in order, with the same
//     amqp-message-id; what was acked is not; nothing is lost; the outbox ends empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocketServer } from 'ws';
import { BLANK, TEST_TIMEOUT, openPage, useServerAndBrowser, waitUntil } from './browser.mjs';

let server;
let browser;
useServerAndBrowser((s, b) => ([server, browser] = [s, b]));

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** The STOMP frames of one WebSocket message from the bridge (whole frames: it sends no part of one). */
function parseFrames(bytes) {
  const frames = [];
  let at = 0;
  while (at < bytes.length) {
    while (bytes[at] === 10 || bytes[at] === 13) at += 1; // heart-beats
    if (at >= bytes.length) break;
    const headEnd = bytes.indexOf('\n\n', at);
    assert.ok(headEnd > at, 'a frame has a blank line after its headers');
    const [command, ...lines] = bytes.subarray(at, headEnd).toString().split('\n');
    // STOMP 1.2 escapes in header values (the bridge's ids hold colons): \c, \n, \r, \\.
    const unescape = (v) => v.replace(/\\([cnr\\])/g, (_, c) => ({ c: ':', n: '\n', r: '\r', '\\': '\\' })[c]);
    const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')), unescape(l.slice(l.indexOf(':') + 1))]));
    const start = headEnd + 2;
    const end = headers['content-length'] ? start + Number(headers['content-length']) : bytes.indexOf(0, start);
    assert.equal(bytes[end], 0, 'a frame ends with NUL');
    frames.push({ command, headers, body: bytes.subarray(start, end).toString() });
    at = end + 1;
  }
  return frames;
}

/**
 * A STOMP server on a free port: answers CONNECT with CONNECTED (once `release()` is called, if
 * `hold`), records each session's WebSocket messages as arrays of frames, and answers SENDs only
 * as the test says (`receipt(session, ...receipts)`: one WebSocket message with those RECEIPTs),
 * or, with `autoReceipt`, each message's SENDs at once in one message.
 */
async function stompServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'v12.stomp' });
  await new Promise((ok) => wss.once('listening', ok));
  const s = { sessions: [], hold: false, autoReceipt: false, url: `ws://127.0.0.1:${wss.address().port}/ws` };
  let held = [];
  s.release = () => {
    s.hold = false;
    held.forEach((f) => f());
    held = [];
  };
  const reply = (ws, frames) => ws.send(Buffer.from(frames.map(([c, h]) => `${c}\n${h.map(([k, v]) => `${k}:${v}\n`).join('')}\n\0`).join('')));
  s.receipt = (session, ...receipts) => reply(session.ws, receipts.map((r) => ['RECEIPT', [['receipt-id', r]]]));
  wss.on('connection', (ws) => {
    const session = { ws, messages: [], sends: [] };
    s.sessions.push(session);
    ws.on('message', (data) => {
      const frames = parseFrames(Buffer.from(data));
      if (frames.length) session.messages.push(frames);
      for (const f of frames) {
        if (f.command === 'CONNECT') {
          const connected = () => reply(ws, [['CONNECTED', [['version', '1.2'], ['heart-beat', '0,0']]]]);
          if (s.hold) held.push(connected);
          else connected();
        } else if (f.command === 'SEND') {
          session.sends.push(f);
        }
      }
      const sends = frames.filter((f) => f.command === 'SEND');
      if (s.autoReceipt && sends.length) s.receipt(session, ...sends.map((f) => f.headers.receipt));
    });
  });
  s.close = () => {
    for (const c of wss.clients) c.terminate();
    return new Promise((ok) => wss.close(ok));
  };
  return s;
}

test('the receipt window, several SENDs per WebSocket message, early receipts, and a reconnect', { timeout: TEST_TIMEOUT }, async (t) => {
  const stomp = await stompServer();
  t.after(() => stomp.close());
  const context = await browser.browser.newContext();
  t.after(() => context.close());
  const { page, errors } = await openPage(context, `${server.url}${BLANK}`);
  const N = 20;
  const WINDOW = 5;
  stomp.hold = true;
  // The bridge connects (and waits for CONNECTED) while N messages wait in its outbox, with no
  // messageId of their own: the bridge makes their amqp-message-id.
  await page.evaluate(
    async ({ url, n, prefetch }) => {
      const { connect } = await import('/pkg/index.js');
      const conn = await connect({ name: `pipeline-${Date.now()}` });
      const ch = await conn.createConfirmChannel();
      await ch.assertExchange('out', 'fanout', { durable: true });
      globalThis.__bridge = await conn.bridge({ url, prefetch, heartbeatMs: 0, reconnect: { initialMs: 100, maxMs: 200 }, outbound: [{ exchange: 'out', to: '/queue/q' }] });
      globalThis.__conn = conn;
      for (let i = 0; i < n; i++) ch.publish('out', '', new TextEncoder().encode(`m${i}`), { persistent: true });
      await ch.waitForConfirms();
    },
    { url: stomp.url, n: N, prefetch: WINDOW },
  );
  stomp.release();
  const [first] = stomp.sessions;
  const bodies = (sends) => sends.map((f) => f.body);
  await waitUntil('the first SENDs', () => first.sends.length >= WINDOW);
  // The window holds: no receipt yet, so no more than WINDOW SENDs, however long we wait.
  await sleep(300);
  assert.deepEqual(bodies(first.sends), ['m0', 'm1', 'm2', 'm3', 'm4']);
  const r = (i) => first.sends[i].headers.receipt;
  const ids = first.sends.map((f) => f.headers['amqp-message-id']);
  assert.equal(new Set(ids).size, WINDOW);
  for (const id of ids) assert.match(id, /^tabbit:bridge\.default\.out:[0-9a-z]+:\d+$/);

  // A receipt for m1 before m0's: m1 stays in the window until m0's comes.
  stomp.receipt(first, r(1));
  await sleep(300);
  assert.equal(first.sends.length, WINDOW, 'an early receipt frees no place');
  // m0's and m2's receipts in one WebSocket message: three places free at once, and the next
  // three SENDs go in one WebSocket message.
  const messagesBefore = first.messages.length;
  stomp.receipt(first, r(0), r(2));
  await waitUntil('three more SENDs', () => first.sends.length === WINDOW + 3);
  assert.deepEqual(bodies(first.sends.slice(WINDOW)), ['m5', 'm6', 'm7']);
  assert.deepEqual(first.messages.slice(messagesBefore).map((m) => m.map((f) => f.body)), [['m5', 'm6', 'm7']], 'one WebSocket message');
  // m4 confirmed, m3 not; then the connection drops.
  stomp.receipt(first, r(4));
  await sleep(100);
  stomp.autoReceipt = true;
  first.ws.terminate();

  // The next session sends again what was not acked locally (m3, and m4 behind it), in order,
  // with the same ids, then the rest; m0–m2 were acked and do not come again.
  const second = await waitUntil('a second session', () => stomp.sessions[1]);
  await waitUntil(async () => `all sent again: ${bodies(second.sends)}`, () => second.sends.length >= N - 3);
  const expected = Array.from({ length: N - 3 }, (_, i) => `m${i + 3}`);
  assert.deepEqual(bodies(second.sends), expected);
  assert.deepEqual(second.sends.slice(0, 2).map((f) => f.headers['amqp-message-id']), ids.slice(3, 5), 'sent again with the same ids');
  const sendMessages = second.messages.filter((m) => m.some((f) => f.command === 'SEND'));
  assert.ok(sendMessages.length < second.sends.length, `${second.sends.length} SENDs in ${sendMessages.length} WebSocket messages`);
  assert.ok(second.messages.every((m) => m.filter((f) => f.command === 'SEND').length <= WINDOW), 'never more than the window at once');

  // Everything confirmed: the outbox is empty, and the status says so.
  const status = await waitUntil('the status to show the outbox drained', () =>
    page.evaluate(() => {
      const s = __bridge.status;
      return s?.outbound.pending === 0 && s.outbound.confirmed === 4 + (20 - 3) && s;
    }),
  );
  assert.equal(status.outbound.sent, 8 + (N - 3));
  assert.equal(status.connects, 2);
  const outbox = await page.evaluate(async () => (await __conn.stats()).queues.find((q) => q.name === 'bridge.default.out'));
  assert.deepEqual([outbox.ready, outbox.unacked], [0, 0]);
  await sleep(200);
  assert.equal(second.sends.length, N - 3, 'nothing more is sent');
  assert.deepEqual(errors, []);
});
