// tabbit against the platform, in one headless Chromium (scripts/bench builds pkg/ and runs this).
// The in-page workloads are bench/workloads.js; this file runs them, takes medians and prints
// one table (also written as JSON to bench/results.json):
//   (a)  raw IndexedDB, one record per message, 100 messages per transaction (the baseline);
//   (a') raw IndexedDB, one record holding 100 messages per transaction (for context);
//   (b)  tabbit persistent publish on a confirm channel into a durable queue, window of 1,000 unconfirmed;
//   (c)  tabbit get + ack of those messages until the queue is empty, then flush();
//   (d)  reopen with 100,000 persistent messages queued: connect() until a first get returns;
//   (e)  memory with N persistent messages queued: wasm linear memory + JS heap (after a GC);
//   (f)  the size of what the package ships (wasm and JS), gzipped.
// Throughputs are medians of --reps rounds (fresh database each), rounds interleaved so that the
// machine's noise hits every row alike; ratios are to (a) of the same run and message size.
// IndexedDB is on disk: a persistent browser profile in a temporary directory.
//
//   node bench/run.mjs [--quick] [--reps N] [--memory-n N] [--profile]
//     --quick      ~1 minute: fewer messages, no memory row unless --memory-n (smoke use)
//     --reps       rounds per throughput figure (default 7, --quick 3)
//     --memory-n   messages queued for (e) (default 1,000,000)
//     --profile    also CPU-profile one (b) and one (c) with a build that keeps function names
//                  (scripts/bench --profile builds it into target/bench-pkg-profiling) and print
//                  the top self-time functions
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { BLANK, ROOT, launchBrowser, openPage, removeDir, startServer, tempDir } from '../tests/node/browser.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const known = ['--quick', '--reps', '--memory-n', '--profile'];
if (flag('--help') || args.some((a) => a.startsWith('--') && !known.includes(a)) || !(option('--reps', 3) >= 1)) {
  console.log('usage: scripts/bench [--quick] [--reps N] [--memory-n N] [--profile]');
  process.exit(flag('--help') ? 0 : 2);
}
const quick = flag('--quick');
const config = {
  reps: option('--reps', quick ? 3 : 7),
  n: quick ? 5_000 : 20_000, // 100-byte messages for (a), (b), (c)
  nKb: quick ? 2_000 : 10_000, // 1 KB messages
  window: 1_000,
  reopenN: quick ? 20_000 : 100_000,
  reopenReps: 3,
  memoryN: option('--memory-n', quick ? 0 : 1_000_000),
  profile: flag('--profile'),
};
const PROFILING_PKG = '/target/bench-pkg-profiling/index.js'; // the main module, beside its glue

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const MB = 1024 * 1024;
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

const server = await startServer();
const userDataDir = await tempDir('tabbit-bench-');
const { context, browser, close } = await launchBrowser({ userDataDir });
const pageErrors = [];

/** A fresh page with the package loaded; `run(fn, opts)` calls a workload in it. */
async function benchPage(pkg) {
  const { page, errors } = await openPage(context, server.url + BLANK);
  pageErrors.push(errors);
  const run = (fn, opts) =>
    page.evaluate(async ([fn, opts]) => (await import('/bench/workloads.js'))[fn](opts), [fn, opts]);
  const info = await run('load', pkg);
  const cdp = await context.newCDPSession(page);
  return { page, run, info, cdp };
}

const rows = []; // {id, label, unit, samples, median, ratio?, goal?, pass?}
function row(id, label, unit, samples, extra = {}) {
  const r = { id, label, unit, samples, median: median(samples), ...extra };
  rows.push(r);
  return r;
}
const rate = (n, ms) => (n / ms) * 1000;

