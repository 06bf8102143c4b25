// The in-page workloads of scripts/bench. The page (tests/node/blank.html) imports this module from
// /bench/workloads.js; bench/run.mjs calls its exports through page.evaluate and does the timing
// statistics, memory readings and reporting. Every function returns plain numbers (ms, counts, bytes).
//
//   const w = await import('/bench/workloads.js');
//   await w.load();                                   // or w.load('/target/bench-pkg-profiling/tabbit.js')
//   await w.idbWrite({ n: 20000, size: 100 });        // → {ms}
//   await w.publish({ n: 20000, size: 100 });         // → {ms}; the broker stays open for drain/reopen
//   await w.drain();                                  // → {ms, got}
//   await w.finish();                                 // closes the broker and deletes its database

let tabbit; // the package module
let wasm; // its wasm exports (memory)
let current = null; // {name, broker} of the last publish()

/** Imports and initialises the package. */
export async function load(pkg = '/pkg/tabbit.js') {
  tabbit = await import(pkg);
  wasm = await tabbit.default();
  return { version: tabbit.version(), userAgent: navigator.userAgent };
}

let unique = 0;
const uniqueName = (what) => `bench-${what}-${Date.now()}-${++unique}`;

function payload(size) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = 97 + (i % 26);
  return bytes;
}

const request = (req) =>
  new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

function deleteDb(name) {
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

/** Closes the open broker, if any, and deletes its database. */
export async function finish() {
  if (!current) return;
  const { name, broker } = current;
  current = null;
  if (broker) await broker.close();
  await deleteDb(`tabbit:${name}`);
}

/**
 * tabbit: opens a fresh broker on IndexedDB, declares durable queue 'q' and publishes `n`
 * persistent messages of `size` bytes with at most `window` unconfirmed; timed until the last
 * confirm. The broker stays open (for drain, reopen, memory readings) until finish().
 */
export async function publish({ n, size, window = 1000 }) {
  await finish();
  const name = uniqueName('tabbit');
  const broker = await tabbit.Broker.open(name, 'indexeddb');
  current = { name, broker };
  broker.assertQueue('q', { durable: true });
  const body = payload(size);
  const options = { persistent: true };
  const ring = new Array(window); // confirms not yet awaited, by publish number modulo window
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const slot = i % window;
    if (ring[slot]) await ring[slot];
    ring[slot] = broker.sendToQueue('q', body, options);
  }
  await Promise.all(ring);
  return { ms: performance.now() - t0 };
}

/** tabbit: get + ack until queue 'q' of the open broker is empty, then flush; timed to the end of the flush. */
export async function drain() {
  const { broker } = current;
  await broker.flush();
  let got = 0;
  const t0 = performance.now();
  for (;;) {
    const m = await broker.get('q'); // works whether get returns a message or a promise of one
    if (!m) break;
    broker.ack(m);
    got++;
  }
  await broker.flush();
  return { ms: performance.now() - t0, got };
}

/**
 * tabbit: closes the open broker, then `reps` times opens it again and times Broker.open until
 * the first get returns a message (not acked, so every reopen finds the same queue).
 */
export async function reopen({ reps }) {
  const { name, broker } = current;
  await broker.close();
  current.broker = null;
  const times = [];
  let messageCount = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const b = await tabbit.Broker.open(name, 'indexeddb');
    const m = await b.get('q');
    times.push(performance.now() - t0);
    if (!m) throw new Error('reopen: the queue came back empty');
    messageCount = b.messageCount('q') + 1;
    await b.close();
  }
  current.broker = null; // closed; finish() deletes the database
  return { times, messageCount };
}

/** The wasm linear memory's size in bytes (it never shrinks: the high-water mark). */
export function wasmBytes() {
  return wasm.memory.buffer.byteLength;
}
