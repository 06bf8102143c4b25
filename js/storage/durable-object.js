// tabbit's storage adapter over a Cloudflare Durable Object's storage (`ctx.storage`):
//
//   import { connect } from 'tabbit';
//   import { durableObjectStorage } from 'tabbit/storage/durable-object';
//   const conn = await connect({ name: ctx.id.toString(), storage: durableObjectStorage(ctx.storage), wasm });
//
// It answers the StorageAdapter contract of src/store/adapter.rs: load() gives every record as
// [store, key, Uint8Array]; write(writes) applies one batch atomically and resolves once it is
// durable, or rejects with nothing of it applied.
//
// Two backends, picked by what the object has (or by `options.backend`):
//
// - 'sql', SQLite-backed objects (wrangler `new_sqlite_classes`; workerd `enableSql = true`):
//   one table, a row per (store, key, chunk). A batch runs inside `ctx.storage.transactionSync()`
//   (a SQLite savepoint: a throw rolls back everything the callback did), then
//   `ctx.storage.sync()` waits for the commit.
// - 'kv', objects with the (legacy) key-value backend: an entry per record and per chunk, a batch
//   written through `ctx.storage.transaction()` (all of its puts and deletes commit together or
//   not at all), then `ctx.storage.sync()`.
//
// Durability. Writes of a Durable Object are committed after the current turn of the event loop
// (write coalescing); the output gate holds back the object's outgoing messages until the commit
// is durable, but an awaited put()/exec() itself does not wait for it. `sync()` is what waits:
// "Synchronizes any pending writes to disk ... the returned promise will resolve when they
// complete" (developers.cloudflare.com/durable-objects/api/storage-api/, sync()). In workerd
// (src/workerd/api/actor-state.c++ DurableObjectStorage::sync → ActorSqlite::onNoPendingFlush)
// it resolves once the last commit formed before the call, and the output gate, have completed;
// with `durableObjectStorage = (localDisk = ...)` that commit is the object's SQLite database in
// WAL mode (src/workerd/server/server.c++), which survives the process being killed
// (tests/node/edge-workerd.test.mjs kills workerd with SIGKILL to check it). If a commit fails,
// the runtime breaks the output gate and restarts the object: nothing after it runs.
//
// Limits (developers.cloudflare.com/durable-objects/platform/limits/), and how they are met:
// - SQLite backend: "Maximum string, BLOB or table row size: 2 MB"; "Key and value combined
//   cannot exceed 2 MB". Values are cut into chunks of SQL_CHUNK (1 MiB) bytes, a row each, and
//   record keys are refused above SQL_MAX_KEY bytes, so a row stays far below 2 MB. Statements
//   are fixed, with 4 bound parameters ("Maximum bound parameters per query: 100").
// - KV backend: "Key size: 2 KiB (2048 bytes)", "Value size: 128 KiB (131072 bytes)"; put() of
//   an object "supports up to 128 key-value pairs at a time" and delete() of an array up to 128
//   keys (developers.cloudflare.com/durable-objects/api/legacy-kv-storage-api/). Values are cut
//   into chunks of KV_CHUNK bytes (128 KiB less 2 KiB for the structured-clone header), each
//   copied into its own buffer (serializing a view would write its whole underlying buffer);
//   puts and deletes go 128 at a time, all inside one transaction, so a batch is never split
//   across commits. A record whose entry key would pass 2048 bytes is refused.
// All checks run before anything is written: a refused batch leaves storage as it was.
//
// Group commit. The engine writes one batch at a time and gathers what comes meanwhile into the
// next (src/host/engine.rs). In a Durable Object that alone gathers next to nothing: the runtime
// hands a WebSocket its next message only once the event of the previous one has completed, and
// an event that wrote completes only once its output gate opens, i.e. after its commit (measured
// in workerd: one hibernatable socket sending 2,000 persistent STOMP SENDs, window 100, made
// ~1,360 commits; a bare object writing one row per message and answering it paces at one
// message per commit too; outgoing WebSocket messages wait for the output gate:
// `GatedMessage{waitForOutputLocksIfNecessary()...}` in workerd's src/workerd/api/web-socket.c++).
// So write() waits one macrotask (setTimeout 0) before it writes: nothing is locked meanwhile,
// the events queued for the object run, and their writes gather into the next batch (the same
// run: ~110-290 commits for the 2,000 SENDs, 2-4x the messages per second). The price: what an
// event sends before its batch is written no longer waits for that batch's commit. tabbit does
// not lean on the output gate for what depends on storage: a confirm (a STOMP RECEIPT) goes out
// after write() resolved, a stored message's first delivery after its delivery horizon is stored
// (src/store/log.rs, "The fence"); an answer that must wait for the storage awaits conn.flush().

