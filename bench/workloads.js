// The in-page workloads of scripts/bench. The page (tests/node/blank.html) imports this module from
// /bench/workloads.js; bench/run.mjs calls its exports through page.evaluate and does the timing
// statistics, memory readings and reporting. Every function returns plain numbers (ms, counts, bytes).
//
//   const w = await import('/bench/workloads.js');
//   await w.load();                                   // or w.load('/target/bench-pkg-profiling/index.js')
//   await w.idbWrite({ n: 20000, size: 100 });        // → {ms}
//   await w.publish({ n: 20000, size: 100 });         // → {ms}; the connection stays open for drain/reopen
//   await w.drain();                                  // → {ms, got}
//   await w.finish();                                 // closes the connection and deletes its database
// tabbit is used through its package API (the main module, pkg/index.js): connect(), a confirm channel.

export let tabbit; // the package's main module (bench/mesh-workloads.js uses it too)
let wasm; // the wasm exports (memory)
let current = null; // {name, conn, ch} of the last publish()

/**
 * Imports the package's main module `pkg` (connect() loads the wasm), and the wasm-bindgen glue
 * beside it for the wasm's memory: the glue's init, called again, answers the instance it made.
 */
export async function load(pkg = '/pkg/index.js') {
  tabbit = await import(pkg);
  const version = await tabbit.version(); // loads the wasm
  const glue = await import(new URL('tabbit.js', new URL(pkg, location.href)).href);
  wasm = await glue.default();
  return { version, userAgent: navigator.userAgent };
}

/** A fresh connection to broker `name` on IndexedDB, with a confirm channel. */
async function open(name) {
  const conn = await tabbit.connect({ name, storage: 'indexeddb' });
  const ch = await conn.createConfirmChannel();
  return { conn, ch };
}

let unique = 0;
const uniqueName = (what) => `bench-${what}-${Date.now()}-${++unique}`;

export function payload(size) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = 97 + (i % 26);
  return bytes;
}

const request = (req) =>
  new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

export function deleteDb(name) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase(name);
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
    req.onblocked = () => {}; // the last connection is closing
  });
}

/**
 * Raw IndexedDB, the baseline: `n` messages of `size` bytes, `perTx` messages per read-write
 * transaction, at most `window` messages in transactions not yet complete. One record per message,
 * or with `segment` one record per transaction holding its `perTx` messages.
 */
export async function idbWrite({ n, size, perTx = 100, window = 1000, segment = false }) {
  const name = uniqueName('idb');
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => open.result.createObjectStore('m');
  const db = await request(open);
  const value = payload(segment ? size * perTx : size);
  const inFlight = [];
  let key = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i += perTx) {
    const tx = db.transaction('m', 'readwrite', { durability: 'default' }); // as tabbit's writes
    const store = tx.objectStore('m');
    if (segment) store.put(value, key++);
    else for (let j = 0; j < perTx; j++) store.put(value, key++);
    inFlight.push(
      new Promise((resolve, reject) => {
        tx.oncomplete = resolve;
        tx.onabort = () => reject(tx.error);
      }),
    );
    tx.commit();
    if (inFlight.length * perTx >= window) await inFlight.shift();
  }
  await Promise.all(inFlight);
  const ms = performance.now() - t0;
  db.close();
  await deleteDb(name);
  return { ms };
}

/** Closes the open connection, if any (the last one to its broker closes its storage), and deletes its database. */
export async function finish() {
  if (!current) return;
  const { name, conn } = current;
  current = null;
  if (conn) await conn.close();
  await deleteDb(`tabbit:${name}`);
}

/**
 * tabbit: connects to a fresh broker on IndexedDB, declares durable queue 'q' and publishes `n`
 * persistent messages of `size` bytes on a confirm channel with at most `window` unconfirmed;
 * timed until the last confirm. The connection stays open (for drain, reopen, memory readings)
 * until finish().
 */
export async function publish({ n, size, window = 1000 }) {
  await finish();
  const name = uniqueName('tabbit');
  const { conn, ch } = await open(name);
  current = { name, conn, ch };
  await ch.assertQueue('q', { durable: true });
  const body = payload(size);
  const options = { persistent: true };
  let unconfirmed = 0;
  let failure = null;
  let wake = null; // resolves the publishing loop's wait for a confirm
  const confirmed = (err) => {
    unconfirmed--;
    if (err) failure ??= err;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    while (unconfirmed >= window) await new Promise((ok) => (wake = ok));
    if (failure) throw failure;
    unconfirmed++;
    ch.sendToQueue('q', body, options, confirmed);
  }
  await ch.waitForConfirms(); // rejects if one was nacked
  if (failure) throw failure;
  return { ms: performance.now() - t0 };
}

/** tabbit: get + ack until queue 'q' of the open connection is empty, then flush; timed to the end of the flush. */
export async function drain() {
  const { conn, ch } = current;
  await conn.flush();
  let got = 0;
  const t0 = performance.now();
  for (;;) {
    const m = await ch.get('q');
    if (!m) break;
    ch.ack(m);
    got++;
  }
  await conn.flush();
  return { ms: performance.now() - t0, got };
}

/**
 * tabbit: closes the open connection (its broker and storage close with it), then `reps` times
 * connects again and times connect() + createConfirmChannel() until the first get returns a
 * message (not acked, so every reopen finds the same queue).
 */
export async function reopen({ reps }) {
  const { name, conn } = current;
  await conn.close();
  current.conn = null;
  const times = [];
  let messageCount = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const { conn: c, ch } = await open(name);
    const m = await ch.get('q');
    times.push(performance.now() - t0);
    if (!m) throw new Error('reopen: the queue came back empty');
    messageCount = (await ch.checkQueue('q')).messageCount + 1;
    await c.close();
  }
  current.conn = null; // closed; finish() deletes the database
  return { times, messageCount };
}

/** The wasm linear memory's size in bytes (it never shrinks: the high-water mark). */
export function wasmBytes() {
  return wasm.memory.buffer.byteLength;
}
