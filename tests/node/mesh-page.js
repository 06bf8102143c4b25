// Page-side half of tests/node/mesh.test.mjs: one tab's part in a mesh (one broker name shared by
// every tab and worker of the origin). A test's page imports it, joins, and then starts roles;
// Node reads what happened from `__state` (plain data) and drives the module through `mesh`:
//
//   await page.evaluate((name) => import('/tests/node/mesh-page.js').then((m) => m.join(name)), name);
//   await page.evaluate(() => mesh.consume('jobs', { prefetch: 5, ackDelay: 5 }));
//   await page.evaluate(() => mesh.publish('jobs', 100, 'a-'));   // → { confirmed: [ids], failed: [...], pending }
//   await page.evaluate(() => __state.received.length);
//
// Reports to Node. If Node exposed `__meshReport(batch)` (page.exposeFunction) before join(),
// every event is also sent there, in batches of [kind, data] pairs, one batch in flight at a
// time: ['delivered', {id, redelivered}], ['acking', id], ['acked', id], ['confirmed', id],
// ['failed', id], ['failover', info], ['cancelled', consumerTag]. With `reportFirst`, a consumer
// reports 'acking' and waits until Node has taken in that report (and the delivery's) before it
// acks, then reports 'acked': when the tab crashes, Node knows which messages were surely not
// acked (no 'acking'), and which may have been ('acking' without 'acked').
//
// Only amqplib's API plus the mesh's additions: `conn.hosting`, the connection's 'failover' event
// (`{hosting, cancelled}`), and `host` in `conn.stats()`.
import { connect } from '/pkg/index.js';

/** Everything a test reads; plain data only (page.evaluate copies it to Node). */
export const state = {
  name: null,
  joinedAt: null,
  /** conn.hosting as last seen (polled every 5 ms), and each change: {at, hosting}. */
  hosting: null,
  hostingChanges: [],
  /** Date.now() when this context was last seen to become the host; null while it is not. */
  hostingSince: null,
  /** Each 'failover' event: {at, hosting, cancelled, notRestored: [{what, code}]}. */
  failovers: [],
  /** One per consume(): {index, queue, tag, prefetch, received, acked, outstanding, maxOutstanding, cancelled}. */
  consumers: [],
  /** Every delivery to this context: {id, redelivered, consumer, at}. */
  received: [],
  /** Ids this context acked (after ch.ack returned). */
  acked: [],
  /** One per publish run: {queue, prefix, total, sent, confirmed, failed, pending, done, error}. */
  publishes: [],
  /** Ids whose publish was confirmed, and [{id, error}] whose confirm failed (or whose publish threw). */
  confirmed: [],
  failed: [],
  /** What should not happen: channel or connection 'error' events, bad contents, failed acks. */
  errors: [],
  /** Connection and channel lifecycle: {at, event, ...}. */
  events: [],
};
globalThis.__state = state;

let conn = null;
/** The channels of each consumer, by index in state.consumers (kept out of state: not plain data). */
const consumerChannels = [];

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const text = (e) => String(e?.message ?? e) + (e?.code !== undefined ? ` (code ${e.code})` : '');
const note = (what, e) => state.errors.push(`${what}: ${text(e)}`);

// ---- reports to Node ----------------------------------------------------------------------

const outbox = [];
let sending = false;
let queued = 0; // events queued so far
let taken = 0; // events Node has taken in
const waiters = [];

export function report(kind, data) {
  if (typeof globalThis.__meshReport !== 'function') return;
  outbox.push([kind, data]);
  queued++;
  pump();
}

function pump() {
  if (sending || outbox.length === 0) return;
  sending = true;
  const batch = outbox.splice(0);
  const upTo = queued;
  Promise.resolve()
    .then(() => globalThis.__meshReport(batch))
    .catch((e) => note('report to Node', e))
    .finally(() => {
      sending = false;
      taken = upTo;
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].seq <= taken) waiters.splice(i, 1)[0].ok();
      }
      pump();
    });
}

/** Resolves when Node has taken in every report made so far (at once without a reporter). */
export function reported() {
  if (taken >= queued) return Promise.resolve();
  const seq = queued;
  return new Promise((ok) => waiters.push({ seq, ok }));
}

// ---- the connection -------------------------------------------------------------------------

/** Connects to broker `name` (IndexedDB storage unless `options` say otherwise). → {hosting}. */
export async function join(name, options = {}) {
  if (conn) throw new Error(`mesh-page: joined '${state.name}' already`);
  state.name = name;
  conn = await connect({ name, ...options });
  state.joinedAt = Date.now();
  conn.on('failover', (info) => {
    const entry = {
      at: Date.now(),
      hosting: info?.hosting,
      cancelled: Array.from(info?.cancelled ?? []),
      notRestored: Array.from(info?.notRestored ?? [], (n) => ({ what: n.what, code: n.error?.code })),
    };
    state.failovers.push(entry);
    report('failover', entry);
  });
  conn.on('error', (e) => note('connection error', e));
  conn.on('close', () => state.events.push({ at: Date.now(), event: 'connection closed' }));
  const watch = () => {
    const hosting = conn.hosting;
    if (hosting === state.hosting) return;
    const at = Date.now();
    state.hosting = hosting;
    state.hostingChanges.push({ at, hosting });
    state.hostingSince = hosting ? at : null;
  };
  watch();
  setInterval(watch, 5);
  return { hosting: conn.hosting };
}