/** Bytes of a value per SQLite row (the limit is 2 MB a row, key and value together). */
export const SQL_CHUNK = 1 << 20;
/** Longest record key, in UTF-8 bytes, the SQLite backend takes. */
export const SQL_MAX_KEY = 256 << 10;
/** Bytes of a value per KV entry (the limit is 131,072 bytes, serialized). */
export const KV_CHUNK = (128 << 10) - (2 << 10);
/** Longest KV key, in UTF-8 bytes. */
export const KV_MAX_KEY = 2048;
/** Keys per put() or delete() call on the KV backend. */
export const KV_MAX_PER_CALL = 128;

const encoder = new TextEncoder();
const utf8Length = (s) => encoder.encode(s).length;

function fail(message, cause) {
  const e = new Error(`tabbit durable-object storage: ${message}`);
  if (cause !== undefined) e.cause = cause;
  return e;
}

const why = (e) => (e && typeof e === 'object' && 'message' in e ? e.message : String(e));

/** Throws a TypeError that says what is wrong unless `writes` is an array of {store, key, value}. */
function checkWrites(writes) {
  if (!Array.isArray(writes)) throw new TypeError('tabbit durable-object storage: write() takes an array of {store, key, value}');
  for (const [i, w] of writes.entries()) {
    const at = `write ${i} of the batch`;
    if (w === null || typeof w !== 'object') throw new TypeError(`tabbit durable-object storage: ${at} is not a {store, key, value} object`);
    if (typeof w.store !== 'string' || w.store === '' || w.store.includes(':')) {
      throw new TypeError(`tabbit durable-object storage: ${at} has store ${JSON.stringify(w.store)}: a store is a non-empty string without ':'`);
    }
    if (!(typeof w.key === 'string' || (Number.isSafeInteger(w.key) && w.key >= 0))) {
      throw new TypeError(`tabbit durable-object storage: ${at} has key ${String(w.key)}: a key is a string or a non-negative whole number below 2^53`);
    }
    if (w.value !== undefined && !(w.value instanceof Uint8Array)) {
      throw new TypeError(`tabbit durable-object storage: ${at} has a value that is not a Uint8Array (undefined deletes)`);
    }
  }
}

/** The last write of each record in the batch, in first-seen order (a later write replaces an earlier one). */
function lastWrites(writes, id) {
  const last = new Map();
  for (const w of writes) {
    const k = id(w.store, w.key);
    last.delete(k);
    last.set(k, w);
  }
  return last;
}