let profile = null;
let machine;
try {
  const main = await benchPage();

  // (a), (a'), (b), (c) for 100-byte messages, then 1 KB: rounds interleave the workloads.
  for (const [size, n, tag] of [
    [100, config.n, ''],
    [1024, config.nKb, ', 1 KB'],
  ]) {
    const s = { rec: [], seg: [], pub: [], get: [] };
    for (let r = 0; r < config.reps; r++) {
      log(`${size} B messages, round ${r + 1}/${config.reps}`);
      s.rec.push(rate(n, (await main.run('idbWrite', { n, size })).ms));
      s.seg.push(rate(n, (await main.run('idbWrite', { n, size, segment: true })).ms));
      s.pub.push(rate(n, (await main.run('publish', { n, size, window: config.window })).ms));
      const d = await main.run('drain');
      if (d.got !== n) throw new Error(`drain got ${d.got} messages, expected ${n}`);
      s.get.push(rate(n, d.ms));
      await main.run('finish');
    }
    const base = row(`a${tag ? '-1k' : ''}`, `(a)  IndexedDB, 1 record/msg, 100/tx${tag}`, 'msg/s', s.rec);
    const withRatio = (r) => Object.assign(r, { ratio: r.median / base.median });
    const goal = tag ? {} : { goal: '≥ 5× (a)', pass: (r) => r.median >= 5 * base.median };
    base.ratio = 1;
    withRatio(row(`a-seg${tag ? '-1k' : ''}`, `(a') IndexedDB, 100-msg segment/tx${tag}`, 'msg/s', s.seg));
    withRatio(row(`b${tag ? '-1k' : ''}`, `(b)  tabbit publish, confirms, window ${config.window}${tag}`, 'msg/s', s.pub, goal));
    withRatio(row(`c${tag ? '-1k' : ''}`, `(c)  tabbit get + ack, then flush${tag}`, 'msg/s', s.get, goal));
  }

  // (d) reopen with reopenN messages queued.
  log(`(d) publishing ${config.reopenN} messages, then reopening ${config.reopenReps} times`);
  const fill = await main.run('publish', { n: config.reopenN, size: 100, window: config.window });
  const re = await main.run('reopen', { reps: config.reopenReps });
  await main.run('finish');
  if (re.messageCount !== config.reopenN) throw new Error(`reopen found ${re.messageCount} messages`);
  row('d', `(d)  reopen, ${config.reopenN.toLocaleString('en')} msgs queued → first get`, 'ms', re.times, {
    goal: '≤ 500 ms',
    pass: (r) => r.median <= 500,
    note: `filled at ${Math.round(rate(config.reopenN, fill.ms)).toLocaleString('en')} msg/s`,
  });
  await main.page.close();

  // (e) memory, in a fresh page so that earlier workloads do not count.
  if (config.memoryN > 0) {
    log(`(e) publishing ${config.memoryN} messages for the memory reading`);
    const mem = await benchPage();
    const heapUsed = async () => {
      await mem.cdp.send('HeapProfiler.collectGarbage');
      return (await mem.cdp.send('Runtime.getHeapUsage')).usedSize;
    };
    const [wasm0, heap0] = [await mem.run('wasmBytes'), await heapUsed()];
    const p = await mem.run('publish', { n: config.memoryN, size: 100, window: config.window });
    const [wasm1, heap1] = [await mem.run('wasmBytes'), await heapUsed()];
    await mem.run('finish');
    await mem.page.close();
    row('e', `(e)  memory, ${config.memoryN.toLocaleString('en')} × 100 B msgs queued`, 'MB', [(wasm1 + heap1) / MB], {
      goal: '≤ 128 MB',
      pass: (r) => r.median <= 128,
      note: `wasm ${(wasm1 / MB).toFixed(0)} MB (${(wasm0 / MB).toFixed(1)} empty) + JS heap ${(heap1 / MB).toFixed(1)} MB (${(heap0 / MB).toFixed(1)} empty); filled at ${Math.round(rate(config.memoryN, p.ms)).toLocaleString('en')} msg/s`,
      wasmBytes: wasm1,
      jsHeapBytes: heap1,
      wasmBytesEmpty: wasm0,
      jsHeapBytesEmpty: heap0,
    });
  }

  // (f) what the package ships, gzipped (the goal of the package: 100 KB in all).
  const shipped = ['tabbit_bg.wasm', 'tabbit.js', 'index.js'];
  const snippets = await readdir(join(ROOT, 'pkg', 'snippets'), { recursive: true });
  shipped.push(...snippets.filter((f) => f.endsWith('.js')).map((f) => join('snippets', f)));
  const sizes = await Promise.all(shipped.map(async (f) => [f, gzipSync(await readFile(join(ROOT, 'pkg', f)), { level: 9 }).length]));
  row('f', '(f)  package, gzipped: wasm + JS', 'KB', [sizes.reduce((a, [, n]) => a + n, 0) / 1024], {
    goal: '≤ 100 KB',
    pass: (r) => r.median <= 100,
    note: sizes.map(([f, n]) => `${f.split('/').pop()} ${(n / 1024).toFixed(1)} KB`).join(', '),
  });

  // CPU profiles of one (b) and one (c), with function names.
  if (config.profile) {
    log('profiling one (b) and one (c)');
    const prof = await benchPage(PROFILING_PKG);
    await prof.cdp.send('Profiler.enable');
    await prof.cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    const profiled = async (fn, opts) => {
      await prof.cdp.send('Profiler.start');
      await prof.run(fn, opts);
      return topSelf((await prof.cdp.send('Profiler.stop')).profile);
    };
    profile = {
      publish: await profiled('publish', { n: config.n, size: 100, window: config.window }),
      drain: await profiled('drain'),
    };
    await prof.run('finish');
  }

  machine = {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model,
    chromium: browser?.version() ?? main.info.userAgent,
    node: process.version,
    tabbit: main.info.version,
  };
} finally {
  await close();
  await server.close();
  await removeDir(userDataDir);
}

