// The in-page workloads of the cross-tab rows (g)–(n) of scripts/bench. Every tab of a test loads
// this module (it re-exports load() of bench/workloads.js); bench/run.mjs starts each tab's part in
// turn: the receiving tabs listen, the sending tab sends and answers when it is done, then the
// receiving tabs answer what they got. `via` is 'bc' (a raw BroadcastChannel named `key`), 'port'
// (a raw MessagePort between two tabs, from pair({ key })), 'broadcast-channel' (the npm package of that name, the peer, with its `method` 'native' or 'idb',
// on channel `key`) or 'tabbit' (queue `queue` of the broker this tab joined, or with `exchange`
// a queue of its own bound to that exchange; `key` is then the broker's name).
//
//   const m = await import('/bench/mesh-workloads.js');
//   await m.load();
//   await m.join({ name });                                       // the first tab to join hosts → {hosting}
//   C: await m.listen({ via: 'tabbit', key: name, queue: 'q', n, every: 500 });  // consumes n (acks each), then stops
//   P: await m.send({ via: 'tabbit', key: name, queue: 'q', n, size, window: 1000 });   // → {t0, t1}
//   C: await m.received();                                        // → {t1, got, latencies}
//   await m.leave({ drop: true });                                // closes; `drop` deletes the database
//   W: await m.armFailover({ queue: 'q' });                       // → {t0}; then the host crashes, and
//   W: await m.received();                                        // → {t0, hosting, failover, get, ...}
//   H: await m.bindQueues({ exchange: 'x', type: 'topic', patterns });  // a queue per pattern
//   L: await m.startLoad({ role: 'publish', queue: 'bg', rate, size }); // background load; stopLoad() → {count, ms}
//
// Flow control: each receiver reports how many messages it has every `every` messages (and at the
// end) on BroadcastChannel 'bench:<key>:progress'; the sender keeps at most `window` messages sent
// and not reported by the slowest of its `receivers`, and at most `confirmWindow` unconfirmed (on a
// confirm channel; without it, a plain channel). Times are performance.timeOrigin +
// performance.now(), one clock for all tabs of a browser: t0 in the sending tab and t1 in the
// receiving ones time the same run, and with `stamps` each message carries its send time in its
// first 8 bytes (one-way latencies, ms).
import { deleteDb, payload, tabbit } from './workloads.js';
export { load } from './workloads.js';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const progressChannel = (key) => new BroadcastChannel(`bench:${key}:progress`);

let mesh = null; // {name, conn, plain, confirm} of join()
const ports = new Map(); // key -> this tab's end of the MessageChannel pair() got
let pending = null; // what received() answers

let peerModule = null;
/** The npm package broadcast-channel, from its own browser bundle (a script that sets window.BroadcastChannel2). */
const peer = () =>
  (peerModule ??= new Promise((ok, fail) => {
    const script = document.createElement('script');
    script.src = '/tests/node_modules/broadcast-channel/dist/lib/browser.js';
    script.onload = () => ok(window.BroadcastChannel2);
    script.onerror = () => fail(new Error(`could not load ${script.src}: npm ci in tests/`));
    document.head.append(script);
  }));
/** A channel of the package on `key` with `method`. */
async function peerChannel(key, method) {
  const bc = new (await peer())(key, { type: method });
  if (bc.type !== method) throw new Error(`broadcast-channel chose method '${bc.type}', not '${method}'`);
  return bc;
}

/**
 * Gets this tab's end of a MessageChannel to the other tab that calls pair() with the same `key`,
 * from the SharedWorker bench/port-switchboard.js (for listen() and send() with via 'port').
 */
export function pair({ key }) {
  const worker = new SharedWorker('/bench/port-switchboard.js', { name: 'bench-switchboard' });
  return new Promise((ok) => {
    worker.port.onmessage = ({ data, ports: [port] }) => {
      if (data !== 'paired') return;
      ports.set(key, port);
      worker.port.close();
      ok(true);
    };
    worker.port.postMessage({ key });
  });
}

