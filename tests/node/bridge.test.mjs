// The bridge to RabbitMQ over Web-STOMP (conn.bridge()), end to end: a real RabbitMQ node
// (Debian's rabbitmq-server with rabbitmq_web_stomp, started here on loopback: ./rabbitmq.mjs),
// tabs in headless Chromium, and pika on the other side (tests/bridge/send.py, receive.py, as
// RabbitMQ's first tutorial uses it).
//
//   - pika → RabbitMQ queue 'hello' → bridge → local queue 'inbox' → a tab's consumer, with
//     properties mapped; a tab → local exchange 'to-rabbit' → outbox → RabbitMQ queue 'tasks' →
//     pika's basic_consume; three tabs make one WebSocket; a client tab sees the status;
//   - offline outbox: RabbitMQ stopped, a tab publishes N (confirmed: stored locally), the tab is
//     closed and another opened; RabbitMQ starts; all N arrive once, in order (sent several
//     SEND frames to a WebSocket message);
//   - the host tab is crashed mid-stream both ways: the bridge moves to another tab; nothing lost;
//   - wrong credentials and a refused connection: the status says so; then it connects.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { BLANK, ROOT, TEST_TIMEOUT, crashPage, launchBrowser, openPage, startServer, waitUntil } from './browser.mjs';
import { freePort, rabbitAvailable, startRabbit } from './rabbitmq.mjs';

const PY = process.env.PYTHON ?? 'python3';
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

let server;
let browser;
let rabbit;
before(async () => {
  if (!(await rabbitAvailable())) throw new Error('rabbitmq-server is not installed: run scripts/setup (it installs it)');
  [server, browser, rabbit] = await Promise.all([startServer(), launchBrowser(), startRabbit()]);
});
after(async () => {
  await browser?.close();
  await server?.close();
  await rabbit?.close();
});


/** Runs tests/bridge/send.py: pika publishes `bodies` to queue `queue` (declared first). */
function pikaSend(queue, bodies) {
  return runPy('send.py', [String(rabbit.amqpPort), queue, ...bodies]).done;
}

/**
 * Starts tests/bridge/receive.py: pika consumes `count` messages of `queue`. `ready` resolves
 * once it has declared the queue; `done` with the messages it printed.
 */
function pikaReceive(queue, count, timeoutS = 60) {
  return runPy('receive.py', [String(rabbit.amqpPort), queue, String(count), String(timeoutS)]);
}