/** conn.hosting now. */
export function hosting() {
  return conn.hosting;
}

/** The hosting context's id, from stats(). */
export async function hostId() {
  return (await conn.stats()).host;
}

/** The queue's counts from stats(): {ready, unacked, consumers}, or null if there is no such queue. */
export async function queueCounts(queue) {
  const q = (await conn.stats()).queues?.find((x) => x.name === queue);
  return q ? { ready: q.ready, unacked: q.unacked, consumers: q.consumers } : null;
}

/** Waits until stats() shows at least `count` consumers on `queue`. */
export async function waitConsumers(queue, count, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const q = await queueCounts(queue);
    if ((q?.consumers ?? 0) >= count) return q;
    if (Date.now() > deadline) throw new Error(`waitConsumers: ${JSON.stringify(q)} after ${timeout} ms, want ${count} consumers on '${queue}'`);
    await sleep(10);
  }
}

/** The whole state (page.evaluate copies it). */
export function snapshot() {
  return state;
}

// ---- consuming ------------------------------------------------------------------------------

function watchChannel(ch, role) {
  ch.on('error', (e) => note(`${role} channel error`, e));
  ch.on('close', () => state.events.push({ at: Date.now(), event: `${role} channel closed` }));
}

/**
 * Consumes `queue` (declared durable unless `durable: false`) on a channel of its own.
 * `prefetch`: the channel's prefetch. `ack: false`: never ack. `ackDelay`: ms from delivery to
 * ack; `serial`: process one message at a time (each waits for the one before, then ackDelay),
 * else each message waits its own ackDelay. `reportFirst`: report 'acking' and ack only once Node
 * has the delivery and the 'acking' report (see the top of this file).
 * Resolves {consumerTag, index} once consume() resolved.
 */
export async function consume(queue, { prefetch = 1, ackDelay = 0, ack = true, serial = false, durable = true, reportFirst = false } = {}) {
  const ch = await conn.createChannel();
  watchChannel(ch, 'consumer');
  await ch.assertQueue(queue, { durable });
  await ch.prefetch(prefetch);
  const c = {
    index: null, // set once consume() resolved: a call that failed (320 in a failover) leaves no entry
    queue,
    tag: null,
    prefetch,
    received: 0,
    acked: 0,
    outstanding: 0,
    maxOutstanding: 0,
    cancelled: false,
    stopped: false,
  };
  const decoder = new TextDecoder();

  const finish = async (msg, id) => {
    if (reportFirst) await reported(); // Node knows of the delivery
    if (ackDelay > 0) await sleep(ackDelay);
    if (reportFirst) {
      report('acking', id); // Node knows this id may be acked from now on
      await reported();
    }
    // Counted as no longer held before ch.ack(): the ack may deliver the next message at once.
    c.outstanding--;
    try {
      ch.ack(msg);
    } catch (e) {
      c.outstanding++;
      note(`ack of ${id}`, e);
      return;
    }
    c.acked++;
    state.acked.push(id);
    report('acked', id);
  };
  let chain = Promise.resolve();

  const onMessage = (msg) => {
    if (msg === null) {
      c.cancelled = true;
      state.events.push({ at: Date.now(), event: 'consumer cancelled', tag: c.tag });
      report('cancelled', c.tag);
      return;
    }
    const id = msg.properties.messageId;
    const redelivered = msg.fields.redelivered;
    c.received++;
    c.outstanding++;
    c.maxOutstanding = Math.max(c.maxOutstanding, c.outstanding);
    state.received.push({ id, redelivered, consumer: c.index, at: Date.now() });
    if (!(msg.content instanceof Uint8Array) || !decoder.decode(msg.content).startsWith(`${id} `)) {
      state.errors.push(`message ${id}: content is not '${id} ...': ${String(msg.content).slice(0, 40)}`);
    }
    report('delivered', { id, redelivered });
    if (!ack) return;
    if (serial) chain = chain.then(() => finish(msg, id));
    else finish(msg, id);
  };

  const { consumerTag } = await ch.consume(queue, onMessage, { noAck: false });
  c.tag = consumerTag;
  c.index = state.consumers.length;
  state.consumers.push(c);
  consumerChannels[c.index] = ch;
  return { consumerTag, index: c.index };
}

/**
 * Cancels every consumer of this context, then waits (up to `timeout` ms) until each has acked
 * what it holds (consumers with `ack: false` excepted) and Node has every report.
 */
