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
// Across tabs of the browser (bench/mesh-workloads.js; publisher tab P, consumer tab C, and H, the
// tab that joined the broker first and hosts it; P and C are clients unless said otherwise):
//   (g)  raw BroadcastChannel P → C, one message per postMessage (the baseline across tabs);
//   (g') the same with 100 messages per postMessage;
//   (g-port), (g-port') the same over a MessagePort between P and C (the two ends of a
//        MessageChannel a SharedWorker hands out, bench/port-switchboard.js), cloned as (g)'s:
//        a point-to-point transport's baseline;
//   (h)  tabbit transient P → H → C: plain channel, at most 1,000 messages sent and not yet
//        received (C reports its count every 500 on a BroadcastChannel of its own), C acks each;
//        and again with a window of 5,000 (the round trip P → H → C → P bounds the first);
//   (h') the same with the publisher hosting (P = H);
//   (i)  tabbit persistent P → H → C: durable queue, confirm channel, window of 1,000
//        unconfirmed, C acks each; timed until C has all and P has every confirm;
//   (j)  latency at idle, P → H → C, one way (the send time travels in the message; the tabs share
//        a clock, in steps of 0.1 ms: the pages are not cross-origin isolated): p50 and p99 of
//        each round's sequential messages, 5 ms apart; transient and durable;
//   (j') the same under load: while tab L1 publishes transient 100-byte messages at a fixed rate,
//        half the median of (h), to a queue that tab L2 consumes (a broker of all five tabs);
//   (k)  failover with N durable messages queued in the host, one client tab waiting: from the
//        host's crash until the client hosts, and until its first get returns a message.
// The peer that web apps use across tabs today, the npm package broadcast-channel (tests/package.json
// pins it; the pages load its browser bundle from tests/node_modules):
//   (l)  its 'native' method P → C (BroadcastChannel underneath), no flow control, as (g);
//   (m)  its 'idb' method P → C (a transaction per message; the receiver polls every 150 ms);
//        (h) is shown again against (l), and (i) against (m).
// More of tabbit across tabs:
//   (n)  fanout P → H → C, L1, L2: a fanout exchange, a transient queue per consumer tab, window
//        1,000 for the slowest consumer: per consumer and in total;
//   (o)  topic publish to an exchange with 1,000 bindings (a queue each, a few matching each key,
//        no consumers), confirm channel, window 1,000: by the host (P = H), and P → H.
// (p)  the native core benchmark (examples/bench_core.rs, built and run with cargo): its figures,
//      each the median of its own 7 runs.
// The edge (the real runtimes from npm; skipped with a line in the log if one is missing):
//   (r0) Deno KV: one awaited kv.set per message; (r) tabbit persistent publish with confirms on
//        tabbit/storage/deno-kv, window 1,000 (bench/edge-deno.mjs);
//   (s0) a Durable Object in workerd (SQLite-backed and KV-backed): one awaited put per message;
//   (s1) put + sync() per message (durable before the next); (s) tabbit persistent publish with
//        confirms on tabbit/storage/durable-object (bench/edge-workerd.mjs); its note gives the
//        same publishes with an adapter that stores nothing, the broker's own cost.
//   (t0) RabbitMQ's Web-STOMP on loopback: persistent SEND → RECEIPT, window 100, and (t0') SEND →
//        MESSAGE to a consumer that acks each (client-individual, prefetch 100); (t) and (t') the
//        same over Web-STOMP to tabbit's serveStomp() in Deno and to the TabbitBroker Durable Object
//        in workerd, one client for all (@stomp/stompjs), ratios to (t0) / (t0') of the same run
//        (bench/edge-stomp.mjs); skipped without rabbitmq-server.
// Throughputs are medians of --reps rounds (fresh database each), rounds interleaved so that the
// machine's noise hits every row alike; ratios are to the raw baseline of the same run and
// message size: (a) for IndexedDB and tabbit alone or persistent, (g) for transient across tabs.
// IndexedDB is on disk: a persistent browser profile in a temporary directory.
//
//   node bench/run.mjs [--quick] [--reps N] [--memory-n N] [--profile] [--rows ID,...]
//     --quick      ~1 minute: fewer messages, no memory row unless --memory-n (smoke use)
//     --reps       rounds per throughput figure (default 7, --quick 3)
//     --memory-n   messages queued for (e) (default 1,000,000)
//     --profile    also CPU-profile one (b), one (c), and the three tabs of one (g), (h) and (i),
//                  with a build that keeps function names (scripts/bench --profile builds it into
//                  target/bench-pkg-profiling) and print the top self-time functions (for (g),
//                  only how busy the tabs were); with (q), also the page of one (q) run
//     --rows       only the parts of the run that make these rows, e.g. --rows q,q0: a row is made
//                  if its id, or its id up to the first '-' (h for h-wide), is listed
import { execFile } from 'node:child_process';
import { cp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { availableParallelism, cpus, homedir } from 'node:os';
import { join } from 'node:path';
import { BLANK, ROOT, crashPage, launchBrowser, openPage, removeDir, startServer, tempDir } from '../tests/node/browser.mjs';
import { rabbitAvailable, startRabbit } from '../tests/node/rabbitmq.mjs';
import { budget, packageSize } from '../scripts/package-size.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const text = (name) => (args.includes(name) ? String(args[args.indexOf(name) + 1]) : undefined);
const option = (name, fallback) => (text(name) === undefined ? fallback : Number(text(name)));
const known = ['--quick', '--reps', '--memory-n', '--profile', '--rows'];
if (flag('--help') || args.some((a) => a.startsWith('--') && !known.includes(a)) || !(option('--reps', 3) >= 1)) {
  console.log('usage: scripts/bench [--quick] [--reps N] [--memory-n N] [--profile] [--rows ID,...]');
  process.exit(flag('--help') ? 0 : 2);
}
/** --rows: the row ids asked for; `want(...ids)` says whether a part that makes these rows runs. */
const only = text('--rows')?.split(',').filter(Boolean);
const want = (...ids) => !only || ids.some((id) => only.includes(id) || only.includes(id.split('-')[0]));
const quick = flag('--quick');
const config = {
  reps: option('--reps', quick ? 3 : 7),
  n: quick ? 5_000 : 20_000, // 100-byte messages for (a), (b), (c)
  nKb: quick ? 2_000 : 10_000, // 1 KB messages
  window: 1_000,
  reopenN: quick ? 20_000 : 100_000,
  reopenReps: 3, // also failovers (k), with reopenN messages
  latencyN: quick ? 50 : 200, // sequential messages per round for (j)
  latencyGap: 5, // ms between them
  peerN: quick ? 1_000 : 5_000, // messages for (m), of either size
  bindings: 1_000, // for (o)
  bridgeN: quick ? 2_000 : 10_000, // messages to RabbitMQ per round of (q)
  stompN: quick ? 1_000 : 5_000, // messages per round and server of (t)
  memoryN: option('--memory-n', quick ? 0 : 1_000_000),
  profile: flag('--profile'),
};
const PROFILING_PKG = '/target/bench-pkg-profiling/index.js'; // the main module, beside its glue
// pkg/ as it is at the start, copied for this run: pkg/ may be rebuilt meanwhile (by scripts/test,
// say), and the tabs of one run must all load one build.
const PKG_DIR = join('target', `bench-pkg-${process.pid}`);
const PKG = `/${PKG_DIR}/index.js`;
const WORKLOADS = '/bench/workloads.js';
const MESH_WORKLOADS = '/bench/mesh-workloads.js';
const BRIDGE_WORKLOADS = '/bench/bridge-workloads.js';

/** The nearest-rank percentile `p` (0–1) of `xs`. */
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(p * xs.length) - 1)];
/** Copies pkg/ to PKG_DIR when no build is writing it: snippets there and nothing changed for 3 s, before and during the copy. */
async function snapshotPkg() {
  const newest = async () => {
    const files = await readdir(join(ROOT, 'pkg'), { recursive: true });
    if (!files.includes('index.js') || !files.includes('snippets')) return Infinity;
    return Math.max(...(await Promise.all(files.map(async (f) => (await stat(join(ROOT, 'pkg', f))).mtimeMs))));
  };
  for (let waited = 0; waited < 120_000; waited += 1000) {
    const before = await newest().catch(() => Infinity);
    if (before < Date.now() - 3000) {
      await removeDir(join(ROOT, PKG_DIR));
      await cp(join(ROOT, 'pkg'), join(ROOT, PKG_DIR), { recursive: true });
      if ((await newest().catch(() => Infinity)) === before) return;
    }
    await new Promise((ok) => setTimeout(ok, 1000));
  }
  throw new Error('pkg/ kept changing for 2 minutes: a build is running? (scripts/build-pkg)');
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const MB = 1024 * 1024;
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

// (p) first, while the machine is otherwise idle; its rows go last.
if (want('p')) log('(p) the native core benchmark: cargo run --profile bench-native --example bench_core');
const core = want('p') ? await coreBench() : { header: '(not run)', figures: [] };
const peerVersion = JSON.parse(await readFile(join(ROOT, 'tests/node_modules/broadcast-channel/package.json'))).version;
await snapshotPkg();
const server = await startServer();
const userDataDir = await tempDir('tabbit-bench-');
const { context, browser, close } = await launchBrowser({ userDataDir });
const pageErrors = [];

/** A fresh page with the package loaded; `run(fn, opts)` calls a workload of `module` in it. */
async function benchPage(pkg = PKG, module = WORKLOADS) {
  const { page, errors } = await openPage(context, server.url + BLANK);
  pageErrors.push(errors);
  const run = (fn, opts) =>
    page.evaluate(async ([module, fn, opts]) => (await import(module))[fn](opts), [module, fn, opts]);
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
const size1k = (tag) => (tag ? '-1k' : '');
/** Sets r's ratio to base row `base` (an id of this run). */
const vs = (r, base) => Object.assign(r, { ratio: r.median / rows.find((b) => b.id === base).median, base: base.replace(/-1k$/, '') });

/**
 * CPU profiles of the tabs (benchPages) while `work()` runs: the top self-time functions of each.
 * The build of PROFILING_PKG keeps function names.
 */
async function profiled(tabs, work, top) {
  for (const t of tabs) {
    await t.cdp.send('Profiler.enable');
    await t.cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await t.cdp.send('Profiler.start');
  }
  await work();
  return Promise.all(tabs.map(async (t) => topSelf((await t.cdp.send('Profiler.stop')).profile, top)));
}

// ---- across tabs (bench/mesh-workloads.js) ----

/** A tab for the workloads across tabs: a benchPage with bench/mesh-workloads.js. */
const meshTab = (pkg = PKG) => benchPage(pkg, MESH_WORKLOADS);

let brokers = 0;
const meshName = (what) => `bench-${what}-${Date.now()}-${++brokers}`;

/**
 * Tabs join a fresh broker, `host` first (it must host, the others must not). leave() closes
 * them, the host last, and deletes the broker's database.
 */
async function joinBroker(host, ...clients) {
  const name = meshName('mesh');
  if (!(await host.run('join', { name })).hosting) throw new Error(`the first tab to join ${name} does not host`);
  for (const c of clients) if ((await c.run('join', { name })).hosting) throw new Error(`a later tab to join ${name} hosts`);
  const leave = async () => {
    for (const c of clients) await c.run('leave');
    await host.run('leave', { drop: true });
  };
  return { name, leave };
}

/** One run from tab `from` to tab `to` or tabs [`to`, …] (see mesh-workloads.js for `opts`): → {ms, latencies}, the first tab's. */
async function crossTab(from, to, opts) {
  const tos = [to].flat();
  for (const t of tos) await t.run('listen', opts);
  const sent = await from.run('send', { ...opts, receivers: tos.length });
  const got = await Promise.all(tos.map((t) => t.run('received')));
  for (const g of got) if (g.got !== opts.n) throw new Error(`${opts.via} ${opts.key}: received ${g.got} messages, expected ${opts.n}`);
  return { ms: Math.max(sent.t1, ...got.map((g) => g.t1)) - sent.t0, latencies: got[0].latencies };
}

/**
 * (o)'s bindings and keys: keys of 3 words out of 10 (w0.w0.w0 … w9.w9.w9); queue i binds the key
 * of i's digits, or 1 in 20 with the middle word '*', 1 in 20 the first word '*', 1 in 20 the last '#'.
 */
const topic = (() => {
  const words = (i) => [i % 10, Math.floor(i / 10) % 10, Math.floor(i / 100) % 10].map((d) => `w${d}`);
  const shapes = [([a, , c]) => `${a}.*.${c}`, ([, b, c]) => `*.${b}.${c}`, ([a, b]) => `${a}.${b}.#`];
  const patterns = Array.from({ length: config.bindings }, (_, i) => (shapes[(i * 37) % 20] ?? ((w) => w.join('.')))(words(i)));
  return { patterns, keys: Array.from({ length: 1000 }, (_, i) => words((i * 7919) % 1000).join('.')) };
})();

/** The runs of one round for `size`-byte messages (of rows (g)–(o); see mesh-workloads.js). */
const meshRuns = (size, n) => ({
  g: { via: 'bc', n, size }, // no flow control
  gBatch: { via: 'bc', n, size, perPost: 100 },
  gPort: { via: 'port', n, size },
  gPortBatch: { via: 'port', n, size, perPost: 100 },
  h: { via: 'tabbit', queue: 't', n, size, window: config.window, every: config.window / 2 },
  // The same with 5× the window: (h) is bound by window ÷ round trip (P → H → C → P).
  hWide: { via: 'tabbit', queue: 't', n, size, window: 5 * config.window, every: (5 * config.window) / 2 },
  i: { via: 'tabbit', queue: 'd', durable: true, persistent: true, n, size, confirmWindow: config.window },
  latency: { n: config.latencyN, size, window: 1, every: 1, gap: config.latencyGap, stamps: true },
  l: { via: 'broadcast-channel', method: 'native', n, size },
  m: { via: 'broadcast-channel', method: 'idb', n: config.peerN, size },
  n: { via: 'tabbit', exchange: 'fan', type: 'fanout', n, size, window: config.window, every: config.window / 2 },
  o: { via: 'tabbit', exchange: 'topic', type: 'topic', keys: topic.keys, n, size, confirmWindow: config.window },
});

/**
 * The native core benchmark, as its header says to run it: → rows' figures [{label, value, unit}]
 * (each the median of its own runs).
 */
async function coreBench() {
  const env = { ...process.env, PATH: `${join(homedir(), '.cargo', 'bin')}:${process.env.PATH}` };
  const args = ['run', '--quiet', '--profile', 'bench-native', '--example', 'bench_core'];
  const { stdout } = await promisify(execFile)('cargo', args, { cwd: ROOT, env, maxBuffer: 1 << 20 });
  const figures = [...stdout.matchAll(/^(.+?)\s{2,}(\d+) (\S+)$/gm)].map(([, label, value, unit]) => ({ label, value: Number(value), unit }));
  if (figures.length < 4) throw new Error(`bench_core printed:\n${stdout}`);
  return { header: stdout.split('\n')[0], figures };
}

let profile = null;
let machine;
try {
  const main = await benchPage();
  // (a)–(q), each part only if --rows wants it (the block is not indented, to keep the diff small).
  {

  // (a), (a'), (b), (c) for 100-byte messages, then 1 KB: rounds interleave the workloads.
  if (want('a', 'b', 'c')) {
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
      const base = row(`a${tag ? '-1k' : ''}`, `(a)  IndexedDB, 1 record/msg, 100/tx${tag}`, 'msg/s', s.rec, { ratio: 1, base: 'a' });
      const withRatio = (r) => vs(r, base.id);
      const goal = tag ? {} : { goal: '≥ 5× (a)', pass: (r) => r.median >= 5 * base.median };
      withRatio(row(`a-seg${tag ? '-1k' : ''}`, `(a') IndexedDB, 100-msg segment/tx${tag}`, 'msg/s', s.seg));
      withRatio(row(`b${tag ? '-1k' : ''}`, `(b)  tabbit publish, confirms, window ${config.window}${tag}`, 'msg/s', s.pub, goal));
      withRatio(row(`c${tag ? '-1k' : ''}`, `(c)  tabbit get + ack, then flush${tag}`, 'msg/s', s.get, goal));
    }
  }

  // (d) reopen with reopenN messages queued.
  if (want('d')) {
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
  }
  await main.page.close();

  // (e) memory, in a fresh page so that earlier workloads do not count.
  if (config.memoryN > 0 && want('e')) {
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

  // (f) what the package ships, gzipped (the goal of the package: 100 KB in all), counted by
  // scripts/package-size.mjs, as the size budget of scripts/test counts it.
  if (want('f')) {
    const size = await packageSize(join(ROOT, PKG_DIR));
    row('f', '(f)  package, gzipped: wasm + JS', 'KB', [size.total / 1024], {
      goal: '≤ 100 KB',
      pass: (r) => r.median <= 100,
      note: `${size.total.toLocaleString('en')} B: wasm ${(size.wasm / 1024).toFixed(1)} KB + JS ${(size.js / 1024).toFixed(1)} KB (${size.files.map(([f, n]) => `${f.split('/').pop()} ${(n / 1024).toFixed(1)}`).join(', ')}); budget ${(await budget()).toLocaleString('en')} B (size-budget.json)`,
      bytes: size.total,
      wasmBytes: size.wasm,
      jsBytes: size.js,
    });
  }

  // (g), (g'), (l), (m), (h), (h'), (i), then 1 KB; (j), (n), (o) in the 100 B rounds; then (j').
  // Five tabs: L1 and L2 join a broker only for (n) and (j'), since every tab of a broker receives
  // every post.
  if (want('g', 'h', 'i', 'j', 'l', 'm', 'n', 'o')) {
  const [H, P, C, L1, L2] = [await meshTab(), await meshTab(), await meshTab(), await meshTab(), await meshTab()];
  const meshTabs = [H, P, C, L1, L2];
  const hidden = (await Promise.all(meshTabs.map((t) => t.run('visibility')))).filter((v) => v !== 'visible');
  if (hidden.length) log(`warning: ${hidden.length} bench tabs are not visible (${hidden}): their timers are throttled`);
  const lat = { bc: [], t: [], d: [], tLoad: [], dLoad: [] }; // per round: one-way latencies, ms
  const extra = { load: [], nEach: [], nTotal: [], oHost: [], o: [], matches: [] }; // 100 B rounds: (j') load, (n), (o)
  for (const [size, n, tag] of [
    [100, config.n, ''],
    [1024, config.nKb, ', 1 KB'],
  ]) {
    const s = { g: [], gBatch: [], gPort: [], gPortBatch: [], l: [], m: [], h: [], hWide: [], hHost: [], i: [] };
    const runs = meshRuns(size, n);
    for (let r = 0; r < config.reps; r++) {
      log(`across tabs, ${size} B messages, round ${r + 1}/${config.reps}`);
      s.g.push(rate(n, (await crossTab(P, C, { ...runs.g, key: meshName('bc') })).ms));
      s.gBatch.push(rate(n, (await crossTab(P, C, { ...runs.gBatch, key: meshName('bc') })).ms));
      for (const [samples, opts] of [
        [s.gPort, runs.gPort],
        [s.gPortBatch, runs.gPortBatch],
      ]) {
        const key = meshName('port');
        await Promise.all([P.run('pair', { key }), C.run('pair', { key })]);
        samples.push(rate(n, (await crossTab(P, C, { ...opts, key })).ms));
      }
      s.l.push(rate(n, (await crossTab(P, C, { ...runs.l, key: meshName('peer') })).ms));
      s.m.push(rate(runs.m.n, (await crossTab(P, C, { ...runs.m, key: meshName('peer') })).ms));
      const b = await joinBroker(H, P, C);
      s.h.push(rate(n, (await crossTab(P, C, { ...runs.h, key: b.name })).ms));
      s.hWide.push(rate(n, (await crossTab(P, C, { ...runs.hWide, key: b.name })).ms));
      s.hHost.push(rate(n, (await crossTab(H, C, { ...runs.h, key: b.name })).ms));
      s.i.push(rate(n, (await crossTab(P, C, { ...runs.i, key: b.name })).ms));
      if (tag) {
        await b.leave();
        continue;
      }
      lat.bc.push((await crossTab(P, C, { ...runs.latency, via: 'bc', key: meshName('bc') })).latencies);
      lat.t.push((await crossTab(P, C, { ...runs.h, ...runs.latency, key: b.name })).latencies);
      lat.d.push((await crossTab(P, C, { ...runs.i, ...runs.latency, key: b.name })).latencies);
      // (o): the host publishes, then P; the queues keep what they take.
      await H.run('bindQueues', { exchange: runs.o.exchange, type: 'topic', patterns: topic.patterns });
      const before = await H.run('published');
      for (const [from, samples] of [
        [H, extra.oHost],
        [P, extra.o],
      ]) {
        const sent = await from.run('send', { ...runs.o, key: b.name });
        samples.push(rate(n, sent.t1 - sent.t0));
      }
      extra.matches.push(((await H.run('published')) - before) / (2 * n));
      await b.leave();
      const b5 = await joinBroker(H, P, C, L1, L2);
      const fan = await crossTab(P, [C, L1, L2], { ...runs.n, key: b5.name });
      extra.nEach.push(rate(n, fan.ms));
      extra.nTotal.push(rate(3 * n, fan.ms));
      await b5.leave();
    }
    const k = size1k(tag);
    const goal = (times, base) => (tag ? {} : { goal: `≥ ${times}× (${base})`, pass: (r) => r.ratio >= times });
    row(`g${k}`, `(g)  BroadcastChannel P → C, 1 msg/post${tag}`, 'msg/s', s.g, { ratio: 1, base: 'g' });
    vs(row(`g-batch${k}`, `(g') BroadcastChannel P → C, 100 msgs/post${tag}`, 'msg/s', s.gBatch), `g${k}`);
    vs(row(`g-port${k}`, `(g-port) MessagePort P → C, 1 msg/post${tag}`, 'msg/s', s.gPort), `g${k}`);
    vs(row(`g-port-batch${k}`, `(g-port') MessagePort P → C, 100 msgs/post${tag}`, 'msg/s', s.gPortBatch), `g${k}`);
    const h = vs(row(`h${k}`, `(h)  tabbit transient P → H → C, window ${config.window}${tag}`, 'msg/s', s.h, goal(4, 'g')), `g${k}`);
    vs(row(`h-wide${k}`, `(h) with window ${5 * config.window}${tag}`, 'msg/s', s.hWide), `g${k}`);
    vs(row(`h-host${k}`, `(h') tabbit transient P = H → C, window ${config.window}${tag}`, 'msg/s', s.hHost, goal(4, 'g')), `g${k}`);
    const i = vs(row(`i${k}`, `(i)  tabbit persistent P → H → C, confirms, window ${config.window}${tag}`, 'msg/s', s.i, goal(5, 'a')), `a${k}`);
    const peer = `broadcast-channel ${peerVersion}`;
    vs(row(`l${k}`, `(l)  ${peer} 'native' P → C${tag}`, 'msg/s', s.l), `g${k}`);
    row(`m${k}`, `(m)  ${peer} 'idb' P → C, ${config.peerN.toLocaleString('en')} msgs${tag}`, 'msg/s', s.m, {
      ratio: 1,
      base: 'm',
      note: tag ? undefined : "the package writes a transaction per message (durability 'relaxed'), one at a time; the receiver reads every 150 ms",
    });
    vs(row(`h-vs-l${k}`, `(h)  tabbit transient, as above, against (l)${tag}`, 'msg/s', h.samples, { repeats: h.id }), `l${k}`);
    vs(row(`i-vs-m${k}`, `(i)  tabbit persistent, as above, against (m)${tag}`, 'msg/s', i.samples, { repeats: i.id, ...goal(40, 'm') }), `m${k}`);
  }
  // (j'): rounds of (j) while L1 publishes to L2 at a fixed rate, half the median of (h).
  const load = { queue: 'load', rate: rows.find((r) => r.id === 'h').median / 2, size: 100 };
  for (let r = 0; r < config.reps; r++) {
    log(`latency under load, round ${r + 1}/${config.reps}`);
    const runs = meshRuns(100, config.n);
    const b5 = await joinBroker(H, P, C, L1, L2);
    await L2.run('startLoad', { ...load, role: 'consume' });
    await L1.run('startLoad', { ...load, role: 'publish' });
    lat.tLoad.push((await crossTab(P, C, { ...runs.h, ...runs.latency, key: b5.name })).latencies);
    lat.dLoad.push((await crossTab(P, C, { ...runs.i, ...runs.latency, key: b5.name })).latencies);
    const [sent, taken] = [await L1.run('stopLoad'), await L2.run('stopLoad')];
    extra.load.push({ sent: rate(sent.count, sent.ms), taken: rate(taken.count, taken.ms) });
    await b5.leave();
  }
  const pooled = (xs) => `${xs.flat().length} msgs: p50 ${percentile(xs.flat(), 0.5).toFixed(2)} ms, p99 ${percentile(xs.flat(), 0.99).toFixed(2)} ms`;
  const loads = extra.load.map((l) => `${[l.sent, l.taken].map((x) => Math.round(x).toLocaleString('en')).join('/')}`).join(', ');
  for (const [id, what, xs, limit] of [
    ['j', 'transient', lat.t, 1],
    ['j-load', 'transient, under load', lat.tLoad],
    ['j-durable', 'durable', lat.d, 10],
    ['j-load-durable', 'durable, under load', lat.dLoad],
  ]) {
    const loaded = id.startsWith('j-load');
    const note = loaded
      ? `all rounds' ${pooled(xs)}; background load ${Math.round(load.rate).toLocaleString('en')} msg/s, sent/consumed: ${loads}`
      : `all rounds' ${pooled(xs)}; raw BroadcastChannel P → C, the same way: ${pooled(lat.bc)}`;
    const j = loaded ? "(j')" : '(j) ';
    row(`${id}-p50`, `${j} latency P → H → C, one way, ${what}, p50`, 'ms', xs.map((x) => percentile(x, 0.5)), {
      ...(limit && { goal: `≤ ${limit} ms`, pass: (r) => r.median <= limit }),
      note,
    });
    row(`${id}-p99`, `${j} latency P → H → C, one way, ${what}, p99`, 'ms', xs.map((x) => percentile(x, 0.99)));
  }
  vs(row('n-each', '(n)  tabbit fanout P → H → 3 consumer tabs, per consumer', 'msg/s', extra.nEach), 'h');
  vs(row('n-total', '(n)  tabbit fanout P → H → 3 consumer tabs, in total', 'msg/s', extra.nTotal), 'h');
  const matched = `each key matched ${median(extra.matches).toFixed(2)} queues on average`;
  row('o-host', `(o)  tabbit topic publish, ${config.bindings.toLocaleString('en')} bindings, P = H, confirms`, 'msg/s', extra.oHost, { note: matched });
  row('o', `(o)  tabbit topic publish, ${config.bindings.toLocaleString('en')} bindings, P → H, confirms`, 'msg/s', extra.o);
  await Promise.all(meshTabs.map((t) => t.page.close()));
  } // (the part across tabs, not indented in this block)

  // (k) failover: a host tab fills a durable queue, a client tab waits; the host crashes.
  if (want('k')) {
    log(`(k) failover with ${config.reopenN} durable messages queued, ${config.reopenReps} times`);
    const waiter = await meshTab();
    const fo = { hosting: [], get: [], failover: [], fill: [], getErrors: [] };
    for (let r = 0; r < config.reopenReps; r++) {
      const host = await meshTab();
      const b = await joinBroker(host, waiter);
      const fill = await host.run('send', { ...meshRuns(100, config.reopenN).i, queue: 'q', key: b.name });
      fo.fill.push(rate(config.reopenN, fill.t1 - fill.t0));
      const { t0 } = await waiter.run('armFailover', { queue: 'q' });
      await crashPage(host.page);
      await host.page.close().catch(() => {});
      const at = await waiter.run('received');
      fo.hosting.push(at.hosting - t0);
      fo.get.push(at.get - t0);
      fo.failover.push(at.failover - t0);
      fo.getErrors.push(...at.getErrors);
      await waiter.run('leave', { drop: true });
    }
    await waiter.page.close();
    const queued = `${config.reopenN.toLocaleString('en')} durable msgs queued`;
    row('k-hosting', `(k)  failover, ${queued}: host crash → client hosts`, 'ms', fo.hosting, {
      goal: '≤ 500 ms',
      pass: (r) => r.median <= 500,
      note: `'failover' event after ${fo.failover.map((x) => x.toFixed(0)).join(', ')} ms; filled at ${fo.fill.map((x) => Math.round(x).toLocaleString('en')).join(', ')} msg/s`,
    });
    row('k-get', `(k)  failover, ${queued}: host crash → first get`, 'ms', fo.get, {
      goal: '≤ 500 ms',
      pass: (r) => r.median <= 500,
      note: fo.getErrors.length ? `gets that failed first: ${[...new Set(fo.getErrors)].join('; ')}` : undefined,
    });
  }

  // CPU profiles with function names: one (b) and one (c); the three tabs of one (h) and one (i).
  if (config.profile && want('b', 'c', 'g', 'h', 'i')) {
    log('profiling one (b), one (c), one (h) and one (i)');
    const prof = await benchPage(PROFILING_PKG);
    profile = [];
    const [pub] = await profiled([prof], () => prof.run('publish', { n: config.n, size: 100, window: config.window }));
    profile.push({ what: 'one (b) run', ...pub });
    const [drain] = await profiled([prof], () => prof.run('drain'));
    profile.push({ what: 'one (c) run', ...drain });
    await prof.run('finish');
    await prof.page.close();
    const tabs = { H: null, P: null, C: null };
    for (const t of Object.keys(tabs)) tabs[t] = await meshTab(PROFILING_PKG);
    const b = await joinBroker(tabs.H, tabs.P, tabs.C);
    const runs = meshRuns(100, config.n);
    for (const [what, opts] of [
      ['(g)', { ...runs.g, key: meshName('bc') }],
      ['(h)', { ...runs.h, key: b.name }],
      ['(i)', { ...runs.i, key: b.name }],
    ]) {
      let ms;
      const tops = await profiled(Object.values(tabs), async () => ({ ms } = await crossTab(tabs.P, tabs.C, opts)), 10);
      // How much CPU the tabs took, all told: the machine may have fewer cores than busy tabs.
      const busy = tops.map((p) => p.ms - p.idle);
      const sum = busy.reduce((a, b) => a + b, 0);
      const cpu = `tabs busy: H ${busy[0]} ms, P ${busy[1]} ms, C ${busy[2]} ms (idle excluded; the profile spans the run's setup too), ${((sum / opts.n) * 1000).toFixed(0)} µs of CPU per message`;
      profile.push({ what: `one ${what} run: ${opts.n.toLocaleString('en')} msgs in ${ms.toFixed(0)} ms`, summary: cpu });
      if (what !== '(g)') Object.keys(tabs).forEach((t, i) => profile.push({ what: `one ${what} run, tab ${t}${t === 'H' ? ' (host)' : ''}`, ...tops[i] }));
    }
    await b.leave();
  }

  // (q) The bridge: a tab's messages to a real RabbitMQ (Web-STOMP), confirmed by RabbitMQ's
  // receipts, against the page's own WebSocket doing the same, in one page, alternating.
  if (want('q0', 'q') && (await rabbitAvailable())) {
    log('(q) starting a RabbitMQ node');
    const rabbit = await startRabbit();
    try {
      const page = await benchPage(PKG, BRIDGE_WORKLOADS);
      const opts = { url: rabbit.wsUrl, n: config.bridgeN, size: 100, window: 100, pkg: PKG };
      const raw = [];
      const bridged = [];
      for (let rep = 0; rep < config.reps; rep++) {
        log(`(q) round ${rep + 1} of ${config.reps}`);
        raw.push(rate(opts.n, (await page.run('rawStomp', opts)).ms));
        bridged.push(rate(opts.n, (await page.run('bridged', opts)).ms));
      }
      row('q0', `(q0) WebSocket STOMP SEND → RabbitMQ, receipts, window 100`, 'msg/s', raw, { ratio: 1, base: 'q0' });
      vs(row('q', `(q)  tabbit persistent publish → bridge → RabbitMQ receipts, window 100`, 'msg/s', bridged), 'q0');
      await page.page.close();
      if (config.profile) {
        // The page of one (q0) and one (q) run (the bridge runs in the publishing page: it hosts).
        log('profiling one (q0) and one (q)');
        const prof = await benchPage(PROFILING_PKG, BRIDGE_WORKLOADS);
        profile ??= [];
        for (const [what, fn] of [['(q0)', 'rawStomp'], ['(q)', 'bridged']]) {
          let ms;
          const [top] = await profiled([prof], async () => ({ ms } = await prof.run(fn, opts)), 25);
          profile.push({ what: `one ${what} run: ${opts.n.toLocaleString('en')} msgs in ${ms.toFixed(0)} ms`, ...top });
        }
        await prof.page.close();
      }
    } finally {
      await rabbit.close();
    }
  } else {
    log('(q) skipped: rabbitmq-server is not installed (scripts/setup installs it)');
  }

  } // (a)–(q)

  // (r) and (s): the edge. Persistent publish with confirms through the storage adapters, in the
  // real runtimes (npm's deno and workerd), against the runtime's raw write of one message at a
  // time in the same run (bench/edge-deno.mjs, bench/edge-workerd.mjs).
  if (want('r0', 'r')) {
    try {
      const { benchDenoKv } = await import('./edge-deno.mjs');
      log('(r) Deno KV');
      const [raw, tabbit] = await benchDenoKv({ n: config.n, reps: config.reps, log });
      row('r0', `(r0) ${raw.name}`, 'msg/s', raw.samples, { ratio: 1, base: 'r0' });
      vs(row('r', `(r)  ${tabbit.name}`, 'msg/s', tabbit.samples, { goal: '≥ 5×', pass: (r) => r.ratio >= 5 }), 'r0');
    } catch (e) {
      log(`(r) skipped: ${e.message}`);
    }
  }
  if (want('s0', 's1', 's')) {
    try {
      const { benchDurableObject } = await import('./edge-workerd.mjs');
      log('(s) Durable Objects in workerd');
      const doRows = await benchDurableObject({ n: config.n, reps: config.reps });
      for (const kind of ['sql', 'kv']) {
        const of = doRows.filter((r) => r.name.startsWith(`DO ${kind}:`));
        const [raw, rawSync, tabbit, unstored] = of;
        // Rounds are interleaved: round i of tabbit against round i of the raw put.
        const perRound = tabbit.samples.map((x, i) => x / raw.samples[i]);
        const range = `${Math.min(...perRound).toFixed(2)}–${Math.max(...perRound).toFixed(2)}`;
        row(`s0-${kind}`, `(s0) ${raw.name}`, 'msg/s', raw.samples, { ratio: 1, base: `s0-${kind}` });
        vs(row(`s1-${kind}`, `(s1) ${rawSync.name}`, 'msg/s', rawSync.samples), `s0-${kind}`);
        vs(row(`s-${kind}`, `(s)  ${tabbit.name}`, 'msg/s', tabbit.samples, {
          goal: '≥ 5×',
          pass: (r) => r.ratio >= 5,
          note:
            `per round ${range}× the raw put; ${tabbit.ratioDurable.toFixed(1)}× the put + sync() per message (a put is durable only after sync); ` +
            `with an adapter that stores nothing ${Math.round(unstored.value).toLocaleString('en')} msg/s, ${unstored.ratio.toFixed(2)}× (the broker's own cost)`,
        }), `s0-${kind}`);
      }
    } catch (e) {
      log(`(s) skipped: ${e.message}`);
    }
  }

  // (t) Web-STOMP round trips to the edge brokers against RabbitMQ's Web-STOMP, one client.
  if (want('t')) try {
    const { benchEdgeStomp } = await import('./edge-stomp.mjs');
    const stomp = await benchEdgeStomp({ n: config.stompN, reps: config.reps, log });
    for (const r of stomp) {
      const consume = r.id.endsWith('-consume') ? "'" : '';
      const base = `t0${consume}`;
      if (!r.base) {
        row(base, `(t0${consume}) ${r.name}`, 'msg/s', r.samples, { ratio: 1, base });
        continue;
      }
      const range = `${Math.min(...r.ratios).toFixed(2)}–${Math.max(...r.ratios).toFixed(2)}`;
      vs(row(`t${consume}-${r.id}`, `(t${consume})${consume ? ' ' : '  '}${r.name}`, 'msg/s', r.samples, { note: `per round ${range}× RabbitMQ's` }), base);
    }
  } catch (e) {
    log(`(t) skipped: ${e.message}`);
  }

  core.figures.forEach(({ label, value, unit }, x) => {
    const goal = /single acks/.test(label) ? 2e6 : /router only/.test(label) ? 1e6 : 0; // the core's goals (README)
    const pass = goal ? { goal: `≥ ${goal / 1e6} M`, pass: (r) => r.median >= goal } : {};
    row(`p-${x + 1}`, `(p)  native core: ${label.replaceAll('->', '→')}`, unit, [value], pass);
  });

  machine = {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model,
    chromium: browser?.version() ?? main.info.userAgent,
    node: process.version,
    tabbit: main.info.version,
    broadcastChannel: peerVersion,
    core: core.header,
  };
} finally {
  await close();
  await server.close();
  await removeDir(userDataDir);
  await removeDir(join(ROOT, PKG_DIR));
}

/**
 * Top functions by self time of a CDP profile: {ms, idle, top: [{fn, ms, pct, caller}]}, with the
 * caller that most of that time came through; '(idle)' is the page waiting (for IndexedDB, for
 * another tab); ms is the profile's length, idle the time in '(idle)'.
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
  const functions = [...self]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, top)
    .map(([fn, { ms, callers }]) => ({
      fn,
      ms: Math.round(ms),
      pct: Math.round((ms / total) * 1000) / 10,
      caller: [...callers].sort((a, b) => b[1] - a[1])[0][0],
    }));
  return { ms: Math.round(total), idle: Math.round(self.get('(idle)')?.ms ?? 0), top: functions };
}

// Report.
const date = new Date().toISOString();
for (const r of rows) if (r.pass) r.pass = r.pass(r) ? 'PASS' : 'MISS';
const fmt = (r) => {
  const digits = r.unit === 'MB' ? 0 : r.unit === 'ms' && r.median < 10 ? 2 : 1;
  const v = r.unit.endsWith('/s') ? Math.round(r.median).toLocaleString('en') : r.median.toFixed(digits);
  return `${v} ${r.unit}`;
};
const number = (r, v) => fmt({ ...r, median: v }).split(' ')[0];
const spread = (r) =>
  r.samples.length > 1 ? `${r.samples.length}: ${number(r, Math.min(...r.samples))}–${number(r, Math.max(...r.samples))}` : '';
console.log(`\ntabbit bench, ${date}: ${machine.nproc} cores (${machine.cpu}), Chromium ${machine.chromium}, node ${machine.node}, tabbit ${machine.tabbit}`);
console.log(`medians of ${config.reps} rounds (100 B: ${config.n.toLocaleString('en')} msgs, 1 KB: ${config.nKb.toLocaleString('en')} msgs); IndexedDB on disk\n`);
const table = [['', 'median', 'vs base', 'goal', '', 'runs: min–max']].concat(
  rows.map((r) => [r.label, fmt(r), r.ratio != null ? `${r.ratio.toFixed(2)}× (${r.base})` : '', r.goal ?? '', r.pass ?? '', spread(r)]),
);
const widths = table[0].map((_, i) => Math.max(...table.map((t) => t[i].length)));
for (const t of table) console.log(t.map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd());
for (const r of rows) if (r.note) console.log(`  ${r.id}: ${r.note}`);
if (profile) {
  for (const { what, summary, ms, idle, top } of profile) {
    if (summary) {
      console.log(`\nCPU profile, ${what}: ${summary}`);
      continue;
    }
    console.log(`\nCPU profile, ${what}: ${ms} ms, of which idle ${idle} ms; top self time:`);
    for (const f of top) console.log(`  ${String(f.ms).padStart(6)} ms ${String(f.pct).padStart(5)}%  ${f.fn}${f.caller ? `  ← ${f.caller}` : ''}`);
  }
}
const errors = pageErrors.flat();
if (errors.length) console.log(`\npage errors:\n  ${errors.join('\n  ')}`);
const out = join(ROOT, 'bench', 'results.json');
await writeFile(out, JSON.stringify({ date, machine, config, rows, profile, errors }, null, 2) + '\n');
console.log(`\nwritten: ${out}`);
process.exit(errors.length ? 1 : 0);
