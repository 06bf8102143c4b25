// IndexedDB glue for src/store/indexeddb.rs: promises over requests and transactions,
// nothing else. The layout and every decision live in Rust.

const VERSION = 1;

/** Opens (creating or upgrading) database `name` with one object store per name → [db, created]. */
function openRaw(name, stores) {
  return new Promise((resolve, reject) => {
    const factory = globalThis.indexedDB;
    if (!factory) {
      reject(new Error('IndexedDB is not available in this context'));
      return;
    }
    let req;
    try {
      req = factory.open(name, VERSION);
    } catch (e) {
      reject(e);
      return;
    }
    let created = false;
    req.onupgradeneeded = (e) => {
      created = e.oldVersion === 0;
      const db = req.result;
      for (const s of stores) if (!db.objectStoreNames.contains(s)) db.createObjectStore(s);
    };
    req.onsuccess = () => resolve([req.result, created]);
    req.onerror = () => reject(req.error);
    // Another context holds an older version open: it closes on its versionchange event.
    req.onblocked = () => {};
  });
}

// A mark that database `name` exists, kept outside IndexedDB (localStorage: windows only), set
// when a page first opens it: a database created while its mark stands was deleted meanwhile. Chromium deletes an
// origin's IndexedDB alone when it cannot open its backing store (seen under a quota below what
// it needs after a crash), or when the site's IndexedDB data is cleared; localStorage stays then.
// Cleared with the rest of the origin's data (eviction, the user clearing the site), the mark goes
// too and nothing can be told.
const markKey = (name) => `${name}:created`;
function marked(name) {
  try {
    return globalThis.localStorage?.getItem(markKey(name)) != null;
  } catch {
    return false; // no localStorage here (a worker), or access refused
  }
}
function mark(name) {
  try {
    globalThis.localStorage?.setItem(markKey(name), String(Date.now()));
  } catch {
    /* as above */
  }
}

export class Db {
  /** @returns {Promise<Db>} */
  static async open(name, stores) {
    const db = new Db(name, stores);
    await db.reopen();
    return db;
  }

  constructor(name, stores) {
    this.name = name;
    this.stores = stores;
    this.db = null;
    this.opened = false; // opened once: a later open that creates the database finds it emptied
    this.emptied = false;
    this.emptiedAtOpen = false;
    this.opening = null;
  }

  async reopen() {
    const [db, created] = await openRaw(this.name, this.stores);
    if (created) {
      // Opened again and created: the database was deleted under the broker (Chromium closes
      // the connection, 'close' below, when the site's data is cleared). Told once, to the next
      // operation: the broker writes what it holds again. Created at the first open while the
      // mark stands: deleted while no broker ran (emptiedAtOpen, read once recovered).
      if (this.opened) this.emptied = true;
      else this.emptiedAtOpen = marked(this.name);
    }
    // At every open, not only at creation: a database a worker created gets its mark when a
    // page first opens it.
    if (!this.opened || created) mark(this.name);
    this.opened = true;
    this.db = db;
    // A newer version opened elsewhere: step aside now, reopen on the next write.
    this.db.onversionchange = () => this.closeNow();
    this.db.onclose = () => { this.db = null; };
  }

  closeNow() {
    if (this.db) this.db.close();
    this.db = null;
  }

  async handle() {
    // Operations that find the connection closed reopen it once, together.
    if (!this.db) await (this.opening ??= this.reopen().finally(() => (this.opening = null)));
    if (this.emptied) {
      this.emptied = false;
      throw new DOMException(`IndexedDB database '${this.name}' was deleted while the broker ran (the site's data cleared, or the origin's storage evicted)`, 'TabbitStoreEmptied');
    }
    return this.db;
  }

  /** Every record of the named stores: [[storeName, keys, values], ...], one read-only transaction. */
  async load(stores) {
    const db = await this.handle();
    const tx = db.transaction(stores, 'readonly');
    const reads = stores.map((s) => {
      const store = tx.objectStore(s);
      return Promise.all([request(store.getAllKeys()), request(store.getAll())]).then(([k, v]) => [s, k, v]);
    });
    return Promise.all(reads);
  }

  /** Up to `limit` records of `store` with keys above `after` (or from the first): [keys, values]. */
  async loadRange(store, after, limit) {
    const db = await this.handle();
    const s = db.transaction(store, 'readonly').objectStore(store);
    const range = after === undefined ? undefined : IDBKeyRange.lowerBound(after, true);
    return Promise.all([request(s.getAllKeys(range, limit)), request(s.getAll(range, limit))]);
  }

  /** The records of `store` at `keys` (undefined where missing), one read-only transaction. */
  async getMany(store, keys) {
    const db = await this.handle();
    const s = db.transaction(store, 'readonly').objectStore(store);
    return Promise.all(keys.map((k) => request(s.get(k))));
  }

  /**
   * One read-write transaction: `writes` is a flat array [store, key, value, ...] where
   * `value === undefined` deletes. Resolves on the transaction's `complete` event and
   * rejects with the DOMException that aborted it (QuotaExceededError when storage is full).
   */
  async write(writes, clear) {
    const db = await this.handle();
    const tx = db.transaction(this.stores, 'readwrite', { durability: 'default' });
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(tx.error || new DOMException('the transaction was aborted', 'AbortError'));
    });
    try {
      if (clear) for (const s of this.stores) tx.objectStore(s).clear();
      for (let i = 0; i < writes.length; i += 3) {
        const store = tx.objectStore(writes[i]);
        if (writes[i + 2] === undefined) store.delete(writes[i + 1]);
        else store.put(writes[i + 2], writes[i + 1]);
      }
      tx.commit?.();
    } catch (e) {
      try { tx.abort(); } catch { /* already finished */ }
      done.catch(() => {});
      throw e;
    }
    return done;
  }
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
