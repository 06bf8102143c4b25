// tabbit in a Cloudflare Durable Object (workerd, npm package `workerd`, objects on local disk),
// against the object's raw storage in the same workerd run:
//   raw put       one awaited ctx.storage.put() per message (then one sync() at the end);
//   raw put+sync  the same with an awaited ctx.storage.sync() after each put: each message
//                 durable before the next, as a confirm per message promises;
//   tabbit        persistent publish to a durable queue on a confirm channel, at most `window`
//                 unconfirmed, through 'tabbit/storage/durable-object' (js/storage/durable-object.js);
//   unstored      the same on a broker whose adapter stores nothing (write() resolves at once):
//                 the broker's own cost, the ceiling of what any adapter could reach.
// Each for a SQLite-backed object ('sql' backend) and a key-value one ('kv' backend; in workerd
// both keep their data in SQLite, so only the adapter's code path differs from 'sql' here).
// Rounds are interleaved (every row once per round, a fresh queue each; the first rounds warm up
// and are not counted: at least 30,000 messages a workload, one round of put+sync), timed in Node around
// the request (workerd's own clock moves only on I/O); the object's output gate holds each
// answer until its writes are committed, so each time covers durability. Figures: medians of
// `reps` rounds; ratios to the raw put of the same object kind.
//
//   node bench/edge-workerd.mjs [--n N] [--reps R] [--size BYTES] [--window W]
//
//   import { benchDurableObject } from './edge-workerd.mjs';
//   const rows = await benchDurableObject({ n: 5000, reps: 7 });  // [{name, value, unit, ratio, ratioDurable, samples}]
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { needBin, needPackage, removeDir, tempDir } from '../tests/runtimes/helpers.mjs';
import { needAdapterBuild, writeDurableObjectConfig } from '../tests/runtimes/workerd/do-config.mjs';
import { callObject, serveWorkerd } from '../tests/runtimes/workerd/serve.mjs';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const KINDS = ['sql', 'kv'];
/** Messages each workload runs before its rounds are counted (see the warm-up below). */
const WARMUP_MESSAGES = 30_000;
const WORKLOADS = [
  { id: 'raw', label: 'raw put/msg (awaited)' },
  { id: 'rawSync', label: 'raw put+sync()/msg' },
  { id: 'tabbit', label: 'tabbit persistent publish, confirms' },
  { id: 'unstored', label: 'the same, an adapter that stores nothing' },
];

/**
 * Runs the workloads `reps` times each with `n` messages of `size` bytes, in one workerd.
 * `ratio` is to the raw put of the same kind of object, `ratioDurable` to its put+sync.
 * @returns {Promise<{name: string, value: number, unit: string, ratio: number, ratioDurable: number, samples: number[]}[]>}
 */
export async function benchDurableObject({ n = 5000, reps = 7, size = 100, window = 1000 } = {}) {
  await needPackage();
  await needAdapterBuild();
  const workerd = await needBin('workerd');
  const dir = await tempDir('tabbit-bench-do-');
  const disk = join(dir, 'disk');
  await mkdir(disk);
  const { url, proc } = await serveWorkerd(null, workerd, dir, (file, address) => writeDurableObjectConfig(file, { disk, address }), {
    timeoutMs: 3_600_000,
  });
  try {
    const samples = {};
    const run = {
      raw: (kind) => callObject(url, kind, 'bench', 'benchRaw', n, size, false),
      rawSync: (kind) => callObject(url, kind, 'bench', 'benchRaw', n, size, true),
      tabbit: (kind) => callObject(url, kind, 'bench', 'benchBroker', 'bench', n, size, window),
      unstored: (kind) => callObject(url, kind, 'bench', 'benchBroker', 'bench', n, size, window, true),
    };
    for (const kind of KINDS) {
      const info = await callObject(url, kind, 'bench', 'info');
      if (info.backend !== kind) throw new Error(`the ${kind} object uses the ${info.backend} backend`);
    }
    // The rounds before round 0 warm up and are not counted: V8 tiers the wasm and the JS up
    // while they run, which takes tabbit's publish path some 30,000 messages (in Node, the same
    // V8: 5,000-message rounds go from ~30,000 to ~220,000 msg/s over the first six). So each
    // workload runs at least WARMUP_MESSAGES first, except put + sync(), whose time is the
    // commit of each message, not code: one round.
    const warmup = Math.max(1, Math.ceil(WARMUP_MESSAGES / n));
    for (let rep = -warmup; rep < reps; rep++) {
      for (const kind of KINDS) {
        for (const w of WORKLOADS) {
          if (w.id === 'rawSync' && rep < -1) continue;
          await callObject(url, kind, 'bench', 'benchReset', 'bench');
          const t0 = performance.now();
          await run[w.id](kind);
          const s = (performance.now() - t0) / 1000;
          if (rep >= 0) (samples[`${kind}/${w.id}`] ??= []).push(n / s);
        }
      }
    }
    const rows = [];
    for (const kind of KINDS) {
      const base = median(samples[`${kind}/raw`]);
      const durable = median(samples[`${kind}/rawSync`]);
      for (const w of WORKLOADS) {
        const xs = samples[`${kind}/${w.id}`];
        // ratioDurable: to the per-message write that is durable before the next (put+sync).
        rows.push({ name: `DO ${kind}: ${w.label}`, value: median(xs), unit: 'msg/s', ratio: median(xs) / base, ratioDurable: median(xs) / durable, samples: xs });
      }
    }
    return rows;
  } finally {
    await proc.kill();
    await removeDir(dir);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const options = { n: opt('--n', 5000), reps: opt('--reps', 7), size: opt('--size', 100), window: opt('--window', 1000) };
  for (const [k, v] of Object.entries(options)) {
    if (!Number.isInteger(v) || v < 1) {
      console.error(`--${k} must be a whole number ≥ 1 (got ${v})\nusage: node bench/edge-workerd.mjs [--n N] [--reps R] [--size BYTES] [--window W]`);
      process.exit(2);
    }
  }
  const rows = await benchDurableObject(options);
  const fmt = (x) => Math.round(x).toLocaleString('en');
  console.log(`Durable Object storage in workerd: ${options.n} messages of ${options.size} B, ${options.reps} rounds, window ${options.window}`);
  for (const r of rows) {
    const lo = Math.min(...r.samples);
    const hi = Math.max(...r.samples);
    // Rounds are interleaved: each round's figure against the raw put of the same round.
    const raw = rows.find((x) => x.name.startsWith(r.name.slice(0, r.name.indexOf(':') + 1)));
    const perRound = r.samples.map((x, i) => x / raw.samples[i]);
    const range = `${Math.min(...perRound).toFixed(2)}–${Math.max(...perRound).toFixed(2)}`;
    console.log(`${r.name.padEnd(50)} ${fmt(r.value).padStart(9)} ${r.unit}  [${fmt(lo)} – ${fmt(hi)}]  ${r.ratio.toFixed(2)}× put (per round ${range}), ${r.ratioDurable.toFixed(1)}× put+sync`);
  }
}