function concat(parts, total) {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- SQLite backend --------------------------------------------------------------------------

function sqlBackend(storage, prefix) {
  const table = `${prefix}_records`;
  const sql = storage.sql;
  let created = false;
  const create = () => {
    if (created) return;
    // `key` has no declared type, so SQLite keeps each key as given: an INTEGER stays an integer
    // and the TEXT '5' stays text, distinct from 5 (a column declared ANY would get NUMERIC
    // affinity and turn '5' into 5: sqlite.org/datatype3.html, "Determination Of Column Affinity").
    sql.exec(`CREATE TABLE IF NOT EXISTS "${table}" (store TEXT NOT NULL, key NOT NULL, chunk INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key, chunk)) WITHOUT ROWID`);
    created = true;
  };
  return {
    backend: 'sql',
    async load() {
      create();
      const out = [];
      let cur = null;
      const finish = () => {
        if (!cur) return;
        // Chunks 0..n-1 each once, or the record is reported (a null value) rather than guessed.
        out.push([cur.store, cur.key, cur.ok ? concat(cur.parts, cur.total) : null]);
      };
      for (const row of sql.exec(`SELECT store, key, chunk, value FROM "${table}" ORDER BY store, key, chunk`)) {
        if (!cur || cur.store !== row.store || cur.key !== row.key) {
          finish();
          cur = { store: row.store, key: row.key, parts: [], total: 0, ok: true };
        }
        const bytes = new Uint8Array(row.value);
        if (row.chunk !== cur.parts.length) cur.ok = false;
        cur.parts.push(bytes);
        cur.total += bytes.length;
      }
      finish();
      return out;
    },
    async write(writes) {
      checkWrites(writes);
      for (const w of writes) {
        if (typeof w.key === 'string' && utf8Length(w.key) > SQL_MAX_KEY) {
          throw new RangeError(`tabbit durable-object storage: a key in store '${w.store}' has ${utf8Length(w.key)} bytes; at most ${SQL_MAX_KEY} fit a SQLite row beside its value (the 2 MB row limit); nothing of the batch was written`);
        }
      }
      if (writes.length === 0) return;
      const last = lastWrites(writes, (s, k) => `${s}:${typeof k}:${k}`);
      await gather();
      try {
        create();
        storage.transactionSync(() => {
          for (const { store, key, value } of last.values()) {
            sql.exec(`DELETE FROM "${table}" WHERE store = ? AND key = ?`, store, key);
            if (value === undefined) continue;
            const n = Math.max(1, Math.ceil(value.length / SQL_CHUNK));
            for (let i = 0; i < n; i++) {
              sql.exec(`INSERT INTO "${table}" (store, key, chunk, value) VALUES (?, ?, ?, ?)`, store, key, i, value.subarray(i * SQL_CHUNK, (i + 1) * SQL_CHUNK));
            }
          }
        });
      } catch (e) {
        throw fail(`a batch of ${writes.length} writes failed and was rolled back, none of it applied (SQLite backend): ${why(e)}`, e);
      }
      await durable(storage, writes.length);
    },
  };
}

/**
 * Waits one macrotask before a batch is written, so that the events waiting for the object run
 * first and what they publish joins the next batch (the engine has one batch in flight: see the
 * header, "Group commit").
 */
const gather = () => new Promise((ok) => setTimeout(ok, 0));

async function durable(storage, n) {
  try {
    await storage.sync();
  } catch (e) {
    throw fail(`a batch of ${n} writes was not confirmed durable: ctx.storage.sync() failed: ${why(e)}`, e);
  }
}

// ---- KV backend ------------------------------------------------------------------------------

// Entries: `<prefix>:r:<store>:<k>` per record, where <k> is 'n' and the number in decimal or
// 's' and the string; its value is the record's bytes (a Uint8Array) when they fit one entry,
// else {chunks: n, length}, with the bytes in `<prefix>:c:<i>:<store>:<k>` for i in 0..n-1.

function kvBackend(storage, prefix) {
  const rec = `${prefix}:r:`;
  const chk = `${prefix}:c:`;
  const id = (store, key) => `${store}:${typeof key === 'number' ? 'n' : 's'}${key}`;
  const chunkKey = (i, rid) => `${chk}${i}:${rid}`;
  /** Record id → its chunk count, for the records stored in chunks (so rewriting one deletes the extra chunks). */
  let chunked = null;

  async function listAll() {
    const all = new Map();
    let startAfter;
    for (;;) {
      const page = await storage.list({ prefix: `${prefix}:`, limit: 1000, ...(startAfter === undefined ? {} : { startAfter }) });
      for (const [k, v] of page) all.set(k, v);
      if (page.size < 1000) return all;
      startAfter = [...page.keys()].pop();
    }
  }

  function parse(rid) {
    const colon = rid.indexOf(':');
    const store = rid.slice(0, colon);
    const k = rid.slice(colon + 1);
    if (k[0] === 'n') return [store, Number(k.slice(1))];
    return [store, k.slice(1)];
  }

  async function load() {
    const all = await listAll();
    const out = [];
    chunked = new Map();
    for (const [k, v] of all) {
      if (!k.startsWith(rec)) continue;
      const rid = k.slice(rec.length);
      const [store, key] = parse(rid);
      if (v instanceof Uint8Array) {
        out.push([store, key, v]);
        continue;
      }
      const n = v?.chunks;
      const parts = [];
      let total = 0;
      for (let i = 0; Number.isSafeInteger(n) && i < n; i++) {
        const part = all.get(chunkKey(i, rid));
        if (!(part instanceof Uint8Array)) break;
        parts.push(part);
        total += part.length;
      }
      if (Number.isSafeInteger(n)) chunked.set(rid, n);
      // A record whose chunks are not all there is reported (a null value), not guessed.
      out.push([store, key, parts.length === n && total === v.length ? concat(parts, total) : null]);
    }
    return out;
  }

  return {
    backend: 'kv',
    load,
    async write(writes) {
      checkWrites(writes);
      if (writes.length === 0) return;
      if (chunked === null) await load();
      const last = lastWrites(writes, id);
      const puts = [];
      const deletes = [];
      const counts = new Map();
      for (const [rid, { store, value }] of last) {
        const entry = rec + rid;
        const longest = value && value.length > KV_CHUNK ? chunkKey(Math.ceil(value.length / KV_CHUNK) - 1, rid) : entry;
        if (utf8Length(longest) > KV_MAX_KEY) {
          throw new RangeError(`tabbit durable-object storage: a key in store '${store}' makes a storage key of ${utf8Length(longest)} bytes; the key-value backend allows ${KV_MAX_KEY} (use a SQLite-backed class); nothing of the batch was written`);
        }
        const before = chunked.get(rid) ?? 0;
        let n = 0;
        if (value === undefined) deletes.push(entry);
        else if (value.length <= KV_CHUNK) {
          // A view is copied: the structured clone of a view writes its whole buffer.
          puts.push([entry, value.byteOffset === 0 && value.byteLength === value.buffer.byteLength ? value : value.slice()]);
        } else {
          n = Math.ceil(value.length / KV_CHUNK);
          puts.push([entry, { chunks: n, length: value.length }]);
          for (let i = 0; i < n; i++) puts.push([chunkKey(i, rid), value.slice(i * KV_CHUNK, (i + 1) * KV_CHUNK)]);
        }
        for (let i = n; i < before; i++) deletes.push(chunkKey(i, rid));
        counts.set(rid, n);
      }
      await gather();
      try {
        await storage.transaction(async (txn) => {
          for (let i = 0; i < puts.length; i += KV_MAX_PER_CALL) {
            await txn.put(Object.fromEntries(puts.slice(i, i + KV_MAX_PER_CALL)));
          }
          for (let i = 0; i < deletes.length; i += KV_MAX_PER_CALL) {
            await txn.delete(deletes.slice(i, i + KV_MAX_PER_CALL));
          }
        });
      } catch (e) {
        throw fail(`a batch of ${writes.length} writes failed and was rolled back, none of it applied (key-value backend): ${why(e)}`, e);
      }
      for (const [rid, n] of counts) {
        if (n > 0) chunked.set(rid, n);
        else chunked.delete(rid);
      }
      await durable(storage, writes.length);
    },
  };
}

// ---- the adapter -----------------------------------------------------------------------------

/**
 * Whether `storage.sql` is usable. On an object without SQLite storage, workerd still has a
 * `sql` property but its operations throw "SQL is not enabled for this Durable Object class"
 * (DurableObjectStorage::getSqliteDb in src/workerd/api/actor-state.c++): reading
 * `databaseSize` asks the database, so it throws there too.
 */
function hasSql(storage) {
  try {
    const sql = storage.sql;
    return typeof sql?.exec === 'function' && typeof storage.transactionSync === 'function' && typeof sql.databaseSize === 'number';
  } catch {
    return false;
  }
}

/**
 * A StorageAdapter over a Durable Object's storage (`ctx.storage`).
 * @param {DurableObjectStorage} storage `this.ctx.storage` (or `state.storage`)
 * @param {{backend?: 'auto' | 'sql' | 'kv', prefix?: string}} [options]
 */
export function durableObjectStorage(storage, options = {}) {
  if (storage === null || typeof storage !== 'object' || typeof storage.transaction !== 'function' || typeof storage.sync !== 'function') {
    throw new TypeError("durableObjectStorage(storage): pass the Durable Object's storage, `this.ctx.storage` (or `state.storage`), from a runtime with `ctx.storage.sync()`");
  }
  const { backend = 'auto', prefix = 'tabbit' } = options ?? {};
  if (typeof prefix !== 'string' || !/^[A-Za-z][A-Za-z0-9_]{0,62}$/.test(prefix) || /^_cf_/i.test(prefix)) {
    throw new TypeError(`durableObjectStorage(storage, {prefix}): the prefix ${JSON.stringify(prefix)} is not 1-63 letters, digits or '_' starting with a letter`);
  }
  if (!['auto', 'sql', 'kv'].includes(backend)) {
    throw new TypeError(`durableObjectStorage(storage, {backend}): ${JSON.stringify(backend)} is not 'auto', 'sql' or 'kv'`);
  }
  const sql = hasSql(storage);
  if (backend === 'sql' && !sql) {
    throw new TypeError("durableObjectStorage(storage, {backend: 'sql'}): this Durable Object has no SQLite storage; declare its class in `new_sqlite_classes` (wrangler) or `enableSql = true` (workerd), or use backend 'kv'");
  }
  const chosen = backend === 'kv' || !sql ? kvBackend(storage, prefix) : sqlBackend(storage, prefix);
  return { backend: chosen.backend, load: chosen.load, write: chosen.write };
}
