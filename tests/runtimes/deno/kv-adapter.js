// The Deno KV storage adapter alone (tests/node/edge-deno.test.mjs runs it), in the real runtime:
//   deno run --unstable-kv --import-map=MAP --allow-read=... --allow-write=DIR kv-adapter.js DIR
// Prints one JSON line: {deno, limits, ...figures} or {error}. Every check throws on failure.
import { DENO_KV_LIMITS, denoKvStorage } from 'tabbit/storage/deno-kv';

const dir = Deno.args[0];
const out = { deno: Deno.version.deno };

function assert(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
/** Bytes that say where they are: byte i of record `seed` is (seed * 31 + i) mod 251. */
function bytes(n, seed) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i) % 251;
  return b;
}
/** load() as a Map "store/typeof/key" → bytes; fails on any entry that is not a record. */
async function state(adapter) {
  const m = new Map();
  for (const [store, key, value] of await adapter.load()) {
    assert(value instanceof Uint8Array, `record ${store}/${key} loads as bytes`);
    m.set(`${store}/${typeof key}/${key}`, value);
  }
  return m;
}
function sameState(a, b, what) {
  assert(a.size === b.size, `${what}: ${a.size} records, expected ${b.size}`);
  for (const [k, v] of b) assert(a.has(k) && eq(a.get(k), v), `${what}: record ${k}`);
}
/** What `writes` make of state `before`. */
function applied(before, writes) {
  const m = new Map(before);
  for (const { store, key, value } of writes) {
    const k = `${store}/${typeof key}/${key}`;
    if (value === undefined) m.delete(k);
    else m.set(k, value);
  }
  return m;
}
async function keysUnder(kv, prefix) {
  const keys = [];
  for await (const e of kv.list({ prefix })) keys.push(e.key);
  return keys;
}