/**
 * Top functions by self time of a CDP profile: [{fn, ms, pct, caller}], with the caller that most
 * of that time came through; '(idle)' is the page waiting (for IndexedDB).
 */
function topSelf(p, top = 15) {
  const byNode = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map(p.nodes.flatMap((n) => (n.children ?? []).map((c) => [c, n.id])));
  const label = (id) => {
    const { functionName, url, lineNumber } = byNode.get(id).callFrame;
    const file = url ? ` ${url.split('/').pop()}${lineNumber >= 0 ? ':' + (lineNumber + 1) : ''}` : '';
    return `${(functionName || '(anonymous)').replace(/::h[0-9a-f]{16}$/, '')}${file}`;
  };
  const self = new Map(); // label -> {ms, callers: Map(label -> ms)}
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    const id = p.samples[i];
    const f = self.get(label(id)) ?? { ms: 0, callers: new Map() };
    self.set(label(id), f);
    f.ms += dt;
    const caller = parent.has(id) ? label(parent.get(id)) : '';
    f.callers.set(caller, (f.callers.get(caller) ?? 0) + dt);
    total += dt;
  }
  return [...self]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, top)
    .map(([fn, { ms, callers }]) => ({
      fn,
      ms: Math.round(ms),
      pct: Math.round((ms / total) * 1000) / 10,
      caller: [...callers].sort((a, b) => b[1] - a[1])[0][0],
    }));
}

// Report.
const date = new Date().toISOString();
for (const r of rows) if (r.pass) r.pass = r.pass(r) ? 'PASS' : 'MISS';
const fmt = (r) => {
  const v = r.unit === 'msg/s' ? Math.round(r.median).toLocaleString('en') : r.median.toFixed(r.unit === 'MB' ? 0 : 1);
  return `${v} ${r.unit}`;
};
const number = (r, v) => fmt({ ...r, median: v }).split(' ')[0];
const spread = (r) =>
  r.samples.length > 1 ? `${r.samples.length}: ${number(r, Math.min(...r.samples))}–${number(r, Math.max(...r.samples))}` : '';
console.log(`\ntabbit bench, ${date}: ${machine.nproc} cores (${machine.cpu}), Chromium ${machine.chromium}, node ${machine.node}, tabbit ${machine.tabbit}`);
console.log(`medians of ${config.reps} rounds (100 B: ${config.n.toLocaleString('en')} msgs, 1 KB: ${config.nKb.toLocaleString('en')} msgs); IndexedDB on disk\n`);
const table = [['', 'median', 'vs (a)', 'goal', '', 'runs: min–max']].concat(
  rows.map((r) => [r.label, fmt(r), r.ratio != null ? `${r.ratio.toFixed(2)}×` : '', r.goal ?? '', r.pass ?? '', spread(r)]),
);
const widths = table[0].map((_, i) => Math.max(...table.map((t) => t[i].length)));
for (const t of table) console.log(t.map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd());
for (const r of rows) if (r.note) console.log(`  ${r.id}: ${r.note}`);
if (profile) {
  for (const [what, top] of Object.entries(profile)) {
    console.log(`\nCPU profile, one ${what === 'publish' ? '(b)' : '(c)'} run, top self time:`);
    for (const f of top) console.log(`  ${String(f.ms).padStart(6)} ms ${String(f.pct).padStart(5)}%  ${f.fn}${f.caller ? `  ← ${f.caller}` : ''}`);
  }
}
const errors = pageErrors.flat();
if (errors.length) console.log(`\npage errors:\n  ${errors.join('\n  ')}`);
const out = join(ROOT, 'bench', 'results.json');
await writeFile(out, JSON.stringify({ date, machine, config, rows, profile, errors }, null, 2) + '\n');
console.log(`\nwritten: ${out}`);
process.exit(errors.length ? 1 : 0);
