// The broker reachable over Web-STOMP from outside a Deno process: serveStomp() of 'tabbit/deno'
// (tests/runtimes/deno/stomp-server.js) in the real `deno` (npm package, pinned in
// tests/package.json) with Deno KV on a file in a temporary directory, and the npm package
// @stomp/stompjs as the client (over the npm package `ws`: Node 20 has no global WebSocket
// without --experimental-websocket), both pinned in tests/package.json.
//   - stompjs publishes persistently with receipts, subscribes with ack client-individual and
//     prefetch-count (no more than that many unacked at once), acks, and nacks (the nacked message
//     comes back redelivered);
//   - receipted messages survive SIGKILL of deno and a restart: each receipted one is there exactly
//     once, and messages delivered but not acked come back with redelivered:true;
//   - a malformed frame, an oversized frame, wrong credentials, no credentials, too many
//     subscriptions and too many connections each get an ERROR frame that says what to change,
//     and the broker goes on serving another client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { assertExported, needPackage } from '../runtimes/helpers.mjs';
import { stompServer as setup } from '../runtimes/deno/stomp-run.mjs';
import { publish, sleep, stompClient as client, until } from '../runtimes/stomp-client.mjs';

const TIMEOUT = 120_000;

/** A @stomp/stompjs client of the server on `port` (tests/runtimes/stomp-client.mjs). */
const stompClient = (port, options) => client(`ws://127.0.0.1:${port}/ws`, options);

/**
 * A round trip on `client`'s socket: a persistent SEND with a receipt to a queue nobody reads.
 * Once its RECEIPT is in, every frame the server sent before it on this socket is too.
 */
const fence = (client) => publish(client, '/queue/fence', 'fence', { persistent: 'true' });

/** A raw WebSocket to the endpoint: `frames` (text of each message), `closed`; `send(text)`. */
function rawSocket(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, ['v12.stomp']);
  const frames = [];
  ws.on('message', (data) => frames.push(data.toString('utf8')));
  const closed = new Promise((ok) => ws.on('close', ok));
  const opened = new Promise((ok, fail) => {
    ws.on('open', ok);
    ws.on('error', fail);
  });
  return { ws, frames, closed, opened, send: (s) => ws.send(s) };
}

const CONNECT = 'CONNECT\naccept-version:1.2\nhost:/\nlogin:alice\npasscode:secret\n\n\0';

/** The ERROR frame among `frames` (text): {message, body}. */
function errorOf(frames) {
  const f = frames.find((x) => x.startsWith('ERROR\n'));
  assert.ok(f, `an ERROR frame came: ${JSON.stringify(frames)}`);
  const [head, body = ''] = f.split('\n\n');
  const message = head.split('\n').find((l) => l.startsWith('message:'))?.slice('message:'.length);
  return { message, body: body.replace(/\0$/, '') };
}

/** Another client still publishes and consumes through the broker. */
async function stillServes(port, tag) {
  const c = stompClient(port);
  await c.connected;
  const got = [];
  c.client.subscribe(`/queue/alive-${tag}`, (m) => got.push(m.body), { ack: 'auto' });
  await publish(c.client, `/queue/alive-${tag}`, `alive ${tag}`);
  await until(() => got.length === 1, `the message of ${tag}`);
  assert.deepEqual(got, [`alive ${tag}`]);
  await c.stop();
}

