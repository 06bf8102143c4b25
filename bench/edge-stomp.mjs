// Web-STOMP round trips to tabbit's edge brokers against RabbitMQ's own Web-STOMP plugin, all on
// loopback in one run, with one client: the npm package @stomp/stompjs over `ws`
// (tests/runtimes/stomp-client.mjs), the same message count and size for every server.
//   receipt   one client SENDs `n` persistent messages of `size` bytes to a durable queue, each with
//             a receipt, at most `window` without their RECEIPT (a RECEIPT of a persistent SEND is
//             the publisher confirm: the message is stored);
//   consume   the same, while a second client, subscribed with client-individual acks and
//             prefetch-count `window`, acks each MESSAGE: timed until the consumer has all `n`.
// Servers:
//   rabbitmq  rabbitmq-server with rabbitmq_web_stomp (tests/node/rabbitmq.mjs starts a private node);
//   deno      tabbit's serveStomp() ('tabbit/deno') on Deno KV (tests/runtimes/deno/stomp-server.js);
//   workerd   tabbit's TabbitBroker Durable Object with `stompPath` (SQLite-backed, on local disk,
//             hibernatable WebSockets; tests/runtimes/workerd/do-stomp-worker.js).
// Rounds are interleaved (every server and workload once per round, a fresh queue each; a first
// round warms up and is not counted). Figures: msg/s, medians of `reps` rounds; each tabbit row's
// ratio to RabbitMQ's row of the same workload, of the medians, and per round (min–max).
//
//   node bench/edge-stomp.mjs [--n N] [--reps R] [--size BYTES] [--window W]
//
//   import { benchEdgeStomp } from './edge-stomp.mjs';
//   const rows = await benchEdgeStomp({ n: 5000, reps: 5, log });  // [{id, name, samples, base, ratios}]
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, needBin, needPackage, removeDir, tempDir } from '../tests/runtimes/helpers.mjs';
import { needAdapterBuild, writeDurableObjectConfig } from '../tests/runtimes/workerd/do-config.mjs';
import { serveWorkerd } from '../tests/runtimes/workerd/serve.mjs';
import { stompServer } from '../tests/runtimes/deno/stomp-run.mjs';
import { rabbitAvailable, startRabbit } from '../tests/node/rabbitmq.mjs';
import { stompClient } from '../tests/runtimes/stomp-client.mjs';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const SERVERS = [
  { id: 'rabbitmq', label: "RabbitMQ's Web-STOMP" },
  { id: 'deno', label: 'tabbit serveStomp() in Deno (KV)' },
  { id: 'workerd', label: 'tabbit TabbitBroker in workerd (SQLite DO)' },
];
const WORKLOADS = [
  { id: 'receipt', label: 'persistent SEND → RECEIPT' },
  { id: 'consume', label: 'persistent SEND → MESSAGE, consumer acks' },
];

let queues = 0;

/** Sends `n` persistent messages to `destination` with receipts, at most `window` unanswered. */
function sendAll(client, destination, n, body, window) {
  const tag = `b${++queues}-`;
  return new Promise((ok) => {
    let sent = 0;
    let done = 0;
    const more = () => {
      while (sent < n && sent - done < window) {
        const receipt = `${tag}${sent++}`;
        client.watchForReceipt(receipt, () => (++done === n ? ok() : more()));
        client.publish({ destination, body, headers: { persistent: 'true', receipt } });
      }
    };
    more();
  });
}