try {
  const kv = await Deno.openKv(`${dir}/adapter.kv`);

  // 1. Deno KV's limits as this deno enforces them: the adapter's figures are the real ones.
  const refused = async (f) => {
    try {
      const r = await f();
      return !r.ok;
    } catch (e) {
      return e.message;
    }
  };
  const L = DENO_KV_LIMITS;
  assert(!(await refused(() => kv.set(['lim'], new Uint8Array(L.valueBytes)))), 'a value of valueBytes is taken');
  const tooBig = await refused(() => kv.set(['lim'], new Uint8Array(L.valueBytes + 1)));
  assert(/too large/i.test(tooBig), `a value of valueBytes + 1 is refused (${tooBig})`);
  assert(!(await refused(() => kv.set(['k'.repeat(L.keyBytes - 2)], 1))), 'a key of keyBytes is taken');
  assert(await refused(() => kv.set(['k'.repeat(L.keyBytes - 1)], 1)), 'a key of keyBytes + 1 is refused');
  const many = (n) => {
    const op = kv.atomic();
    for (let i = 0; i < n; i++) op.set(['lim', i], new Uint8Array(0));
    return op.commit();
  };
  assert(!(await refused(() => many(L.mutations))), 'a commit of `mutations` sets is taken');
  assert(await refused(() => many(L.mutations + 1)), 'a commit of `mutations` + 1 sets is refused');
  const sized = (extra) => {
    // ['lim', i] encodes to 5 + 9 = 14 bytes; a set costs its key twice and its value.
    const op = kv.atomic();
    let left = L.commitBytes + extra;
    for (let i = 0; left > 0; i++) {
      const v = Math.min(L.valueBytes, left - 28);
      op.set(['lim', i], new Uint8Array(v));
      left -= v + 28;
    }
    return op.commit();
  };
  assert(!(await refused(() => sized(0))), 'a commit of commitBytes is taken');
  assert(await refused(() => sized(1)), 'a commit of commitBytes + 1 is refused');
  out.limits = L;

  // 2. A batch over every limit of one commit round-trips: 3,000 records, values of 3 MiB and of
  //    valueBytes + 1, string and numeric keys that look alike, and a key of NULs.
  const big = [];
  for (let i = 0; i < 3000; i++) big.push({ store: 'segments', key: i, value: bytes(40 + (i % 50), i) });
  big.push({ store: 'segments', key: 1e15, value: bytes(3 << 20, 7) });
  big.push({ store: 'queues', key: '1', value: bytes(L.valueBytes + 1, 8) });
  big.push({ store: 'queues', key: 'q\u0000\u0000', value: bytes(L.valueBytes, 9) });
  big.push({ store: 'meta', key: 'clock', value: new Uint8Array(0) });
  let a = denoKvStorage(kv, { prefix: ['t2'] });
  sameState(await state(a), new Map(), 'an empty prefix');
  await a.write(big);
  let want = applied(new Map(), big);
  sameState(await state(denoKvStorage(kv, { prefix: ['t2'] })), want, 'the big batch after a reload');
  // Numeric keys come back as numbers, in order; '1' stays a string beside 1.
  const loaded = await denoKvStorage(kv, { prefix: ['t2'] }).load();
  const seg = loaded.filter(([s]) => s === 'segments').map(([, k]) => k);
  assert(seg.every((k, i) => typeof k === 'number' && (i === 0 || k > seg[i - 1])), 'numeric keys load as ordered numbers');
  assert(loaded.some(([s, k]) => s === 'queues' && k === '1'), "the string key '1' loads as a string");
  // Then shrink, grow and delete chunked records: no chunk of an old value is left behind.
  a = denoKvStorage(kv, { prefix: ['t2'] });
  await a.load();
  const change = [
    { store: 'segments', key: 1e15, value: bytes(10, 1) }, // 49 chunks → 1 record
    { store: 'queues', key: '1', value: undefined }, // 2 chunks → gone
    { store: 'queues', key: 'q\u0000\u0000', value: bytes(5 * L.valueBytes, 2) }, // → 5 chunks
    ...Array.from({ length: 1500 }, (_, i) => ({ store: 'segments', key: i, value: undefined })),
  ];
  await a.write(change);
  want = applied(want, change);
  sameState(await state(denoKvStorage(kv, { prefix: ['t2'] })), want, 'after shrinking and deleting');
  const raw = await keysUnder(kv, ['t2']);
  const chunks = raw.filter((k) => k.length === 5);
  assert(chunks.length === 5, `only the 5 chunks of the one chunked record are stored (${chunks.length})`);
  assert(raw.every((k) => k[1] === 'r' || k[1] === 'owner'), 'no staged data is left');
  out.bigBatch = { records: big.length, rawKeysAfter: raw.length };

  // 3. A batch that fails part-way: a KV whose Nth commit rejects, and every later one too, as if
  //    the process had died there. For every N: reloading with a sound adapter shows all of the
  //    batch if its write resolved, none of it if it rejected, and no staged data.
  const base = [
    { store: 'queues', key: 'keep', value: bytes(100, 1) },
    { store: 'segments', key: 1, value: bytes(200 << 10, 2) },
  ];
  const batch = [
    { store: 'queues', key: 'keep', value: bytes(90, 3) },
    { store: 'segments', key: 1, value: undefined },
    { store: 'segments', key: 2, value: bytes(1 << 20, 4) },
    ...Array.from({ length: 1200 }, (_, i) => ({ store: 'acks', key: i, value: bytes(8, i) })),
  ];
  const outcomes = { rejected: 0, resolved: 0, commits: 0 };
  for (let n = 1; ; n++) {
    const prefix = ['t3', n];
    await denoKvStorage(kv, { prefix }).write(base);
    let commits = 0;
    const dying = {
      list: (...args) => kv.list(...args),
      atomic() {
        const op = kv.atomic();
        const real = op.commit.bind(op);
        op.commit = () => (++commits >= n ? Promise.reject(new Error(`injected failure of commit ${commits}`)) : real());
        return op;
      },
    };
    const adapter = denoKvStorage(dying, { prefix });
    const loadError = await adapter.load().then(() => null, (e) => e.message); // commit 1: the claim
    if (n === 1) {
      assert(/claiming the prefix: .*injected failure/.test(loadError), `load() rejects, saying what failed: ${loadError}`);
      continue;
    }
    let error = null;
    await adapter.write(batch).catch((e) => (error = e));
    if (error) assert(/injected failure/.test(error.message) && /tabbit deno-kv/.test(error.message), `the rejection says what happened: ${error.message}`);
    const after = await state(denoKvStorage(kv, { prefix }));
    sameState(after, error ? applied(new Map(), base) : applied(applied(new Map(), base), batch), `failure at commit ${n} (${error ? 'rejected' : 'resolved'})`);
    const leftovers = (await keysUnder(kv, prefix)).filter((k) => k[2] === 's' || k[2] === 'm');
    assert(leftovers.length === 0, `failure at commit ${n}: the reload deletes the staged data (${leftovers.length} left)`);
    outcomes[error ? 'rejected' : 'resolved'] += 1;
    if (commits < n) {
      outcomes.commits = commits; // the write needed fewer commits than n: all are tried
      break;
    }
  }
  assert(outcomes.rejected > 0 && outcomes.resolved > 0, 'failures fall both before and after the commit point');
  out.partWay = outcomes;

  // 4. The same failure in a live adapter: the first commit after a big batch's marker (its
  //    first applying commit) fails; the write resolves (the batch is durable), and the next write
  //    first finishes applying it.
  {
    const prefix = ['t4'];
    let armed = false;
    let failed = 0;
    const flaky = {
      list: (...args) => kv.list(...args),
      atomic() {
        const op = kv.atomic();
        const real = op.commit.bind(op);
        const realSet = op.set.bind(op);
        let marker = false;
        op.set = (key, value) => ((marker ||= key[1] === 'm'), realSet(key, value));
        op.commit = async () => {
          if (armed && !marker) return (armed = false), failed++, Promise.reject(new Error('injected failure'));
          const r = await real();
          armed ||= marker;
          return r;
        };
        return op;
      },
    };
    const adapter = denoKvStorage(flaky, { prefix });
    await adapter.load();
    await adapter.write(batch);
    assert(failed === 1, 'the first applying commit failed');
    const next = [{ store: 'queues', key: 'keep', value: bytes(5, 5) }];
    await adapter.write(next);
    sameState(await state(denoKvStorage(kv, { prefix })), applied(batch.reduce((m, w) => applied(m, [w]), new Map()), next), 'a batch finished by the next write');
    assert((await keysUnder(kv, prefix)).every((k) => k[1] === 'r' || k[1] === 'owner'), 'and its staged data deleted');
  }

  // 5. Two brokers on one prefix: the second one's load() fences the first one's writes off.
  {
    const first = denoKvStorage(kv, { prefix: ['t5'] });
    await first.load();
    await first.write([{ store: 'meta', key: 'x', value: bytes(1, 1) }]);
    const second = denoKvStorage(kv, { prefix: ['t5'] });
    await second.load();
    const e = await first.write([{ store: 'meta', key: 'x', value: bytes(2, 2) }]).then(() => null, (e) => e);
    assert(e && /another broker/.test(e.message), `the first broker's write is refused: ${e?.message}`);
    await second.write([{ store: 'meta', key: 'y', value: bytes(3, 3) }]);
    sameState(await state(denoKvStorage(kv, { prefix: ['t5'] })), new Map([['meta/string/x', bytes(1, 1)], ['meta/string/y', bytes(3, 3)]]), 'fenced');
  }

  // 6. Bad input is refused, saying what to change, with nothing written.
  {
    const adapter = denoKvStorage(kv, { prefix: ['t6'] });
    await adapter.load();
    const why = async (writes) => adapter.write(writes).then(() => null, (e) => e.message);
    assert(/'key' must be/.test(await why([{ store: 'meta', key: -1, value: new Uint8Array(1) }])), 'a negative key');
    assert(/'value' must be a Uint8Array/.test(await why([{ store: 'meta', key: 'a', value: 'text' }])), 'a string value');
    assert(/array/.test(await why('nope')), 'not an array');
    const long = await why([{ store: 'meta', key: 'x'.repeat(3000), value: new Uint8Array(1) }]);
    assert(/2048-byte limit on a key/.test(long), `a key too long for Deno KV: ${long}`);
    assert((await adapter.load()).length === 0, 'nothing of the refused batches was written');
    let threw = null;
    try {
      denoKvStorage({}, {});
    } catch (e) {
      threw = e.message;
    }
    assert(/needs a Deno.Kv/.test(threw), 'not a KV');
  }
  kv.close();
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.stack ?? e) }));
  Deno.exit(1);
}