test('edge stomp: @stomp/stompjs publishes with receipts, consumes with client-individual acks, prefetch and nack', { timeout: TIMEOUT }, async (t) => {
  const s = await setup(t);
  await s.serve();
  const a = stompClient(s.port);
  await a.connected;
  const bodies = Array.from({ length: 20 }, (_, i) => `job ${i}`);
  await Promise.all(bodies.map((b) => publish(a.client, '/queue/work', b, { persistent: 'true' })));

  const b = stompClient(s.port);
  const connected = await b.connected;
  assert.equal(connected.headers.version, '1.2');
  const deliveries = [];
  let outstanding = 0;
  let most = 0;
  let holding = true;
  const held = [];
  b.client.subscribe(
    '/queue/work',
    (m) => {
      deliveries.push({ body: m.body, redelivered: m.headers.redelivered });
      outstanding++;
      most = Math.max(most, outstanding);
      if (holding) return held.push(m);
      outstanding--;
      m.ack();
    },
    { ack: 'client-individual', 'prefetch-count': '5' },
  );
  await fence(b.client);
  // prefetch-count 5: five delivered, none acked, and nothing more until one is settled.
  assert.equal(held.length, 5, `deliveries before any ack: ${JSON.stringify(deliveries)}`);
  holding = false;
  const nacked = held[0].body;
  outstanding--;
  held[0].nack();
  for (const m of held.slice(1)) {
    outstanding--;
    m.ack();
  }
  await until(() => deliveries.length === 21, '21 deliveries (20 messages, one nacked and redelivered)');
  await fence(b.client);
  assert.equal(deliveries.length, 21, 'nothing more came');
  assert.ok(most <= 5, `at most 5 unacked at once (saw ${most})`);
  const again = deliveries.filter((d) => d.body === nacked);
  assert.deepEqual(again.map((d) => d.redelivered), ['false', 'true'], 'the nacked message came back, redelivered');
  assert.deepEqual([...new Set(deliveries.map((d) => d.body))].sort(), [...bodies].sort());
  await Promise.all([a.stop(), b.stop()]);
});

