// A Cloudflare Worker with a Durable Object class that hosts a tabbit broker on the object's
// storage (pkg/storage/durable-object.js: 'tabbit/storage/durable-object' as built from
// js/storage/durable-object.js by scripts/build-pkg). The
// worker's fetch handler reaches the object through its stub, by RPC (a method call on the stub).
// do-config.mjs writes the workerd config; tests/node/edge-workerd.test.mjs and
// bench/edge-workerd.mjs drive it over HTTP:
//
//   POST /<ns>/<object>/<method>   body: JSON array of arguments   → 200 JSON result | 500 {error}
//
// <ns> is 'sql' (class BrokerSql: SQLite-backed, `enableSql = true`) or 'kv' (class BrokerKv: the
// key-value API only); <object> names the object (idFromName). Methods: see the class below.
import { DurableObject } from 'cloudflare:workers';
import { connect } from './pkg/index.js';
import wasm from './pkg/tabbit_bg.wasm';
import { durableObjectStorage } from './pkg/storage/durable-object.js';

const text = new TextDecoder();
const bytes = (s) => new TextEncoder().encode(s);

export class BrokerSql extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.storage = durableObjectStorage(ctx.storage);
    // One broker per object: its name is the object's id, so that objects sharing an isolate
    // do not share a broker. blockConcurrencyWhile: no request runs before the broker is loaded.
    ctx.blockConcurrencyWhile(async () => {
      this.conn = await connect({ name: ctx.id.toString(), storage: this.storage, wasm });
      this.channel = await this.conn.createConfirmChannel();
    });
    /** Channels holding deliveries not acked yet (kept until the object goes). */
    this.holding = [];
  }

  info() {
    return { backend: this.storage.backend, storage: this.conn.storage };
  }

  /** Publishes each body persistently to the durable queue; answers the bodies confirmed and those refused. */
  async publish(queue, bodies) {
    const ch = this.channel;
    await ch.assertQueue(queue, { durable: true });
    const results = await Promise.all(
      bodies.map(
        (body) =>
          new Promise((ok) =>
            ch.sendToQueue(queue, bytes(body), { persistent: true }, (err) => ok(err ? { body, error: String(err.message ?? err) } : { body })),
          ),
      ),
    );
    return { confirmed: results.filter((r) => !r.error).map((r) => r.body), refused: results.filter((r) => r.error) };
  }

  /**
   * Gets up to `n` messages from the queue. `ack`: acks them and waits for conn.flush();
   * otherwise they stay delivered and unacked on a channel of their own.
   */
  async get(queue, n, ack) {
    const ch = ack ? this.channel : await this.conn.createChannel();
    if (!ack) this.holding.push(ch);
    await ch.assertQueue(queue, { durable: true });
    const out = [];
    while (out.length < n) {
      const m = await ch.get(queue);
      if (!m) break;
      out.push({ body: text.decode(m.content), redelivered: m.fields.redelivered });
      if (ack) ch.ack(m);
    }
    if (ack) await this.conn.flush();
    return out;
  }

  /** The adapter alone: writes `batch` ([{store, key, size, fill} | {store, key, delete: true}]) and loads everything back. */
  async adapterWrite(batch, prefix = 'adapter') {
    const storage = durableObjectStorage(this.ctx.storage, { prefix, backend: this.storage.backend });
    await storage.load();
    const writes = batch.map(({ store, key, size, fill, delete: del }) => ({ store, key, value: del ? undefined : pattern(size, fill) }));
    let error = null;
    try {
      await storage.write(writes);
    } catch (e) {
      error = String(e.message ?? e);
    }
    return { error, records: await summary(storage) };
  }

  /**
   * The adapter over a storage whose `failAt`-th write operation (sql.exec of a write, or a
   * txn.put/txn.delete) throws, as a full disk would, after the earlier ones were applied.
   */
  async adapterFailingWrite(batch, failAt, prefix = 'adapter') {
    const faulty = failingStorage(this.ctx.storage, failAt);
    const storage = durableObjectStorage(faulty, { prefix, backend: this.storage.backend });
    await storage.load();
    let error = null;
    try {
      await storage.write(batch.map(({ store, key, size, fill }) => ({ store, key, value: pattern(size, fill) })));
    } catch (e) {
      error = String(e.message ?? e);
    }
    const fresh = durableObjectStorage(this.ctx.storage, { prefix, backend: this.storage.backend });
    return { error, operations: faulty.count(), records: await summary(fresh) };
  }

  /** The raw entries (KV) or rows (SQL) under a prefix: their key and value sizes, for the limit checks. */
  async rawSizes(prefix = 'adapter') {
    if (this.storage.backend === 'sql') {
      return [...this.ctx.storage.sql.exec(`SELECT store, key, chunk, length(value) AS size FROM "${prefix}_records"`)].map((r) => ({
        key: `${r.store}/${r.key}/${r.chunk}`,
        keyBytes: bytes(String(r.key)).length,
        size: r.size,
      }));
    }
    const out = [];
    for (const [k, v] of await this.ctx.storage.list({ prefix: `${prefix}:` })) {
      // A record stored in chunks has a small descriptor object for its entry.
      if (!(v instanceof Uint8Array)) out.push({ key: k, keyBytes: bytes(k).length, descriptor: v });
      else out.push({ key: k, keyBytes: bytes(k).length, size: v.byteLength, buffer: v.buffer.byteLength });
    }
    return out;
  }

  // ---- bench (bench/edge-workerd.mjs) ----

  // The caller times these from outside: workerd's clock only moves on I/O (a Spectre
  // mitigation), and an awaited put() on SQLite-backed storage does none.

  /** Empties `queue` (a durable queue) and stores that; the bench's set-up between rounds. */
  async benchReset(queue) {
    await this.channel.assertQueue(queue, { durable: true });
    await this.channel.purgeQueue(queue);
    await this.conn.flush();
    const keys = [...(await this.ctx.storage.list({ prefix: 'raw:' })).keys()];
    for (let i = 0; i < keys.length; i += 128) await this.ctx.storage.delete(keys.slice(i, i + 128));
    await this.ctx.storage.sync();
    return true;
  }

  /**
   * Publishes `n` persistent messages of `size` bytes with confirms, at most `window` unconfirmed.
   * `nothingStored`: on a second broker of the object whose adapter stores nothing (its write()
   * resolves at once), which measures what the broker itself costs without the storage.
   */
  async benchBroker(queue, n, size, window, nothingStored = false) {
    let ch = this.channel;
    if (nothingStored) {
      this.unstored ??= connect({ name: `${this.ctx.id}-nothing-stored`, wasm, storage: { load: () => [], write: () => {} } }).then(async (conn) => {
        const c = await conn.createConfirmChannel();
        await c.assertQueue(queue, { durable: true });
        return c;
      });
      ch = await this.unstored;
      await ch.purgeQueue(queue);
    }
    const body = new Uint8Array(size).fill(120);
    for (let sent = 0; sent < n; ) {
      const upTo = Math.min(n, sent + window);
      for (; sent < upTo; sent++) ch.sendToQueue(queue, body, { persistent: true });
      await ch.waitForConfirms();
    }
    return n;
  }

  /** One awaited ctx.storage.put per message (with `sync`, an awaited sync() after each too). */
  async benchRaw(n, size, sync) {
    const body = new Uint8Array(size).fill(120);
    for (let i = 0; i < n; i++) {
      await this.ctx.storage.put(`raw:${i}`, body);
      if (sync) await this.ctx.storage.sync();
    }
    await this.ctx.storage.sync();
    return n;
  }
}

