// Persistent storage: the navigator.storage.persist() request, the StorageInfo of
// conn.storageInfo(), and the 'storage' warning after a persistent publish to a durable queue
// while the origin's storage is not known to be persisted.
// (docs/storage.md; the storage adapters are under storage/.)

// Browsers evict an origin's best-effort storage (IndexedDB included) under storage pressure,
// and Safari deletes the storage of a site not used for 7 days; storage the browser agreed to
// persist (navigator.storage.persist()) is evicted only by the user. StorageManager:
// https://storage.spec.whatwg.org/#storagemanager (persist() is [Exposed=Window] only: a
// worker can ask persisted() and estimate() but not persist()).

/** Channel → its Connection, for the storage warning on persistent publishes. */
export const OWNER = Symbol('tabbit.owner');
/** Connection method a channel calls after a persistent publish: (exchange, routingKey). */
export const PERSISTENT = Symbol('tabbit.persistent');

/** This context's navigator.storage.persist() request: null until asked. */
let persistRequest = null;

/**
 * Asks the browser to persist the origin's storage, once per context (connect({ persist: true })
 * or conn.persist()), or again with `again` after a refusal (conn.persist(), say from a click).
 * Resolves with the answer: true (persisted), false (refused), null (this context cannot ask:
 * no navigator.storage.persist, as in workers and WebKitGTK).
 */
export function requestPersist(again = false) {
  if (!persistRequest || (again && persistRequest.state === 'denied')) {
    const storage = globalThis.navigator?.storage;
    const request = { state: 'pending', answer: null };
    if (typeof storage?.persist !== 'function') {
      request.state = 'unavailable';
      request.answer = Promise.resolve(null);
    } else {
      request.answer = Promise.resolve()
        .then(() => storage.persist())
        .then(
          (granted) => {
            request.state = granted === true ? 'granted' : 'denied';
            return granted === true;
          },
          () => {
            request.state = 'denied'; // rejected (e.g. a document not fully active): not persisted
            return false;
          },
        );
    }
    persistRequest = request;
  }
  return persistRequest.answer;
}

/** StorageInfo: what the origin's storage manager says about the storage of a broker of `kind`. */
export async function storageInfo(kind) {
  // Only IndexedDB is the origin's storage; memory and adapters are not the browser's to evict.
  const storage = kind === 'indexeddb' ? globalThis.navigator?.storage : undefined;
  const ask = async (method) => {
    try {
      return typeof storage?.[method] === 'function' ? await storage[method]() : null;
    } catch {
      return null; // e.g. a SecurityError in an opaque origin: the platform cannot say
    }
  };
  const [persisted, estimate] = await Promise.all([ask('persisted'), ask('estimate')]);
  const bytes = (n) => (typeof n === 'number' && Number.isFinite(n) ? n : null);
  return {
    kind,
    persisted: typeof persisted === 'boolean' ? persisted : null,
    usage: bytes(estimate?.usage),
    quota: bytes(estimate?.quota),
    persist: persistRequest?.state ?? null,
  };
}

/** Whether a message published to `exchange` with `routingKey` can land in a durable queue (stats() view). */
function reachesDurableQueue(stats, exchange, routingKey) {
  const durable = new Set(stats.queues.filter((q) => q.durable).map((q) => q.name));
  if (exchange === '') return durable.has(routingKey);
  // Through bindings, exchange to exchange too; routing keys are not matched (it may warn once too often).
  const seen = new Set([exchange]);
  const todo = [exchange];
  while (todo.length) {
    const source = todo.pop();
    for (const b of stats.bindings) {
      if (b.source !== source) continue;
      if (b.destinationType === 'queue' && durable.has(b.destination)) return true;
      if (b.destinationType === 'exchange' && !seen.has(b.destination)) {
        seen.add(b.destination);
        todo.push(b.destination);
      }
    }
  }
  return false;
}

/**
 * The 'storage' warning of connection `conn`, whose storage state is `state` ({done, seen,
 * checks}): after a persistent publish, checks once per destination (a queue by name, or an
 * exchange) whether the origin's storage is not known to be persisted while the message can
 * land in a durable queue; emits 'storage' once. Never again once it warned, or once the
 * storage is found not to be the origin's or persisted.
 */
export function checkStorage(conn, state, exchange, routingKey) {
  const key = exchange === '' ? `queue ${routingKey}` : `exchange ${exchange}`;
  if (state.done || state.seen.has(key)) return;
  state.seen.add(key);
  const check = (async () => {
    const info = await storageInfo(conn.storage);
    if (info.kind !== 'indexeddb' || info.persisted === true) return (state.done = true);
    if (state.done || !reachesDurableQueue(await conn.stats(), exchange, routingKey) || state.done) return;
    state.done = true;
    conn.emit('storage', info);
  })()
    .catch(() => state.seen.delete(key)) // a closed connection, a failover under way: the next publish checks again
    .finally(() => state.checks.delete(check));
  state.checks.add(check);
}

/** Tells the channel's connection of a persistent publish (amqplib: persistent, or deliveryMode 2). */
export function notePersistent(channel, exchange, routingKey, options) {
  if (options && (options.persistent === true || options.deliveryMode === 2)) channel[OWNER]?.[PERSISTENT](exchange, routingKey);
}