export async function stopConsuming(timeout = 5000) {
  for (const c of state.consumers) {
    if (c.stopped) continue;
    c.stopped = true;
    await consumerChannels[c.index].cancel(c.tag).catch((e) => state.events.push({ at: Date.now(), event: `cancel failed: ${text(e)}` }));
  }
  const deadline = Date.now() + timeout;
  while (state.consumers.some((c) => c.outstanding > 0) && Date.now() < deadline) await sleep(10);
  await reported();
  return state.consumers.map((c) => c.outstanding);
}

/**
 * Waits until `queue` looks drained: stats() shows nothing ready or unacked (if stats() knows
 * the queue) and no delivery came to this context for `quiet` ms; gives up after `timeout` ms.
 * → {drained, counts}.
 */
export async function settle(queue, { quiet = 300, timeout = 10_000 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const counts = await queueCounts(queue).catch(() => null);
    const last = state.received.at(-1)?.at ?? 0;
    const empty = counts === null || (counts.ready === 0 && counts.unacked === 0);
    if (empty && Date.now() - last >= quiet && state.consumers.every((c) => c.outstanding === 0)) {
      await reported();
      return { drained: true, counts };
    }
    if (Date.now() > deadline) return { drained: false, counts };
    await sleep(20);
  }
}

// ---- publishing -----------------------------------------------------------------------------

/** A confirm channel with `queue` declared; retries for up to 3 s (a failover may be under way). */
async function confirmChannel(queue, durable) {
  const deadline = Date.now() + 3000;
  for (;;) {
    try {
      const ch = await conn.createConfirmChannel();
      watchChannel(ch, 'publisher');
      ch.closed = false;
      ch.on('close', () => (ch.closed = true));
      await ch.assertQueue(queue, { durable });
      return ch;
    } catch (e) {
      state.events.push({ at: Date.now(), event: `confirm channel failed: ${text(e)}` });
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

/**
 * Publishes `count` persistent messages to `queue` on a confirm channel, ids `${prefix}${i}`,
 * contents `${id} xxx…`, at most `window` unconfirmed at a time; with `interval`, waits that
 * many ms after every `batch` publishes. A publish whose confirm fails (or that throws) is
 * recorded in state.failed and not retried; a closed channel is replaced by a new one.
 * Confirms still missing `settleTimeout` ms after the last publish count as `pending`.
 * → {confirmed: [ids], failed: [{id, error}], pending, error}
 */
export async function publish(queue, count, prefix, { window = 50, interval = 0, batch = 1, durable = true, settleTimeout = 10_000 } = {}) {
  const run = { queue, prefix, total: count, sent: 0, confirmed: 0, failed: 0, pending: 0, done: false, error: null };
  state.publishes.push(run);
  const confirmed = [];
  const failed = [];
  const fail = (id, e) => {
    const entry = { id, error: text(e) };
    failed.push(entry);
    state.failed.push(entry);
    run.failed++;
    report('failed', id);
  };
  const encoder = new TextEncoder();
  const filler = 'x'.repeat(64);
  const inflight = new Set();
  let ch = null;
  try {
    for (let i = 0; i < count; i++) {
      if (!ch || ch.closed) ch = await confirmChannel(queue, durable);
      const id = `${prefix}${i}`;
      const settled = new Promise((ok) => {
        let done = false;
        try {
          ch.sendToQueue(queue, encoder.encode(`${id} ${filler}`), { persistent: true, messageId: id }, (err) => {
            if (done) return state.errors.push(`confirm of ${id} called back twice`);
            done = true;
            if (err) fail(id, err);
            else {
              confirmed.push(id);
              state.confirmed.push(id);
              run.confirmed++;
              report('confirmed', id);
            }
            ok();
          });
          run.sent++;
        } catch (e) {
          done = true;
          if (e?.code === 504) ch.closed = true; // channel or connection closed: open another
          fail(id, e);
          ok();
        }
      });
      inflight.add(settled);
      settled.then(() => inflight.delete(settled));
      while (inflight.size >= window) await Promise.race(inflight);
      if (interval > 0 && (i + 1) % batch === 0) await sleep(interval);
    }
  } catch (e) {
    run.error = text(e); // could not open a channel: the connection is gone
  }
  await Promise.race([Promise.all(inflight), sleep(settleTimeout)]);
  run.pending = inflight.size;
  run.done = true;
  await reported();
  return { confirmed, failed, pending: run.pending, error: run.error };
}

/** publish() in the background: Node waits for state.publishes.at(-1).done. */
export function startPublishing(queue, count, prefix, options) {
  publish(queue, count, prefix, options).catch((e) => note('publish', e));
  return state.publishes.length; // the run's number (its index + 1) once publish() has pushed it
}

/** The connection join() made. */
export const connection = () => conn;

globalThis.mesh = { conn: connection, join, hosting, hostId, queueCounts, waitConsumers, snapshot, consume, stopConsuming, settle, publish, startPublishing, reported };
