// tabbit's storage adapter over Deno KV ('tabbit/storage/deno-kv'):
//
//   const kv = await Deno.openKv('./broker.kv');   // deno run --unstable-kv
//   const conn = await connect({ storage: denoKvStorage(kv) });
//
// The adapter contract (src/store/adapter.rs, StorageAdapter in index.d.ts): load() returns every
// record [store, key, bytes]; write(writes) applies one batch atomically and resolves once it is
// durable. Deno KV's local backend is SQLite in WAL mode and kv.atomic().commit() resolves after
// the SQLite transaction commits (denoland/denokv sqlite/backend.rs), so a resolved commit survives
// the process being killed.
//
// Deno KV's limits (Deno 2.x, ext/kv/config.rs in denoland/deno, the defaults of KvConfigBuilder;
// checked against deno 2.9.6 by tests/runtimes/deno/kv-adapter.js):
//   - a value: at most 65,536 bytes (a Uint8Array is stored as its bytes);
//   - a key: at most 2,048 bytes encoded;
//   - one atomic commit: at most 1,000 mutations, 100 checks, 819,200 bytes in total (each
//     check's and mutation's key, plus a set's key again and its value: op_kv_atomic_write in
//     ext/kv/lib.rs), and 81,920 bytes of keys of its sets.
// How this adapter keeps within them:
//   - a record's value over 65,536 bytes is split into chunks: the record's own key holds the
//     number of chunks, [...key, i] holds chunk i (a plain number is never a Uint8Array, so the two
//     kinds of record cannot be mistaken for each other);
//   - a batch whose mutations fit one commit is one commit (the usual case);
//   - a larger batch is first staged as a redo log under [...prefix, 's', id, part] (as many
//     commits as it takes), then made current by one small commit of [...prefix, 'm', id], then
//     applied to the records and its log deleted. A batch whose marker was never committed is
//     ignored and its staged parts deleted by the next load(); one whose marker was committed but
//     not wholly applied (a crash, a failed commit) is applied again, before anything else: by the
//     next write() or load().
//   - a key over 2,048 bytes is refused before anything is written, naming the record.
// Every commit also checks [...prefix, 'owner'], which load() sets: a second broker opening the
// same prefix makes the first one's writes fail (rejected, naming the reason) instead of both
// writing the same records.
//
// Layout under the prefix (default ['tabbit']): ['r', store, key] a record (bytes, or its chunk
// count), ['r', store, key, i] its chunks, ['s', id, part] and ['m', id] a staged batch, ['owner'].
// A record's key is a KV string or a KV number (tabbit's keys are strings or whole numbers below
// 2^53, exact as float64), so string and numeric keys stay distinct and each kind stays ordered.

/** Deno KV's limits (see above). */
export const DENO_KV_LIMITS = Object.freeze({
  valueBytes: 65_536,
  keyBytes: 2_048,
  mutations: 1_000,
  checks: 100,
  commitBytes: 819_200,
  commitKeyBytes: 81_920,
});