/** Connects to broker `name` with a plain and a confirm channel for send(). */
export async function join({ name }) {
  const conn = await tabbit.connect({ name });
  mesh = { name, conn, plain: await conn.createChannel(), confirm: await conn.createConfirmChannel() };
  return { hosting: conn.hosting };
}

/** Closes the connection of join(); with `drop`, deletes the broker's database (the last tab to leave). */
export async function leave({ drop = false } = {}) {
  const { name, conn } = mesh;
  mesh = null;
  await conn.close();
  if (drop) await deleteDb(`tabbit:${name}`);
}

/** What the last listen() or armFailover() got, once it is complete (or an error after `timeout` ms). */
export async function received({ timeout = 60_000 } = {}) {
  const p = pending;
  pending = null;
  let timer;
  const late = new Promise((_, fail) => (timer = setTimeout(() => fail(new Error(`received: nothing after ${timeout} ms`)), timeout)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

const stampOf = (body) => new DataView(body.buffer, body.byteOffset, 8).getFloat64(0);

/**
 * Takes `n` messages: one to count (or `count` of them posted together), and reports progress.
 * → {take(body, count), done: promise of {t1, got, latencies}}
 */
function receiver({ key, n, every, stamps }) {
  const progress = progressChannel(key);
  const id = Math.random(); // of this receiver, in its progress reports
  const latencies = [];
  let got = 0;
  let reported = 0;
  let finish;
  const done = new Promise((ok) => (finish = ok)).finally(() => progress.close());
  const take = (body, count = 1) => {
    if (stamps) latencies.push(now() - stampOf(body));
    got += count;
    if (got - reported >= every || got >= n) progress.postMessage({ id, got: (reported = got) });
    if (got === n) finish({ t1: now(), got, latencies });
  };
  return { take, done };
}

/**
 * Receives `n` messages: from BroadcastChannel `key` (via 'bc'), from the package's channel `key`
 * (via 'broadcast-channel'), or by consuming `queue` (declared with `durable`; with `exchange`, of
 * `type`, a server-named exclusive queue bound to it with `pattern`) on a channel of its own,
 * acking each. Resolves once listening; received() answers {t1, got, latencies}.
 */
export async function listen({ via, key, method, queue, durable = false, exchange, type, pattern = '', n, every = Infinity, stamps = false }) {
  const r = receiver({ key, n, every, stamps });
  if (via === 'bc') {
    const bc = new BroadcastChannel(key);
    bc.onmessage = ({ data }) => (Array.isArray(data) ? r.take(data[0], data.length) : r.take(data));
    pending = r.done.finally(() => bc.close());
    return;
  }
  if (via === 'port') {
    const port = ports.get(key);
    port.onmessage = ({ data }) => (Array.isArray(data) ? r.take(data[0], data.length) : r.take(data));
    pending = r.done.finally(() => port.close());
    return;
  }
  if (via === 'broadcast-channel') {
    const bc = await peerChannel(key, method);
    bc.onmessage = (body) => r.take(body);
    pending = r.done.finally(async () => {
      await bc.close();
      if (method === 'idb') await deleteDb(`pubkey.broadcast-channel-0-${key}`); // its messages
    });
    return;
  }
  const ch = await mesh.conn.createChannel();
  if (exchange) {
    ({ queue } = await ch.assertQueue('', { exclusive: true, durable: false }));
    await ch.assertExchange(exchange, type, { durable });
    await ch.bindQueue(queue, exchange, pattern);
  } else await ch.assertQueue(queue, { durable });
  let cancelled;
  const gone = new Promise((_, fail) => (cancelled = fail));
  await ch.consume(queue, (m) => {
    if (m === null) return cancelled(new Error(`listen: the consumer of '${queue}' was cancelled`));
    r.take(m.content);
    ch.ack(m);
  });
  pending = Promise.race([r.done, gone]).finally(() => ch.close());
}

/**
 * Sends `n` messages of `size` bytes: on BroadcastChannel `key` (via 'bc'), `perPost` per
 * postMessage; on the package's channel `key` (via 'broadcast-channel'); or to `queue` (declared
 * with `durable` first), or with `exchange` (declared, of `type`) to that exchange with the routing
 * keys `keys` in turn, `persistent` or not, on the plain channel, or with `confirmWindow` on the
 * confirm channel. `gap`: ms to wait before each message after the first. → {t0, t1}, t1 when
 * everything was sent (and confirmed, or for 'broadcast-channel' handed on: written, for 'idb').
 */
export async function send({ via, key, method, transfer = false, queue, durable = false, exchange = '', type, keys = [queue ?? ''], n, size, perPost = 1, persistent = false, window = Infinity, confirmWindow = Infinity, receivers = 1, gap = 0, stamps = false }) {
  if (via === 'tabbit' && exchange) await mesh.plain.assertExchange(exchange, type, { durable });
  else if (via === 'tabbit') await mesh.plain.assertQueue(queue, { durable });
  let seen = 0; // messages the slowest receiver reported
  const reports = new Map(); // receiver → its count
  let unconfirmed = 0;
  let failure = null;
  let wake = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const progress = progressChannel(key);
  progress.onmessage = ({ data }) => {
    reports.set(data.id, data.got);
    if (reports.size >= receivers) seen = Math.min(...reports.values());
    poke();
  };
  let post;
  let flush;
  if (via === 'bc') {
    const bc = new BroadcastChannel(key);
    const batch = [];
    post = perPost === 1 ? (body) => bc.postMessage(body) : (body) => batch.push(body) === perPost && (bc.postMessage(batch), (batch.length = 0));
    flush = () => {
      if (batch.length) bc.postMessage(batch);
      bc.close(); // what was posted is on its way
    };
  } else if (via === 'port') {
    // Cloned as BroadcastChannel's are; with `transfer`, each post's bytes copied into buffers of
    // their own and transferred, as a sender that builds a post and gives it away would.
    const port = ports.get(key);
    const batch = [];
    const give = (bodies) => port.postMessage(bodies.length === 1 ? bodies[0] : bodies, transfer ? bodies.map((b) => b.buffer) : []);
    post = (body) => batch.push(transfer ? body.slice() : body) === perPost && (give(batch), (batch.length = 0));
    flush = () => {
      if (batch.length) give(batch);
    };
  } else if (via === 'broadcast-channel') {
    const bc = await peerChannel(key, method);
    post = (body) => bc.postMessage(body);
    flush = () => bc.close(); // resolves once every message is handed on (for 'idb', written)
  } else if (confirmWindow < Infinity) {
    const ch = mesh.confirm;
    const options = { persistent };
    const confirmed = (err) => {
      unconfirmed--;
      if (err) failure ??= err;
      poke();
    };
    post = (body, i) => (unconfirmed++, ch.publish(exchange, keys[i % keys.length], body, options, confirmed));
    flush = () => ch.waitForConfirms();
  } else {
    const ch = mesh.plain;
    const options = { persistent };
    post = (body, i) => ch.publish(exchange, keys[i % keys.length], body, options);
    flush = () => {};
  }
  const bodies = Array.from({ length: perPost }, () => payload(size)); // distinct: structured clone would share one
  const t0 = now();
  try {
    for (let i = 0; i < n; i++) {
      while (i - seen >= window || unconfirmed >= confirmWindow) await new Promise((ok) => (wake = ok));
      if (failure) throw failure;
      if (gap && i) await sleep(gap);
      let body = bodies[i % perPost];
      if (stamps) {
        body = payload(size); // a fresh one: the package may hold on to what it was given
        new DataView(body.buffer).setFloat64(0, now());
      }
      post(body, i);
    }
    await flush();
    if (failure) throw failure;
    return { t0, t1: now() };
  } finally {
    progress.close();
  }
}

/**
 * Waits for this tab to take over hosting after the host dies (Node crashes it), then gets from
 * `queue` until a message comes (not acked). Answers at once {t0}; received() answers {t0, hosting,
 * failover, get, failoverHosting, getErrors}: when conn.hosting was first seen true (polled), when
 * the 'failover' event came, when a get first returned a message.
 */
export async function armFailover({ queue, timeout = 30_000 }) {
  const { conn } = mesh;
  let ch = await conn.createChannel();
  await ch.checkQueue(queue);
  const at = { t0: 0, hosting: null, failover: null, get: null, failoverHosting: null, getErrors: [] };
  let started;
  const took = new Promise((ok) => (started = ok));
  conn.on('failover', (info) => {
    watch();
    at.failover ??= now();
    at.failoverHosting = info?.hosting;
    started();
  });
  const watch = () => {
    if (conn.hosting && at.hosting === null) {
      at.hosting = now();
      started();
    }
  };
  const poll = setInterval(watch, 1);
  pending = took
    .then(async () => {
      const deadline = now() + timeout;
      while (now() < deadline) {
        try {
          if (await ch.get(queue)) {
            at.get = now();
            break;
          }
        } catch (e) {
          at.getErrors.push(String(e?.message ?? e));
          ch = await conn.createChannel().catch(() => ch); // in case the failover closed it
        }
        await sleep(1);
      }
      while (at.hosting === null && now() < deadline) await sleep(1);
      if (at.get === null || at.hosting === null) throw new Error(`armFailover: ${JSON.stringify(at)} after ${timeout} ms`);
      return at;
    })
    .finally(() => clearInterval(poll));
  at.t0 = now();
  return { t0: at.t0 };
}

/** document.visibilityState (a hidden tab's timers are throttled). */
export function visibility() {
  return document.visibilityState;
}

/** Declares a transient queue per pattern of `patterns` (x.0, x.1, …) bound with it to `exchange` of `type`. */
export async function bindQueues({ exchange, type, patterns }) {
  const ch = mesh.plain;
  await ch.assertExchange(exchange, type, { durable: false });
  await Promise.all(
    patterns.map(async (pattern, i) => {
      await ch.assertQueue(`${exchange}.${i}`, { durable: false });
      await ch.bindQueue(`${exchange}.${i}`, exchange, pattern);
    }),
  );
}

/** Messages the queues of the broker took, all told (counted since it opened). */
export async function published() {
  return (await mesh.conn.stats()).queues.reduce((sum, q) => sum + q.published, 0);
}

let load = null; // {ch, count, t0, stop} of startLoad()

/**
 * Background load on the broker this tab joined, until stopLoad(): 'publish' sends transient
 * `size`-byte messages to `queue` at `rate` a second (what is due at every timer tick, ~4 ms);
 * 'consume' consumes them, acking each.
 */
export async function startLoad({ role, queue, rate, size }) {
  const ch = await mesh.conn.createChannel();
  await ch.assertQueue(queue, { durable: false });
  const l = (load = { ch, count: 0, t0: now(), stop: () => {} });
  if (role === 'consume') {
    await ch.consume(queue, (m) => m && (l.count++, ch.ack(m)));
  } else {
    const body = payload(size);
    const timer = setInterval(() => {
      for (const due = ((now() - l.t0) * rate) / 1000; l.count < due; l.count++) ch.sendToQueue(queue, body);
    }, 1);
    l.stop = () => clearInterval(timer);
  }
}

/** Stops startLoad(): → {count, ms}, the messages sent or taken and over how long. */
export async function stopLoad() {
  const l = load;
  load = null;
  l.stop();
  const ms = now() - l.t0;
  await l.ch.close();
  return { count: l.count, ms };
}
