// JS helpers of the browser tests, in one module. Keep it one: each `inline_js` block is a
// module file of its own, and with five module files the page of `wasm-pack test --chrome`
// stalled while loading about one run in two (Chromium 156, wasm-bindgen-test 0.3: the
// last snippet request never completed; chromedriver then times out after 300 s).

function open(name) {
  return new Promise((ok, fail) => {
    const r = indexedDB.open(name);
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
}
export async function countRecords(name, store) {
  const db = await open(name);
  try {
    return await new Promise((ok, fail) => {
      const r = db.transaction(store, 'readonly').objectStore(store).count();
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
  } finally { db.close(); }
}
export async function putForeign(name, store, key, value) {
  const db = await open(name);
  try {
    await new Promise((ok, fail) => {
      const tx = db.transaction(store, 'readwrite');
      tx.objectStore(store).put(value, key);
      tx.oncomplete = () => ok();
      tx.onabort = () => fail(tx.error);
    });
  } finally { db.close(); }
}
export function openDb(name) { return open(name); }
export function countNow(db, store) {
  return new Promise((ok, fail) => {
    const r = db.transaction(store, 'readonly').objectStore(store).count();
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
}
export class MapAdapter {
  constructor() { this.records = new Map(); this.failNext = false; this.writes = 0; }
  async load() { return [...this.records.values()]; }
  // Until release(), writes wait (the records keep what committed before).
  hold() { this.gate = new Promise((ok) => (this.release = () => { this.gate = null; ok(); })); }
  // A new adapter with the records committed so far: what a crash now would leave.
  snapshot() {
    const a = new MapAdapter();
    for (const [k, [store, key, value]] of this.records) a.records.set(k, [store, key, value.slice()]);
    return a;
  }
  async write(writes) {
    if (this.gate) await this.gate;
    if (this.failNext) { this.failNext = false; throw new Error('disk on fire'); }
    // Full, as a browser's storage over its quota: deletions only.
    if (this.full && writes.some((w) => w.value !== undefined)) throw new DOMException('over quota', 'QuotaExceededError');
    this.writes++;
    for (const { store, key, value } of writes) {
      const k = store + '\u0000' + typeof key + key;
      if (value === undefined) this.records.delete(k); else this.records.set(k, [store, key, value.slice()]);
    }
  }
}
// Resolves when the request succeeds; fails if it is still waiting 2 s after 'blocked'
// (an open connection that never closes).
function unblocked(r, what) {
  return new Promise((ok, fail) => {
    r.onsuccess = () => { if (r.result && r.result.close) r.result.close(); ok(); };
    r.onerror = () => fail(r.error);
    r.onblocked = () => setTimeout(() => fail(new Error(what + ' stayed blocked by an open connection')), 2000);
  });
}
export function upgradeTo(name, version) {
  const r = indexedDB.open(name, version);
  r.onupgradeneeded = () => r.result.createObjectStore('added-by-v' + version);
  return unblocked(r, 'upgrade');
}
export function deleteDb(name) {
  return unblocked(indexedDB.deleteDatabase(name), 'delete');
}
export function sleep(ms) { return new Promise((ok) => setTimeout(ok, ms)); }

export function recorder() {
  const events = [];
  const fn = (name, arg) => events.push([name, arg]);
  fn.events = events;
  return fn;
}
export function collector() {
  const got = [];
  const fn = (m) => got.push(m);
  fn.got = got;
  return fn;
}
export function tick() { return new Promise((ok) => setTimeout(ok, 0)); }

export function failingStorage() {
  return { async load() { return []; }, async write() { throw new Error('disk on fire'); } };
}

// Posts each value on the broker's BroadcastChannel, as another script of the origin could.
export function postRaw(name, values) {
  const ch = new BroadcastChannel(`tabbit:${name}`);
  for (const v of values) ch.postMessage(v);
  ch.close();
}
