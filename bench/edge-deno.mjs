// tabbit in Deno on Deno KV against the raw per-message write, in the real runtime (the npm
// package `deno` in tests/node_modules): each round is a deno subprocess (bench/edge-deno-kv.js)
// on fresh KV files in a temporary directory that times, in one process,
//   raw     one kv.set per 100-byte message, each awaited before the next (rawN messages);
//   tabbit  persistent publish of n 100-byte messages with confirms (window 1,000) through
//           denoKvStorage ('tabbit/storage/deno-kv'), into a durable queue.
// Rounds alternate which side goes first. The rows' values are medians over the rounds; ratio is
// the tabbit median over the raw median (issue 18's goal: ≥ 5×).
//
//   import { benchDenoKv } from './edge-deno.mjs';
//   const rows = await benchDenoKv({ n: 20_000, reps: 5 }); // [{name, value, unit, ratio, samples, min, max}]
//
//   node bench/edge-deno.mjs [--n N] [--raw-n N] [--reps N]   (prints the rows)
// Uses pkg/ (scripts/build-pkg); the adapter is pkg/storage/deno-kv.js if the package ships it,
// else js/storage/deno-kv.js.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, lastJson, needBin, needPackage, removeDir, run, tempDir } from '../tests/runtimes/helpers.mjs';
import { adapterModule, denoKvRunner } from '../tests/runtimes/deno/kv-run.mjs';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Runs `reps` rounds and returns the rows. `rawN` (default min(n, 2,000)) bounds the raw side,
 * which writes a few hundred messages a second: its rate, not its count, is compared.
 */
export async function benchDenoKv({ n = 20_000, rawN = Math.min(n, 2_000), reps = 5, log = () => {} } = {}) {
  await needPackage();
  const deno = await needBin('deno');
  const adapter = adapterModule().path;
  const samples = { raw: [], tabbit: [] };
  for (let rep = 0; rep < reps; rep++) {
    const dir = await tempDir('tabbit-bench-deno-');
    try {
      const order = rep % 2 ? 'tabbit-first' : 'raw-first';
      const { args, env } = await denoKvRunner(dir, adapter);
      const program = args(join(ROOT, 'bench', 'edge-deno-kv.js'), dir, String(n), String(rawN), order);
      const out = lastJson(await run(deno, program, { cwd: ROOT, env, timeoutMs: 600_000 }));
      if (out.error) throw new Error(`bench round ${rep + 1}: ${out.error}`);
      samples.raw.push(out.raw);
      samples.tabbit.push(out.tabbit);
      log(`round ${rep + 1}/${reps} (${order}): raw ${out.raw.toFixed(0)} msg/s, tabbit ${out.tabbit.toFixed(0)} msg/s`);
    } finally {
      await removeDir(dir);
    }
  }
  const row = (name, xs, ratio) => ({ name, value: median(xs), unit: 'msg/s', ratio, samples: xs, min: Math.min(...xs), max: Math.max(...xs) });
  const raw = row(`Deno KV raw: 1 kv.set/msg, awaited one at a time (${rawN} × 100 B)`, samples.raw, 1);
  const ratio = median(samples.tabbit) / raw.value;
  return [raw, row(`Deno KV tabbit: persistent publish, confirms, window 1,000 (${n} × 100 B)`, samples.tabbit, ratio)];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const known = ['--n', '--raw-n', '--reps'];
  const n = option('--n', 20_000);
  const reps = option('--reps', 5);
  if (args.some((a) => a.startsWith('--') && !known.includes(a)) || !(n >= 1) || !(reps >= 1)) {
    console.log('usage: node bench/edge-deno.mjs [--n N] [--raw-n N] [--reps N]');
    process.exit(2);
  }
  const rows = await benchDenoKv({ n, rawN: option('--raw-n', Math.min(n, 2_000)), reps, log: (m) => process.stderr.write(`bench: ${m}\n`) });
  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  for (const r of rows) {
    console.log(`${r.name.padEnd(72)} ${fmt(r.value).padStart(9)} ${r.unit}  [${fmt(r.min)} – ${fmt(r.max)}]  ${r.ratio.toFixed(1)}× raw`);
  }
}