/** The same class on an object without SQLite storage (the key-value backend). */
export class BrokerKv extends BrokerSql {}

/** `size` bytes: byte i is (fill + i * 7) mod 256, so a misplaced chunk shows. */
function pattern(size, fill) {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (fill + i * 7) & 255;
  return out;
}

/** Every record the adapter loads: store, key, size, and whether its bytes match pattern(). */
async function summary(storage) {
  const out = [];
  for (const [store, key, value] of await storage.load()) {
    let fill = null;
    if (value instanceof Uint8Array && value.length > 0) {
      fill = value[0];
      for (let i = 0; i < value.length; i++) if (value[i] !== ((fill + i * 7) & 255)) fill = 'mismatch';
    }
    out.push({ store, key, size: value instanceof Uint8Array ? value.length : null, fill });
  }
  return out.sort((a, b) => `${a.store}/${typeof a.key}/${a.key}`.localeCompare(`${b.store}/${typeof b.key}/${b.key}`));
}

/** `storage` with its `failAt`-th write operation throwing (the ones before it go through). */
function failingStorage(storage, failAt) {
  let n = 0;
  const tick = (what) => {
    n += 1;
    if (n === failAt) throw new Error(`injected failure at write operation ${n} (${what})`);
  };
  const isWrite = (query) => !/^\s*(SELECT|CREATE)/i.test(query);
  const sql = (() => {
    try {
      return storage.sql;
    } catch {
      return undefined;
    }
  })();
  return {
    get sql() {
      if (!sql) throw new Error('SQL is not enabled for this Durable Object class');
      return {
        get databaseSize() {
          return sql.databaseSize;
        },
        exec(query, ...args) {
          if (isWrite(query)) tick('sql.exec');
          return sql.exec(query, ...args);
        },
      };
    },
    transactionSync: (f) => storage.transactionSync(f),
    transaction: (f) =>
      storage.transaction((txn) =>
        f({
          put: (...a) => (tick('txn.put'), txn.put(...a)),
          delete: (...a) => (tick('txn.delete'), txn.delete(...a)),
          get: (...a) => txn.get(...a),
          list: (...a) => txn.list(...a),
        }),
      ),
    list: (...a) => storage.list(...a),
    sync: () => storage.sync(),
    count: () => n,
  };
}

const CLASSES = { sql: 'BROKER_SQL', kv: 'BROKER_KV' };
const METHODS = new Set(['info', 'publish', 'get', 'adapterWrite', 'adapterFailingWrite', 'rawSizes', 'benchReset', 'benchBroker', 'benchRaw']);

export default {
  async fetch(request, env) {
    const [, ns, object, method] = new URL(request.url).pathname.split('/');
    if (!CLASSES[ns] || !object || !METHODS.has(method) || request.method !== 'POST') {
      return new Response('POST /<sql|kv>/<object>/<method> with a JSON array of arguments\n', { status: 404 });
    }
    try {
      const binding = env[CLASSES[ns]];
      const stub = binding.get(binding.idFromName(object));
      const args = await request.json();
      return Response.json(await stub[method](...args));
    } catch (e) {
      return Response.json({ error: String(e?.stack ?? e) }, { status: 500 });
    }
  },
};
