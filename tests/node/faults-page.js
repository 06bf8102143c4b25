// Page-side half of tests/node/faults.test.mjs, on top of tests/node/mesh-page.js (imported, so
// `mesh` and `__state` are there too): a publisher that runs until told to stop and reports the
// error code of every failed confirm, a fixed-size publish for the end of a schedule, and the
// queue's full entry in stats().
//
//   await page.evaluate((name) => import('/tests/node/faults-page.js').then((m) => m.join(name)), name);
//   await page.evaluate(() => faults.startPublisher('jobs', 'p0.1-', { window: 20, interval: 5 }));
//   await page.evaluate(() => faults.stopPublisher());          // → {sent, confirmed, failed, codes, pending}
//   await page.evaluate(() => faults.publishN('jobs', 20, 'tail-')); // → {confirmed: [ids], failed: [{id, code}]}
//   await page.evaluate(() => faults.queueStats('jobs'));        // → {host, hosting, queue: QueueStats | null, contexts}
//
// Reports go to the same `__meshReport(batch)` Node exposed for mesh-page.js, through a pump of
// their own (one batch in flight at a time): ['confirmed', id] when a confirm callback got no
// error, ['failed', {id, code}] when it got one (or sendToQueue threw). The publishing tab
// consumes nothing, so the order between these and mesh-page's own reports does not matter.
import * as mesh from '/tests/node/mesh-page.js';

export const join = mesh.join;

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const text = (e) => String(e?.message ?? e) + (e?.code !== undefined ? ` (code ${e.code})` : '');

// ---- reports to Node (like mesh-page.js's) ------------------------------------------------------

const { report } = mesh;

/** Resolves when Node has taken in every report made so far. */
export const reported = () => mesh.reported();

// ---- publishing -------------------------------------------------------------------------------

/** A confirm channel with `queue` declared (durable); null if none could be opened within `ms`. */
async function confirmChannel(queue, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const ch = await mesh.connection().createConfirmChannel();
      ch.closed = false;
      ch.on('close', () => (ch.closed = true));
      ch.on('error', (e) => mesh.state.events.push({ at: Date.now(), event: `publisher channel error: ${text(e)}` }));
      await ch.assertQueue(queue, { durable: true });
      return ch;
    } catch (e) {
      mesh.state.events.push({ at: Date.now(), event: `confirm channel failed: ${text(e)}` });
      if (Date.now() > deadline) return null;
      await sleep(100);
    }
  }
}

/**
 * Sends one persistent message `${id} xxx…` with messageId `id` on `ch`; resolves once its confirm
 * callback ran (or sendToQueue threw), after reporting it. `run` counts.
 */
function sendOne(ch, queue, id, run) {
  const filler = 'x'.repeat(64);
  return new Promise((ok) => {
    let done = false;
    const fail = (e) => {
      const code = e?.code ?? 'none';
      run.failed++;
      run.codes[code] = (run.codes[code] ?? 0) + 1;
      run.failedIds.push({ id, code, message: String(e?.message ?? e).slice(0, 120) });
      report('failed', { id, code });
    };
    try {
      ch.sendToQueue(queue, new TextEncoder().encode(`${id} ${filler}`), { persistent: true, messageId: id }, (err) => {
        if (done) {
          mesh.state.errors.push(`confirm of ${id} called back twice`);
          return;
        }
        done = true;
        if (err) fail(err);
        else {
          run.confirmed++;
          run.confirmedIds.push(id);
          report('confirmed', id);
        }
        ok();
      });
      run.sent++;
    } catch (e) {
      done = true;
      if (e?.code === 504 || e?.code === 320 || e?.code === 541) ch.closed = true;
      fail(e);
      ok();
    }
  });
}

const newRun = (queue, prefix) => ({ queue, prefix, sent: 0, confirmed: 0, failed: 0, codes: {}, pending: 0, stop: false, done: false, error: null, confirmedIds: [], failedIds: [] });

/** The background publisher's run (plain data but for its id lists, which stopPublisher trims). */
let current = null;
let finished = null;

/**
 * Publishes persistent messages `${prefix}0`, `${prefix}1`, … to the durable `queue` until
 * stopPublisher(): at most `window` unconfirmed, `interval` ms between publishes. A failed
 * confirm is reported (with its code) and not retried; a closed channel is replaced.
 */
export function startPublisher(queue, prefix, { window = 20, interval = 5 } = {}) {
  if (current && !current.done) throw new Error('faults-page: a publisher runs already');
  const run = (current = newRun(queue, prefix));
  finished = (async () => {
    const inflight = new Set();
    let ch = null;
    for (let i = 0; !run.stop; i++) {
      if (!ch || ch.closed) {
        ch = await confirmChannel(queue);
        if (!ch) {
          run.error = 'no confirm channel within 3 s';
          i--;
          continue;
        }
      }
      const p = sendOne(ch, queue, `${prefix}${i}`, run);
      inflight.add(p);
      p.then(() => inflight.delete(p));
      while (inflight.size >= window && !run.stop) await Promise.race([...inflight, sleep(50)]);
      if (interval > 0) await sleep(interval);
    }
    return inflight;
  })();
  return true;
}

