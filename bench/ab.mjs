// A/B of package builds in one headless Chromium, rounds interleaved (the variants' order rotates
// each round), for figures of several builds taken in the same minutes of a noisy machine:
//   node bench/ab.mjs [--reps 7] [--n 20000] [--kb] [--no-mesh] [--no-single] [--bystander] dir...
// Each dir is a package under target/ab/ (scripts/build-pkg, then `cp -a pkg target/ab/NAME`).
// Rows, as scripts/bench's (bench/workloads.js, bench/mesh-workloads.js): (a) IndexedDB baseline,
// (b) publish + confirms, (c) get + ack + flush, (g) BroadcastChannel P → C, (h') P = H → C and
// (h) P → H → C; ratios per round to that round's baseline; "µs" rows: CPU time of the tab's main
// thread per message (CDP Performance ThreadTime: robust to other processes' load, unlike rates);
// "÷" rows: each round's rate over the first variant's in the same round. Median [min–max].
// --bystander: a fourth tab L joins the broker during (h) and does nothing: "h L µs" is what a tab
// pays per message for the posts between other tabs that BroadcastChannel hands it too.
import { BLANK, launchBrowser, openPage, removeDir, startServer, tempDir } from '../tests/node/browser.mjs';

const args = process.argv.slice(2);
const opt = (name, d) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const flag = (n) => args.includes(n);
const reps = opt('--reps', 5);
const n = opt('--n', 5000);
const size = flag('--kb') ? 1024 : 100;
const variants = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && ['--reps', '--n'].includes(args[i - 1])));
const server = await startServer();
const userDataDir = await tempDir('tabbit-ab-');
const { context, close } = await launchBrowser({ userDataDir });
const page = async (v, module) => {
  const { page, errors } = await openPage(context, server.url + BLANK);
  const run = (fn, o) => page.evaluate(async ([m, fn, o]) => (await import(m))[fn](o), [module, fn, o]);
  await run('load', `/target/ab/${v}/index.js`);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable', { timeDomain: 'threadTicks' });
  // CPU seconds of the page's main thread so far.
  const cpu = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'ThreadTime').value;
  return { page, run, errors, cpu };
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rate = (ms) => (n / ms) * 1000;
const res = {}; // variant -> row -> [samples]
const push = (v, r, x) => (((res[v] ??= {})[r] ??= []).push(x));
const tabs = {};
for (const v of variants) {
  tabs[v] = { main: await page(v, '/bench/workloads.js') };
  if (!flag('--no-mesh')) for (const t of ['H', 'P', 'C', ...(flag('--bystander') ? ['L'] : [])]) tabs[v][t] = await page(v, '/bench/mesh-workloads.js');
}
let brokers = 0;
async function crossTab(from, to, opts) {
  await to.run('listen', opts);
  const sent = await from.run('send', { ...opts, receivers: 1 });
  const got = await to.run('received');
  if (got.got !== opts.n) throw new Error(`received ${got.got}`);
  return Math.max(sent.t1, got.t1) - sent.t0;
}
try {
  for (let r = 0; r < reps; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length]);
    process.stderr.write(`round ${r + 1}/${reps}: ${order.join(' ')}\n`);
    for (const v of order) {
      const { main, H, P, C, L } = tabs[v];
      if (!flag('--no-single')) {
        const a = rate((await main.run('idbWrite', { n, size })).ms);
        let t0 = await main.cpu();
        const b = rate((await main.run('publish', { n, size, window: 1000 })).ms);
        let t1 = await main.cpu();
        push(v, 'b µs', ((t1 - t0) * 1e6) / n);
        const d = await main.run('drain');
        t0 = await main.cpu();
        push(v, 'c µs', ((t0 - t1) * 1e6) / n);
        if (d.got !== n) throw new Error(`drain got ${d.got}`);
        const c = rate(d.ms);
        await main.run('finish');
        push(v, 'a', a), push(v, 'b', b), push(v, 'c', c), push(v, 'b/a', b / a), push(v, 'c/a', c / a);
      }
      if (!flag('--no-mesh')) {
        const name = `ab-${Date.now()}-${++brokers}`;
        const g = rate(await crossTab(P, C, { via: 'bc', n, size, key: `${name}-bc` }));
        await H.run('join', { name });
        await P.run('join', { name });
        await C.run('join', { name });
        await L?.run('join', { name });
        const h = { via: 'tabbit', queue: 't', n, size, window: 1000, every: 500, key: name };
        const cpus = async () => Promise.all([H.cpu(), P.cpu(), C.cpu(), L?.cpu() ?? 0]);
        let c0 = await cpus();
        const hh = rate(await crossTab(H, C, h));
        let c1 = await cpus();
        push(v, "h' H µs", ((c1[0] - c0[0]) * 1e6) / n);
        push(v, "h' C µs", ((c1[2] - c0[2]) * 1e6) / n);
        const hp = rate(await crossTab(P, C, h));
        c0 = await cpus();
        push(v, 'h H µs', ((c0[0] - c1[0]) * 1e6) / n);
        push(v, 'h P µs', ((c0[1] - c1[1]) * 1e6) / n);
        push(v, 'h C µs', ((c0[2] - c1[2]) * 1e6) / n);
        if (L) push(v, 'h L µs', ((c0[3] - c1[3]) * 1e6) / n);
        await L?.run('leave');
        await C.run('leave');
        await P.run('leave');
        await H.run('leave', { drop: true });
        push(v, 'g', g), push(v, "h'", hh), push(v, 'h', hp), push(v, "h'/g", hh / g), push(v, 'h/g', hp / g);
      }
    }
  }
} finally {
  await close();
  await server.close();
  await removeDir(userDataDir);
}
const rows = Object.keys(res[variants[0]]);
console.log(`${size} B, n ${n}, ${reps} rounds: median [min–max]`);
console.log(['row'.padEnd(9), ...variants.map((v) => v.padEnd(28))].join(''));
for (const r of rows) {
  const f = (x) => (x > 100 ? Math.round(x).toString() : x.toFixed(2));
  console.log([r.padEnd(9), ...variants.map((v) => `${f(median(res[v][r]))} [${f(Math.min(...res[v][r]))}–${f(Math.max(...res[v][r]))}]`.padEnd(28))].join(''));
}
// Paired: each round's figure over the first variant's of the same round.
for (const r of ['b', 'c', "h'", 'h']) {
  if (!res[variants[0]][r]) continue;
  const f = (x) => x.toFixed(2);
  const cells = variants.map((v) => {
    const q = res[v][r].map((x, i) => x / res[variants[0]][r][i]);
    return `${f(median(q))} [${f(Math.min(...q))}–${f(Math.max(...q))}]`.padEnd(28);
  });
  console.log([`${r}÷${variants[0]}`.padEnd(9), ...cells].join(''));
}
for (const v of variants) for (const t of Object.values(tabs[v])) if (t.errors.length) console.log(v, t.errors);