function runPy(script, args) {
  const p = spawn(PY, ['-u', join(ROOT, 'tests/bridge', script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const lines = () => out.split('\n').filter((l) => l.startsWith('{') && l.endsWith('}')).map((l) => JSON.parse(l));
  const done = new Promise((resolve, reject) => {
    p.on('exit', (code) => {
      if (code === 0) resolve(lines());
      else reject(new Error(`${script} exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ')} (got ${lines().length})`));
    });
  });
  // Killed with the test if still running.
  done.catch(() => {});
  return { done, lines, kill: () => p.kill() };
}

/** Waits until RabbitMQ's queue `queue` exists (pika declared it). */
async function rabbitQueue(queue) {
  await waitUntil(`RabbitMQ queue ${queue}`, async () => (await rabbit.ctl('list_queues', 'name', '--quiet')).split('\n').includes(queue));
}

/**
 * How many consumers RabbitMQ's queue `queue` has: one per bridge that subscribes to it, so one
 * per WebSocket. (rabbitmqctl list_connections does not list Web-STOMP's connections in 3.10.)
 */
async function consumersOf(queue) {
  const out = await rabbit.ctl('list_queues', 'name', 'consumers', '--quiet');
  const line = out.split('\n').map((l) => l.trim().split(/\s+/)).find(([n]) => n === queue);
  return line ? Number(line[1]) : 0;
}

let names = 0;
const brokerName = (tag) => `bridge-${tag}-${Date.now()}-${++names}`;

async function tab(context, name, bridge) {
  const { page, errors } = await openPage(context, `${server.url}${BLANK}`);
  await page.evaluate((a) => import('/tests/node/bridge-page.js').then((m) => m.join(a)), { name, bridge });
  return { page, errors };
}

const status = (page) => page.evaluate(() => __bridge.status());
const received = (page) => page.evaluate(() => __bridge.state.received);

test('pika to a tab and a tab to pika, through one bridge for three tabs', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await browser.browser.newContext();
  t.after(() => context.close());
  const name = brokerName('pika');
  // RabbitMQ's side first, as the tutorial has it: 'hello' holds three messages; 'tasks' has a consumer.
  await pikaSend('hello', ['Hello World!', 'second', 'third']);
  const consumer = pikaReceive('tasks', 3);
  await rabbitQueue('tasks');
  const config = {
    url: rabbit.wsUrl,
    inbound: [{ from: '/amq/queue/hello', to: { queue: 'inbox' } }],
    outbound: [{ exchange: 'to-rabbit', to: '/amq/queue/tasks' }],
  };
  const tabs = [];
  for (let i = 0; i < 3; i++) tabs.push(await tab(context, name, config));
  const [host] = tabs;
  assert.equal(await host.page.evaluate(() => __bridge.hosting()), true);
  await host.page.evaluate(() => __bridge.consume('inbox'));
  const got = await waitUntil('3 messages in the tab', async () => {
    const r = await received(host.page);
    return r.length >= 3 && r;
  });
  assert.deepEqual(got.map((m) => m.body), ['Hello World!', 'second', 'third']);
  const first = got[0];
  assert.equal(first.contentType, 'text/plain');
  assert.equal(first.correlationId, 'corr-1');
  assert.equal(first.replyTo, 'answers');
  assert.equal(first.messageId, 'pika-1');
  assert.equal(first.headers['x-origin'], 'pika');
  assert.equal(first.routingKey, 'inbox', "sent to a queue: the default exchange, the queue's name");
  assert.equal(first.deliveryMode, 2, 'stored locally as persistent');

  // A client tab publishes; the host's bridge sends; pika receives, with the properties.
  const client = tabs[2];
  assert.equal(await client.page.evaluate(() => __bridge.hosting()), false);
  const ids = await client.page.evaluate(() =>
    __bridge.publish('to-rabbit', 'task.a', 3, 'to-pika-', { contentType: 'application/json', correlationId: 'c-9', replyTo: 'inbox', headers: { 'x-n': 7 } }),
  );
  assert.equal(ids.length, 3);
  const lines = await consumer.done;
  assert.deepEqual(lines.map((l) => l.body), ['to-pika-0', 'to-pika-1', 'to-pika-2']);
  assert.deepEqual(lines.map((l) => l.messageId), ids);
  assert.equal(lines[0].contentType, 'application/json');
  assert.equal(lines[0].correlationId, 'c-9');
  assert.equal(lines[0].replyTo, 'inbox');
  assert.equal(lines[0].headers['x-n'], '7');
  assert.equal(lines[0].deliveryMode, 2);

  // One WebSocket for three tabs, and every tab sees the status.
  assert.equal(await consumersOf('hello'), 1, 'one subscription: one bridge for three tabs');
  const s = await waitUntil('counters in the client', async () => {
    const st = (await client.page.evaluate(() => __bridge.stats())).bridges[0];
    return st?.outbound.confirmed === 3 && st.inbound.acked === 3 && st;
  });
  assert.equal(s.state, 'connected');
  assert.equal(s.error, null);
  assert.equal(s.rules.passcode, undefined, 'the passcode is not in the stats');
  const outbox = (await client.page.evaluate(() => __bridge.stats())).queues.find((q) => q.name === 'bridge.default.to-rabbit');
  assert.deepEqual([outbox.ready, outbox.unacked], [0, 0]);

  // The console, opened on this broker as one more tab, lists the bridge.
  const consolePage = await openPage(context, new URL(`/www/?broker=${encodeURIComponent(name)}#/connections`, server.url).href);
  const row = consolePage.page.locator('#bridge-rows tr[data-key="default"]');
  await waitUntil(async () => `the bridge in the console: ${await consolePage.page.locator('#bridge-rows').innerHTML()} ${JSON.stringify(consolePage.errors)} ${await consolePage.page.evaluate(() => document.querySelector('#status')?.textContent ?? location.href)}`, async () => (await row.count()) === 1 && /connected/.test(await row.innerText()));
  const cells = await row.locator('th, td').allInnerTexts();
  assert.equal(cells[0], 'default');
  assert.equal(cells[1], `guest@${rabbit.wsUrl} /`);
  assert.match(cells[2], /^connected$/);
  assert.deepEqual(cells.slice(3, 8), ['3', '3', '0', '3', '3']);
  assert.equal(cells[8], 'bridge.default.to-rabbit');
  assert.deepEqual(consolePage.errors, []);

  // The bridge runs while a context wants it: two tabs let go, it runs on; the third, it stops.
  await host.page.evaluate(() => __bridge.closeBridge());
  await tabs[1].page.evaluate(() => __bridge.closeBridge());
  await sleep(300);
  assert.equal(await consumersOf('hello'), 1);
  await client.page.evaluate(() => __bridge.closeBridge());
  await waitUntil('the subscription to go', async () => (await consumersOf('hello')) === 0);
  await waitUntil('the console to list no bridge', async () => (await row.count()) === 0);
  assert.deepEqual((await client.page.evaluate(() => __bridge.stats())).bridges, []);
  for (const { errors } of tabs) assert.deepEqual(errors, []);
});

test('offline outbox: published while RabbitMQ is down, sent once and in order when it is back', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await browser.browser.newContext();
  t.after(() => context.close());
  const name = brokerName('offline');
  const N = 200;
  const config = {
    url: rabbit.wsUrl,
    reconnect: { initialMs: 200, maxMs: 1000 },
    outbound: [{ exchange: 'to-rabbit', pattern: 'offline.#', to: '/amq/queue/offline' }],
  };
  await pikaSend('offline', []);
  const a = await tab(context, name, config);
  await waitUntil('connected', async () => (await status(a.page))?.state === 'connected');
  await rabbit.stop();
  await waitUntil('the bridge to notice', async () => (await status(a.page))?.state === 'waiting');
  const ids = await a.page.evaluate((n) => __bridge.publish('to-rabbit', 'offline.x', n, 'off-'), N);
  assert.equal(ids.length, N, 'every message confirmed locally while RabbitMQ is down');
  const st = await status(a.page);
  assert.match(st.error, /could not connect|closed/);
  // The tab goes; another one opens later: the outbox is in IndexedDB.
  await a.page.close();
  await rabbit.start();
  // Pika declares the queue again (it was not durable) and consumes.
  const consumer = pikaReceive('offline', N);
  await rabbitQueue('offline');
  // The next tab counts the STOMP SEND frames its WebSocket sends, and in how many messages.
  await context.addInitScript(() => {
    const send = WebSocket.prototype.send;
    globalThis.__sends = { frames: 0, messages: 0 };
    WebSocket.prototype.send = function (data) {
      const text = typeof data === 'string' ? data : new TextDecoder('latin1').decode(data);
      const frames = text.split('\0').filter((f) => /^\n*SEND\n/.test(f)).length;
      __sends.frames += frames;
      __sends.messages += frames ? 1 : 0;
      return send.call(this, data);
    };
  });
  const b = await tab(context, name, config);
  const lines = await consumer.done;
  assert.deepEqual(lines.map((l) => l.body), ids, 'all N, once, in order');
  // Several SENDs in one WebSocket message: RabbitMQ's Web-STOMP took every one of them.
  const sends = await b.page.evaluate(() => __sends);
  assert.ok(sends.frames >= N && sends.messages < sends.frames, `${sends.frames} SENDs in ${sends.messages} WebSocket messages`);
  t.diagnostic(`${sends.frames} SENDs in ${sends.messages} WebSocket messages`);
  await waitUntil('the outbox drained', async () => {
    const q = (await b.page.evaluate(() => __bridge.stats())).queues.find((x) => x.name === 'bridge.default.to-rabbit.offline.#');
    return q && q.ready === 0 && q.unacked === 0;
  });
  // Nothing more arrives (a duplicate would).
  const extra = pikaReceive('offline', 1, 2);
  await assert.rejects(extra.done, /exited with 2/);
  assert.deepEqual(b.errors, []);
});

test('the host tab crashes mid-stream: the bridge moves to another tab, nothing is lost', { timeout: 2 * TEST_TIMEOUT }, async (t) => {
  const context = await browser.browser.newContext();
  t.after(() => context.close());
  const name = brokerName('crash');
  const N = 400;
  await pikaSend('crash-in', []);
  // Duplicates and publishes that failed with the host (320: they may have been stored) also
  // reach pika, so N lines can come before the last confirmed id: pika takes everything, and
  // the test stops it once every confirmed id is there.
  const toPika = pikaReceive('crash-out', 100 * N, 200);
  await rabbitQueue('crash-out');
  const config = {
    url: rabbit.wsUrl,
    prefetch: 20,
    reconnect: { initialMs: 200, maxMs: 1000 },
    inbound: [{ from: '/amq/queue/crash-in', to: { queue: 'inbox' } }],
    outbound: [{ exchange: 'to-rabbit', to: '/amq/queue/crash-out' }],
  };
  const host = await tab(context, name, config);
  const other = await tab(context, name, config);
  await waitUntil('connected', async () => (await status(host.page))?.state === 'connected');
  await other.page.evaluate(() => __bridge.consume('inbox'));
  // Both ways at once: pika sends N into RabbitMQ; the non-host tab streams N out.
  const sent = Array.from({ length: N }, (_, i) => `in-${i}`);
  const pikaSending = pikaSend('crash-in', sent);
  const streaming = other.page.evaluate((n) => __bridge.stream('to-rabbit', 'k', n, 'out-', 10, 15), N);
  await waitUntil('the stream under way', async () => (await other.page.evaluate(() => __bridge.state.confirmed.length)) > N / 4);
  await crashPage(host.page);
  await waitUntil('the other tab hosts', () => other.page.evaluate(() => __bridge.hosting()));
  await streaming;
  await pikaSending;
  const confirmed = await other.page.evaluate(() => __bridge.state.confirmed);
  const failed = await other.page.evaluate(() => __bridge.state.failed);
  // Publishes the dead host never answered fail (320) and were not confirmed: only confirmed ones count.
  assert.ok(confirmed.length >= N / 2, `${confirmed.length} confirmed, ${failed.length} failed`);
  // RabbitMQ learns of the dead host's socket when the browser closes it, or at worst after two
  // missed heart-beats (10 s each): what it held unacked comes back then.
  const got = await waitUntil(async () => {
    const ids = new Set(toPika.lines().map((l) => l.body));
    return `pika to get every confirmed id; missing ${confirmed.filter((id) => !ids.has(id)).slice(0, 10)}; status ${JSON.stringify(await status(other.page))}`;
  }, () => {
    const ids = new Set(toPika.lines().map((l) => l.body));
    return confirmed.every((id) => ids.has(id)) && ids;
  }, 90_000);
  toPika.kill();
  // Every message pika got carries its tabbit id: a duplicate (sent again after the crash) is recognisable.
  for (const l of toPika.lines()) assert.equal(l.messageId, l.body);
  const dupes = toPika.lines().length - got.size;
  const inbox = await waitUntil(async () => {
    const bodies = new Set((await received(other.page)).map((m) => m.body));
    return `every pika message in the tab; missing ${sent.filter((b) => !bodies.has(b)).slice(0, 10)}; RabbitMQ: ${await rabbit.ctl('list_queues', 'name', 'messages_ready', 'messages_unacknowledged', 'consumers', '--quiet')}; status ${JSON.stringify(await status(other.page))}`;
  }, async () => {
    const bodies = new Set((await received(other.page)).map((m) => m.body));
    return sent.every((b) => bodies.has(b)) && bodies;
  }, 90_000);
  assert.equal(inbox.size, N);
  const s = await status(other.page);
  assert.equal(s.host, (await other.page.evaluate(() => __bridge.stats())).host, 'run by the new host');
  await waitUntil('one subscription left at RabbitMQ (the dead host\'s went with its socket)', async () => (await consumersOf('crash-in')) === 1);
  assert.equal(s.state, 'connected');
  assert.deepEqual(other.errors, []);
  t.diagnostic(`${confirmed.length} of ${N} confirmed out (${failed.length} failed with the host), ${got.size} at pika, ${dupes} duplicates; ${inbox.size} in`);
});

/**
 * A WebSocket server that answers every message with bytes that are no STOMP frame: the fault of
 * a server that sends a malformed frame. (Not a RabbitMQ stand-in: it never gets as far as CONNECTED.)
 */
async function garbageServer() {
  const { createServer } = await import('node:http');
  const { createHash } = await import('node:crypto');
  const sockets = new Set();
  const http = createServer();
  http.on('upgrade', (req, socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n`,
    );
    socket.once('data', () => {
      // One unmasked binary frame: a lower-case command line, which STOMP does not allow.
      const payload = Buffer.from('connected\nversion:1.2\n\n\0');
      socket.write(Buffer.concat([Buffer.from([0x82, payload.length]), payload]));
    });
  });
  await new Promise((ok) => http.listen(0, '127.0.0.1', ok));
  return {
    url: `ws://127.0.0.1:${http.address().port}/ws`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((ok) => http.close(ok));
    },
  };
}

test('bad options, wrong credentials, a refused connection and a malformed frame: clear errors, the broker unharmed', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await browser.browser.newContext();
  t.after(() => context.close());
  const name = brokerName('faults');
  const a = await tab(context, name);
  const bridge = (options) =>
    a.page.evaluate(async (o) => {
      try {
        const { connect } = await import('/pkg/index.js');
        const conn = await connect({ name: o.name });
        globalThis.__bridges ??= [];
        const b = await conn.bridge(o.options);
        globalThis.__bridges.push(b);
        return { ok: true };
      } catch (e) {
        return { code: e.code, message: e.message };
      }
    }, { name, options });
  const statusOf = (bridgeName) => a.page.evaluate((n) => __bridges.find((b) => b.name === n)?.status ?? null, bridgeName);

  // Options are checked before anything is declared.
  const out = [{ exchange: 'to-rabbit', to: '/amq/queue/x' }];
  let r = await bridge({ url: 'http://example', outbound: out });
  assert.equal(r.code, 406);
  assert.match(r.message, /ws:\/\/ or wss:\/\//);
  r = await bridge({ url: rabbit.wsUrl, outbound: [{ exchange: 'to-rabbit', to: 'queue/x' }] });
  assert.equal(r.code, 406);
  assert.match(r.message, /outbound\[0\]\.to: 'queue\/x' is not a RabbitMQ STOMP destination: use \/amq\/queue/);
  r = await bridge({ url: rabbit.wsUrl, inbound: [{ from: '/amq/queue/x', to: {} }] });
  assert.match(r.message, /inbound\[0\]\.to must be \{ queue \} or \{ exchange, routingKey\? \}/);
  r = await bridge({ url: rabbit.wsUrl, outbound: out, passcode: 1 });
  assert.match(r.message, /'passcode' must be a string/);
  r = await bridge({ url: rabbit.wsUrl, outbound: out, colour: 'red' });
  assert.match(r.message, /unknown option 'colour'/);

  // Wrong credentials: RabbitMQ's refusal in the status, and retries with backoff.
  r = await bridge({ name: 'creds', url: rabbit.wsUrl, passcode: 'wrong', reconnect: { initialMs: 100, maxMs: 400 }, outbound: out });
  assert.deepEqual(r, { ok: true });
  const creds = await waitUntil('the refusal', async () => {
    const s = await statusOf('creds');
    return s?.state === 'waiting' && s;
  });
  assert.match(creds.error, /^RabbitMQ: .*(access|refused|login)/i);
  t.diagnostic(`wrong credentials: ${creds.error}`);
  // Same name, other options: refused, and the running bridge is untouched.
  r = await bridge({ name: 'creds', url: rabbit.wsUrl, outbound: out });
  assert.equal(r.code, 406);
  assert.match(r.message, /bridge 'creds' is declared already in this context with other options/);

  // Nothing listening.
  const port = await freePort();
  r = await bridge({ name: 'refused', url: `ws://127.0.0.1:${port}/ws`, reconnect: { initialMs: 100, maxMs: 400 }, outbound: [{ exchange: 'to-rabbit', pattern: 'r', to: '/amq/queue/x' }] });
  assert.deepEqual(r, { ok: true });
  const refused = await waitUntil('the refused connection', async () => {
    const s = await statusOf('refused');
    return s?.state === 'waiting' && s.error && s;
  });
  assert.match(refused.error, /could not connect to ws:\/\/127\.0\.0\.1/);

  // A server that sends a malformed frame.
  const garbage = await garbageServer();
  t.after(() => garbage.close());
  r = await bridge({ name: 'garbage', url: garbage.url, reconnect: { initialMs: 100, maxMs: 400 }, outbound: [{ exchange: 'to-rabbit', pattern: 'g', to: '/amq/queue/x' }] });
  assert.deepEqual(r, { ok: true });
  const bad = await waitUntil(async () => `the malformed frame: ${JSON.stringify(await statusOf('garbage'))}`, async () => {
    const s = await statusOf('garbage');
    return s?.error?.includes('malformed') && s;
  });
  assert.match(bad.error, /malformed frame from RabbitMQ: FRAME_ERROR - a STOMP frame from the server has a bad command line "connected"/);

  // Messages routed to the outboxes meanwhile wait, stored; the broker works on.
  const ids = await a.page.evaluate(() => __bridge.publish('to-rabbit', 'g', 5, 'g-'));
  assert.equal(ids.length, 5);
  const q = (await a.page.evaluate(() => __bridge.stats())).queues.find((x) => x.name === 'bridge.garbage.to-rabbit.g');
  assert.equal(q.ready + q.unacked, 5);
  // Chromium itself logs each refused WebSocket to the console; nothing else may be there.
  assert.deepEqual(a.errors.filter((e) => !/^console\.error: WebSocket connection to '.*' failed: Error in connection establishment/.test(e)), []);
});