/**
 * Stops the publisher, waits up to `settleTimeout` ms for the confirms still missing (those still
 * missing then count as `pending`) and until Node has every report. → the run's figures.
 */
export async function stopPublisher(settleTimeout = 10_000) {
  if (!current) return null;
  current.stop = true;
  const inflight = await finished;
  await Promise.race([Promise.all(inflight), sleep(settleTimeout)]);
  current.pending = inflight.size;
  current.done = true;
  await reported();
  const { confirmedIds, failedIds, ...figures } = current;
  return { ...figures, failedSample: failedIds.slice(0, 5) };
}

/** Publishes `count` messages `${prefix}0…` and waits for every confirm (or `settleTimeout`). */
export async function publishN(queue, count, prefix, settleTimeout = 10_000) {
  const run = newRun(queue, prefix);
  const ch = await confirmChannel(queue);
  if (!ch) return { confirmed: [], failed: [], pending: count, error: 'no confirm channel within 3 s' };
  const all = [];
  for (let i = 0; i < count; i++) all.push(sendOne(ch, queue, `${prefix}${i}`, run));
  let timer;
  await Promise.race([Promise.all(all), new Promise((ok) => (timer = setTimeout(ok, settleTimeout)))]);
  clearTimeout(timer);
  await reported();
  return { confirmed: run.confirmedIds, failed: run.failedIds, pending: count - run.confirmed - run.failed, error: null };
}

/** Every delivery to this tab's consumers: [messageId, deliveryTag, redelivered, ms], for diagnosis. */
export const tags = [];

/**
 * mesh.consume(queue, options), with every delivery's tag recorded in `tags` (the channel's
 * consume callback is wrapped before mesh-page.js sees a message).
 */
export async function consume(queue, options) {
  const conn = mesh.connection();
  const createChannel = conn.createChannel;
  conn.createChannel = async function (...args) {
    const ch = await createChannel.apply(this, args);
    const channelConsume = ch.consume;
    ch.consume = function (q, callback, opts) {
      const wrapped = (msg) => {
        if (msg) tags.push([msg.properties.messageId, msg.fields.deliveryTag, msg.fields.redelivered, Date.now() % 100_000]);
        return callback(msg);
      };
      return channelConsume.call(this, q, wrapped, opts);
    };
    return ch;
  };
  try {
    return await mesh.consume(queue, options);
  } finally {
    conn.createChannel = createChannel;
  }
}

/** The queue's entry in stats() (null if there is none), with the host's id. */
export async function queueStats(queue) {
  const s = await mesh.connection().stats();
  const contexts = s.contexts.map((c) => ({ label: c.label, hosting: c.hosting, channels: c.channels, consumers: c.consumers, unacked: c.unacked }));
  return { host: s.host, hosting: s.hosting, queue: s.queues.find((q) => q.name === queue) ?? null, contexts };
}

/**
 * What broker `name`'s IndexedDB database holds, read directly (no tabbit): whether it exists, and
 * the number of records and their bytes in each of its object stores. For a tab that has not
 * joined: a fault's log says what the browser kept across a restart before any broker ran.
 */
export async function census(name) {
  const dbName = `tabbit:${name}`;
  const known = (await indexedDB.databases()).some((d) => d.name === dbName);
  if (!known) return { exists: false };
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open(dbName);
    // Gone since databases() answered: never create it here (without its object stores).
    r.onupgradeneeded = () => r.transaction.abort();
    r.onsuccess = () => ok(r.result);
    r.onerror = () => (r.error?.name === 'AbortError' ? ok(null) : no(r.error));
  });
  if (!db) return { exists: false };
  try {
    const out = { exists: true, version: db.version };
    for (const store of db.objectStoreNames) {
      const values = await new Promise((ok, no) => {
        const r = db.transaction(store).objectStore(store).getAll();
        r.onsuccess = () => ok(r.result);
        r.onerror = () => no(r.error);
      });
      out[store] = [values.length, values.reduce((n, v) => n + (v?.byteLength ?? 0), 0)];
    }
    return out;
  } finally {
    db.close();
  }
}

/** What recovery skipped when this context began to host ([] if it does not host). */
export const problems = () => mesh.connection().problems ?? [];

/** stats().storageEmptied: when the host found the broker's database deleted (null: never). */
export const storageEmptied = () => mesh.connection().stats().then((s) => s.storageEmptied ?? null);

globalThis.faults = { consume, tags, startPublisher, stopPublisher, publishN, queueStats, census, problems, storageEmptied, reported, run: () => current };