test('edge stomp: receipted messages survive SIGKILL of deno; unacked ones come back redelivered', { timeout: TIMEOUT }, async (t) => {
  const s = await setup(t);
  const first = await s.serve('stream', 'held');
  assert.deepEqual(first.queues, { stream: null, held: null });
  const a = stompClient(s.port);
  await a.connected;
  // Ten messages delivered to a subscriber that never acks them.
  const held = Array.from({ length: 10 }, (_, i) => `h${i}`);
  await Promise.all(held.map((b) => publish(a.client, '/queue/held', b, { persistent: 'true' })));
  const b = stompClient(s.port);
  await b.connected;
  const got = [];
  b.client.subscribe('/queue/held', (m) => got.push(m.body), { ack: 'client-individual', 'prefetch-count': '10' });
  await until(() => got.length === 10, 'the ten held messages');
  // A stream of persistent publishes, up to 200 awaiting their receipts, killed mid-stream.
  const receipted = [];
  let inFlight = 0;
  let killed = false;
  const stream = (async () => {
    for (let i = 0; !killed; i++) {
      while (inFlight >= 200 && !killed) await sleep(1);
      if (killed) break;
      inFlight++;
      publish(a.client, '/queue/stream', `s${i}`, { persistent: 'true' }).then(() => {
        inFlight--;
        if (!killed) receipted.push(`s${i}`);
      });
      if (i % 50 === 49) await sleep(0);
    }
  })();
  await until(() => receipted.length >= 500, '500 receipts');
  killed = true;
  process.kill(-first.p.child.pid, 'SIGKILL');
  const { signal } = await first.p.exited;
  assert.equal(signal, 'SIGKILL');
  await stream;
  t.diagnostic(`${receipted.length} receipted when deno was killed, ${inFlight} awaiting their receipt`);
  await Promise.all([a.closed, b.closed]);

  const second = await s.serve('stream', 'held');
  assert.equal(second.queues.held, 10, 'the unacked messages are queued again');
  assert.ok(second.queues.stream >= receipted.length, `${second.queues.stream} in the stream, ${receipted.length} receipted`);
  const c = stompClient(s.port);
  await c.connected;
  const heldAgain = [];
  const streamed = [];
  c.client.subscribe('/queue/held', (m) => heldAgain.push(m) && m.ack(), { ack: 'client-individual', 'prefetch-count': '50' });
  c.client.subscribe('/queue/stream', (m) => streamed.push(m.body) && m.ack(), { ack: 'client-individual', 'prefetch-count': '50' });
  await until(() => heldAgain.length === 10 && streamed.length === second.queues.stream, 'every queued message');
  assert.deepEqual(heldAgain.map((m) => m.body).sort(), [...held].sort());
  assert.ok(heldAgain.every((m) => m.headers.redelivered === 'true'), 'each unacked message comes back with redelivered:true');
  const seen = new Map();
  for (const id of streamed) seen.set(id, (seen.get(id) ?? 0) + 1);
  assert.deepEqual([...seen].filter(([, n]) => n > 1), [], 'no message is there twice');
  const missing = receipted.filter((id) => !seen.has(id));
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} receipted messages are missing`);
  await c.stop();
});

test('edge stomp: bad and oversized frames, wrong or no credentials, too many subscriptions or connections get an ERROR; the broker serves on', { timeout: TIMEOUT }, async (t) => {
  const s = await setup(t);
  await s.serve();

  // Wrong credentials, and none (no anonymous access unless the app allows it).
  const wrong = stompClient(s.port, { passcode: 'guess' });
  await assert.rejects(wrong.connected);
  await wrong.closed;
  assert.equal(wrong.errors[0]?.headers.message, 'Bad CONNECT');
  assert.match(wrong.errors[0].body, /Access refused for user 'alice': wrong login or passcode/);
  const anonymous = stompClient(s.port, { login: null });
  await assert.rejects(anonymous.connected);
  await anonymous.closed;
  assert.match(anonymous.errors[0]?.body ?? '', /no anonymous connections: send login and passcode/);
  await stillServes(s.port, 'credentials');

  // A malformed frame: a header line with no colon.
  const bad = rawSocket(s.port);
  await bad.opened;
  bad.send(CONNECT);
  await until(() => bad.frames.some((f) => f.startsWith('CONNECTED')), 'CONNECTED');
  bad.send('SEND\ndestination /queue/x\n\nbody\0');
  await bad.closed;
  assert.deepEqual(errorOf(bad.frames), {
    message: 'Malformed frame',
    body: 'the header line "destination /queue/x" is not name:value in UTF-8',
  });
  await stillServes(s.port, 'malformed');

  // A frame over the endpoint's 64 KiB (stompLimits.maxFrameBytes in stomp-server.js).
  const big = rawSocket(s.port);
  await big.opened;
  big.send(CONNECT);
  await until(() => big.frames.some((f) => f.startsWith('CONNECTED')), 'CONNECTED');
  big.send(`SEND\ndestination:/queue/big\n\n${'x'.repeat(70_000)}\0`);
  await big.closed;
  const tooLarge = errorOf(big.frames);
  assert.equal(tooLarge.message, 'Frame too large');
  assert.match(tooLarge.body, /over this server's limit of 65536 bytes .*send smaller frames/);
  await stillServes(s.port, 'oversized');

  // A fifth subscription where the endpoint allows four per session.
  const subs = stompClient(s.port);
  await subs.connected;
  for (let i = 0; i < 5; i++) subs.client.subscribe(`/queue/sub-${i}`, () => {}, { ack: 'client' });
  await subs.closed;
  assert.equal(subs.errors.length, 1, 'one ERROR');
  assert.equal(subs.errors[0].headers.message, 'Too many subscriptions');
  assert.match(subs.errors[0].body, /holds 4 subscriptions, the most allowed: UNSUBSCRIBE some first/);
  await stillServes(s.port, 'subscriptions');

  // Six sessions at once at most: the seventh socket is refused.
  const six = Array.from({ length: 6 }, () => stompClient(s.port));
  await Promise.all(six.map((c) => c.connected));
  const seventh = rawSocket(s.port);
  await seventh.closed;
  assert.deepEqual(errorOf(seventh.frames), {
    message: 'Too many connections',
    body: 'this endpoint serves at most 6 connections at once (its limits.maxConnections): try again later',
  });
  await six[0].stop();
  await stillServes(s.port, 'connections');
  await Promise.all(six.slice(1).map((c) => c.stop()));
});

test("edge stomp: the package ships 'tabbit/deno' with its types", async () => {
  await needPackage();
  await assertExported('deno');
});