const PREFIX_PARTS = 'strings, numbers, booleans or Uint8Arrays';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The encoded size of a key (denokv_proto's tuple encoding: tag, bytes with 0x00 escaped, 0x00). */
function partBytes(part) {
  if (typeof part === 'string') {
    const bytes = encoder.encode(part);
    return 2 + bytes.length + zeros(bytes);
  }
  if (typeof part === 'number') return 9;
  if (typeof part === 'boolean') return 1;
  if (part instanceof Uint8Array) return 2 + part.length + zeros(part);
  throw new TypeError(`tabbit deno-kv: a key part must be one of ${PREFIX_PARTS}, not ${typeof part}`);
}
function zeros(bytes) {
  let n = 0;
  for (const b of bytes) if (b === 0) n++;
  return n;
}

const describeKey = (store, key) => `${store}/${typeof key === 'string' ? JSON.stringify(key) : key}`;

/**
 * A StorageAdapter over a Deno.Kv (from Deno.openKv(path?)). Records live under `prefix`
 * (default ['tabbit']): give each broker sharing one KV a prefix of its own.
 * @param {Deno.Kv} kv
 * @param {{ prefix?: Deno.KvKey }} [options]
 */
export function denoKvStorage(kv, { prefix = ['tabbit'], ...rest } = {}) {
  if (!kv || typeof kv.atomic !== 'function' || typeof kv.list !== 'function') {
    throw new TypeError('tabbit deno-kv: denoKvStorage(kv) needs a Deno.Kv: pass await Deno.openKv(path)');
  }
  const unknown = Object.keys(rest);
  if (unknown.length) throw new TypeError(`tabbit deno-kv: unknown option '${unknown[0]}' (the only option is 'prefix')`);
  if (!Array.isArray(prefix)) throw new TypeError(`tabbit deno-kv: 'prefix' must be an array of key parts, such as ['tabbit']`);
  prefix = [...prefix];
  const prefixBytes = prefix.reduce((n, p) => n + partBytes(p), 0);
  const L = DENO_KV_LIMITS;
  const RECORDS = [...prefix, 'r'];
  const STAGED = [...prefix, 's'];
  const MARKERS = [...prefix, 'm'];
  const OWNER = [...prefix, 'owner'];
  const ownerBytes = prefixBytes + partBytes('owner');
  const recordsBytes = prefixBytes + partBytes('r');
  // A record's chunk count, for records stored in chunks (absent: stored whole, or no record):
  // the chunks beyond a new value's count are deleted when it is replaced or deleted.
  /** @type {Map<string, number>} */
  let chunked = new Map();
  let owner = null; // the versionstamp of our claim on OWNER, checked by every commit
  let recovered = false; // load() (or a first write()) has claimed the prefix and recovered
  let pending = null; // the plan of a committed batch not yet wholly applied
  let queue = Promise.resolve(); // writes, one at a time
  let nextId = 0;

  const id = (store, key) => `${store}\u0000${typeof key}\u0000${key}`;

  /** A commit of `mutations` ({key, value?, bytes, keyBytes}) with the owner check. */
  async function commit(mutations, what) {
    const op = kv.atomic();
    if (owner !== null) op.check({ key: OWNER, versionstamp: owner });
    for (const m of mutations) {
      if (m.value === undefined) op.delete(m.key);
      else op.set(m.key, m.value);
    }
    let result;
    try {
      result = await op.commit();
    } catch (e) {
      throw new Error(`tabbit deno-kv: ${what}: Deno KV refused the commit: ${e?.message ?? e}`, { cause: e });
    }
    if (!result?.ok) {
      throw new Error(
        `tabbit deno-kv: ${what}: another broker opened this Deno KV under the same prefix ${JSON.stringify(prefix)} ` +
          'since this one loaded, so this one may no longer write (one broker per prefix: give each its own)',
      );
    }
    return result;
  }

  /** Splits mutations into commits within Deno KV's limits (one check each, the owner's). */
  function pack(mutations) {
    const commits = [];
    let cur = [];
    let n = 0;
    let bytes = 0;
    let keyBytes = 0;
    const base = ownerBytes; // the check's key counts towards the commit's bytes
    for (const m of mutations) {
      if (cur.length && (n + 1 > L.mutations || bytes + m.bytes > L.commitBytes - base || keyBytes + m.keyBytes > L.commitKeyBytes)) {
        commits.push(cur);
        cur = [];
        n = bytes = keyBytes = 0;
      }
      cur.push(m);
      n += 1;
      bytes += m.bytes;
      keyBytes += m.keyBytes;
    }
    if (cur.length) commits.push(cur);
    return commits;
  }

  const keyBytes = (key) => key.reduce((n, p) => n + partBytes(p), 0);
  /** A mutation with its cost against the commit limits (`kb`: the key's encoded size, if known). */
  const set = (key, value, valueBytes, kb = keyBytes(key)) => ({ key, value, bytes: 2 * kb + valueBytes, keyBytes: kb });
  const del = (key, kb = keyBytes(key)) => ({ key, value: undefined, bytes: kb, keyBytes: 0 });
  // A plain number as a value is V8-serialized: a few bytes; 16 is an upper bound.
  const NUMBER_BYTES = 16;

  /**
   * The mutations that apply `writes` to the records, given the chunk counts now (`counts`, a
   * copy that this updates as the batch would): [mutations, counts after].
   */
  function plan(writes, counts) {
    const out = [];
    for (const { store, key, value } of writes) {
      const rid = id(store, key);
      const rkey = [...RECORDS, store, key];
      const kb = recordsBytes + partBytes(store) + partBytes(key);
      if (kb + 9 > L.keyBytes) {
        throw new RangeError(
          `tabbit deno-kv: the key of record ${describeKey(store, key)} would take ${kb + 9} bytes, over Deno KV's ` +
            `${L.keyBytes}-byte limit on a key: use a shorter prefix (now ${prefixBytes} bytes) or a shorter name`,
        );
      }
      const old = counts.get(rid) ?? 0;
      let now = 0;
      if (value === undefined) out.push(del(rkey, kb));
      else if (value.length <= L.valueBytes) out.push(set(rkey, value, value.length, kb));
      else {
        now = Math.ceil(value.length / L.valueBytes);
        out.push(set(rkey, now, NUMBER_BYTES, kb));
        for (let i = 0; i < now; i++) {
          const chunk = value.subarray(i * L.valueBytes, (i + 1) * L.valueBytes);
          out.push(set([...rkey, i], chunk, chunk.length, kb + 9));
        }
      }
      for (let i = now; i < old; i++) out.push(del([...rkey, i], kb + 9));
      if (now) counts.set(rid, now);
      else counts.delete(rid);
    }
    return out;
  }

  /** Checks a batch's shape, so that bad input is refused before anything is written. */
  function check(writes) {
    if (!Array.isArray(writes)) throw new TypeError('tabbit deno-kv: write(writes) takes an array of {store, key, value}');
    writes.forEach((w, i) => {
      const where = `tabbit deno-kv: write #${i} of the batch`;
      if (typeof w?.store !== 'string' || !w.store) throw new TypeError(`${where}: 'store' must be a non-empty string`);
      const k = w.key;
      if (!(typeof k === 'string' || (Number.isSafeInteger(k) && k >= 0))) {
        throw new TypeError(`${where}: 'key' must be a string or a non-negative whole number below 2^53, not ${String(k)}`);
      }
      if (w.value !== undefined && !(w.value instanceof Uint8Array)) {
        throw new TypeError(`${where}: 'value' must be a Uint8Array, or undefined to delete`);
      }
    });
  }

  // ---- staged batches: a redo log of the batch's writes, in parts of at most valueBytes ------

  function encodeLog(writes) {
    const parts = [];
    let size = 0;
    const heads = writes.map(({ store, key, value }) => {
      const s = encoder.encode(store);
      const k = typeof key === 'string' ? encoder.encode(key) : null;
      const head = new Uint8Array(2 + 4 + s.length + (k ? 4 + k.length : 8) + 4);
      const v = new DataView(head.buffer);
      let at = 0;
      head[at++] = value === undefined ? 0 : 1;
      head[at++] = k ? 0 : 1;
      v.setUint32(at, s.length);
      head.set(s, (at += 4));
      at += s.length;
      if (k) {
        v.setUint32(at, k.length);
        head.set(k, (at += 4));
        at += k.length;
      } else {
        v.setFloat64(at, key);
        at += 8;
      }
      v.setUint32(at, value?.length ?? 0);
      size += head.length + (value?.length ?? 0);
      return head;
    });
    const all = new Uint8Array(size);
    let at = 0;
    writes.forEach(({ value }, i) => {
      all.set(heads[i], at);
      at += heads[i].length;
      if (value) all.set(value, at), (at += value.length);
    });
    for (let i = 0; i < all.length; i += L.valueBytes) parts.push(all.subarray(i, i + L.valueBytes));
    return parts;
  }

  function decodeLog(parts) {
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) all.set(p, at), (at += p.length);
    const v = new DataView(all.buffer);
    const writes = [];
    at = 0;
    while (at < all.length) {
      const put = all[at++] === 1;
      const num = all[at++] === 1;
      const sl = v.getUint32(at);
      const store = decoder.decode(all.subarray((at += 4), (at += sl)));
      let key;
      if (num) (key = v.getFloat64(at)), (at += 8);
      else {
        const kl = v.getUint32(at);
        key = decoder.decode(all.subarray((at += 4), (at += kl)));
      }
      const vl = v.getUint32(at);
      at += 4;
      writes.push({ store, key, value: put ? all.slice(at, (at += vl)) : undefined });
      if (at > all.length) throw new Error('a staged batch is truncated');
    }
    return writes;
  }

  async function list(prefixKey) {
    const out = [];
    try {
      for await (const e of kv.list({ prefix: prefixKey }, { batchSize: 500 })) out.push(e);
    } catch (e) {
      throw new Error(`tabbit deno-kv: reading ${JSON.stringify(prefixKey)} failed: ${e?.message ?? e}`, { cause: e });
    }
    return out;
  }

  async function runCommits(mutations, what) {
    const commits = pack(mutations);
    for (let i = 0; i < commits.length; i++) await commit(commits[i], commits.length > 1 ? `${what} (commit ${i + 1} of ${commits.length})` : what);
  }

  /** Applies a committed batch's plan, then deletes its marker and log. Idempotent. */
  async function finish(p) {
    await runCommits(p.mutations, `applying staged batch ${p.id}`);
    await commit([del([...MARKERS, p.id])], `retiring staged batch ${p.id}`);
    chunked = p.counts;
    pending = null;
    const parts = [];
    for (let i = 0; i < p.parts; i++) parts.push(del([...STAGED, p.id, i]));
    // Deleting the log is tidying: load() deletes what is left of a batch without a marker.
    await runCommits(parts, `deleting staged batch ${p.id}`).catch(() => {});
  }

  /** The records under RECORDS, and their chunk counts. */
  async function scan() {
    const entries = await list(RECORDS);
    const records = [];
    const counts = new Map();
    const base = RECORDS.length;
    let cur = null; // {store, key, chunks, want}
    const flush = () => {
      if (!cur) return;
      const total = cur.chunks.reduce((n, c) => n + c.length, 0);
      const complete = cur.chunks.length === cur.want && cur.chunks.every((c) => c instanceof Uint8Array);
      const value = new Uint8Array(total);
      let at = 0;
      for (const c of cur.chunks) value.set(c, at), (at += c.length);
      // An incomplete chunked record cannot happen through this adapter; if it does, the broker
      // is handed a non-record, which it skips and reports in conn.problems.
      records.push([cur.store, cur.key, complete ? value : null]);
      cur = null;
    };
    for (const { key, value } of entries) {
      const [store, k, i] = key.slice(base);
      if (key.length === base + 2) {
        flush();
        if (value instanceof Uint8Array) records.push([store, k, value]);
        else cur = { store, key: k, chunks: [], want: value };
      } else if (key.length === base + 3) {
        const rid = id(store, k);
        counts.set(rid, Math.max(counts.get(rid) ?? 0, i + 1));
        if (cur && cur.store === store && cur.key === k && i === cur.chunks.length) cur.chunks.push(value);
      }
    }
    flush();
    return { records, counts };
  }

  /** Claims the prefix, finishes or discards staged batches; the records. */
  async function recover() {
    // A new broker on this prefix: it takes the prefix over (a string is a few bytes more than its length).
    owner = null;
    recovered = false;
    owner = (await commit([set(OWNER, crypto.randomUUID(), 64, ownerBytes)], 'claiming the prefix')).versionstamp;
    const markers = await list(MARKERS);
    const staged = await list(STAGED);
    const committed = new Map(markers.map((e) => [e.key[MARKERS.length], e.value]));
    for (const e of staged) nextId = Math.max(nextId, e.key[STAGED.length] + 1);
    for (const e of markers) nextId = Math.max(nextId, e.key[MARKERS.length] + 1);
    let { records, counts } = await scan();
    chunked = counts;
    pending = null;
    for (const [bid, nparts] of [...committed].sort((a, b) => a[0] - b[0])) {
      const parts = staged.filter((e) => e.key[STAGED.length] === bid).sort((a, b) => a.key[STAGED.length + 1] - b.key[STAGED.length + 1]);
      if (parts.length !== nparts) {
        throw new Error(`tabbit deno-kv: staged batch ${bid} was committed but has ${parts.length} of its ${nparts} parts: the KV was changed by something else`);
      }
      const writes = decodeLog(parts.map((e) => e.value));
      const next = new Map(chunked);
      await finish({ id: bid, mutations: plan(writes, next), counts: next, parts: nparts });
    }
    const orphans = staged.filter((e) => !committed.has(e.key[STAGED.length])).map((e) => del(e.key));
    if (orphans.length) await runCommits(orphans, 'deleting staged data of batches that never committed');
    if (committed.size) ({ records, counts } = await scan());
    chunked = counts;
    recovered = true;
    return records;
  }

  async function write(writes) {
    check(writes);
    if (!recovered) await recover(); // written to before any load(): recover first all the same
    if (pending) await finish(pending); // a committed batch not yet wholly applied goes first
    if (writes.length === 0) return;
    const counts = new Map(chunked);
    const mutations = plan(writes, counts);
    const commits = pack(mutations);
    if (commits.length === 1) {
      await commit(commits[0], `writing a batch of ${writes.length} records`);
      chunked = counts;
      return;
    }
    // Too big for one commit: stage, mark, apply.
    const bid = Math.max(nextId, Date.now());
    nextId = bid + 1;
    const parts = encodeLog(writes);
    const staging = parts.map((p, i) => set([...STAGED, bid, i], p, p.length));
    try {
      await runCommits(staging, `staging a batch of ${writes.length} records`);
    } catch (e) {
      // Not committed: its staged parts are garbage (load() deletes them too).
      await runCommits(parts.map((_, i) => del([...STAGED, bid, i])), 'deleting a failed staged batch').catch(() => {});
      throw e;
    }
    // The commit point. If it fails, the parts stay for load() to judge by the marker: were a
    // failed commit ever to have been applied after all, its batch would still be whole.
    await commit([set([...MARKERS, bid], parts.length, NUMBER_BYTES)], `committing staged batch ${bid}`);
    // Committed and durable: from here the batch is applied, now or by the next write or load.
    pending = { id: bid, mutations, counts, parts: parts.length };
    await finish(pending).catch(() => {});
  }

  return {
    async load() {
      await queue.catch(() => {});
      const p = recover();
      queue = p.catch(() => {});
      return p;
    },
    write(writes) {
      const p = queue.then(() => write(writes));
      queue = p.catch(() => {});
      return p;
    },
  };
}