/** One run of `workload` against the server at `url` with credentials `login`: ms. */
async function run(workload, { url, login, passcode }, { n, size, window }) {
  const body = 'x'.repeat(size);
  const destination = `/queue/bench-${workload}-${Date.now()}-${++queues}`;
  const pub = stompClient(url, { login, passcode });
  const clients = [pub];
  try {
    await pub.connected;
    let consumed = Promise.resolve();
    if (workload === 'consume') {
      const sub = stompClient(url, { login, passcode });
      clients.push(sub);
      await sub.connected;
      let got = 0;
      consumed = new Promise((ok) =>
        sub.client.subscribe(destination, (m) => (m.ack(), ++got === n && ok()), { ack: 'client-individual', 'prefetch-count': String(window) }),
      );
    }
    const t0 = performance.now();
    await Promise.all([sendAll(pub.client, destination, n, body, window), consumed]);
    return performance.now() - t0;
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
}

/** The three servers, started: [{id, url, login, passcode}], and `close()`. */
async function startServers(log) {
  const cleanups = [];
  const t = { after: (f) => cleanups.push(f) };
  const close = async () => {
    for (const f of cleanups.reverse()) await f();
  };
  try {
    if (!(await rabbitAvailable())) throw new Error('rabbitmq-server is not installed (scripts/setup installs it)');
    log('(t) starting a RabbitMQ node');
    const rabbit = await startRabbit();
    cleanups.push(() => rabbit.close());
    log('(t) starting deno serveStomp()');
    await needPackage();
    const deno = await stompServer(t);
    await deno.serve();
    log('(t) starting workerd with TabbitBroker');
    await needAdapterBuild();
    const workerd = await needBin('workerd');
    const dir = await tempDir('tabbit-bench-stomp-');
    cleanups.push(() => removeDir(dir));
    const disk = join(dir, 'disk');
    await mkdir(disk);
    const worker = join(ROOT, 'tests/runtimes/workerd/do-stomp-worker.js');
    const classes = [{ className: 'Broker', binding: 'BROKER', sql: true }];
    const write = (file, address) =>
      writeDurableObjectConfig(file, { disk, address, worker, classes, preventEviction: false, compatibilityFlags: ['unsafe_module'] });
    const { url } = await serveWorkerd(t, workerd, dir, write, { timeoutMs: 3_600_000, args: ['--experimental'] });
    const servers = {
      rabbitmq: { url: rabbit.wsUrl, login: 'guest', passcode: 'guest' },
      deno: { url: deno.url, login: 'alice', passcode: 'secret' },
      workerd: { url: `${url.replace('http', 'ws')}/ws`, login: 'alice', passcode: 'secret' },
    };
    return { servers, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Runs every workload against every server `reps` times (after one round not counted), `n`
 * messages of `size` bytes each, window `window`.
 * @returns {Promise<{id: string, name: string, samples: number[], base?: string, ratios?: number[]}[]>}
 */
export async function benchEdgeStomp({ n = 5000, reps = 5, size = 100, window = 100, log = () => {} } = {}) {
  const { servers, close } = await startServers(log);
  try {
    const ms = {};
    for (let round = 0; round <= reps; round++) {
      log(`(t) ${round ? `round ${round} of ${reps}` : 'warm-up round'}`);
      for (const w of WORKLOADS) {
        for (const s of SERVERS) {
          const took = await run(w.id, servers[s.id], { n, size, window });
          if (round) (ms[`${s.id}-${w.id}`] ??= []).push(took);
        }
      }
    }
    const rows = [];
    for (const w of WORKLOADS) {
      for (const s of SERVERS) {
        const samples = ms[`${s.id}-${w.id}`].map((t) => (n / t) * 1000);
        const r = { id: `${s.id}-${w.id}`, name: `${s.label}: ${w.label}, window ${window}, ${n.toLocaleString('en')} × ${size} B`, samples };
        if (s.id !== 'rabbitmq') {
          r.base = `rabbitmq-${w.id}`;
          // Round by round: the same round's RabbitMQ figure.
          r.ratios = samples.map((x, i) => x / ((n / ms[r.base][i]) * 1000));
        }
        rows.push(r);
      }
    }
    return rows;
  } finally {
    await close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const rows = await benchEdgeStomp({
    n: opt('--n', 5000),
    reps: opt('--reps', 5),
    size: opt('--size', 100),
    window: opt('--window', 100),
    log: (m) => process.stderr.write(`${m}\n`),
  });
  const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
  for (const r of rows) {
    const m = median(r.samples);
    const range = `${Math.round(Math.min(...r.samples))}–${Math.round(Math.max(...r.samples))}`;
    const vs = r.base
      ? `  ${(m / median(byId[r.base].samples)).toFixed(2)}× RabbitMQ (per round ${Math.min(...r.ratios).toFixed(2)}–${Math.max(...r.ratios).toFixed(2)})`
      : '';
    console.log(`${r.name}: ${Math.round(m).toLocaleString('en')} msg/s [${range}]${vs}`);
  }
  process.exit(0);
}
