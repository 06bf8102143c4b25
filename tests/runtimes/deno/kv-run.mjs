// How Node runs a Deno program on Deno KV with the package (tests/node/edge-deno.test.mjs,
// bench/edge-deno.mjs): an import map in the program's temporary directory maps 'tabbit' to
// pkg/index.js and 'tabbit/storage/deno-kv' to the adapter; deno may read pkg/ (connect() reads
// the wasm beside index.js), the adapter and the directory, write only the directory, and keeps
// its cache there. Node standard library only.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PKG, ROOT } from '../helpers.mjs';

/** pkg/storage/deno-kv.js when the package exports it (scripts/build-pkg), else the source in js/. */
export function adapterModule() {
  const manifest = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8'));
  const shipped = manifest.exports?.['./storage/deno-kv']?.default;
  return { path: shipped ? join(PKG, shipped) : join(ROOT, 'js', 'storage', 'deno-kv.js'), shipped: !!shipped };
}

/**
 * Writes the import map into `dir` ('tabbit/deno' is pkg/deno.js); resolves with
 * `args(program, ...rest)` (deno's arguments to run `program`, a path) and the `env` to run it
 * with. `net`: what deno may connect to and listen on (--allow-net), e.g. '127.0.0.1'.
 */
export async function denoKvRunner(dir, adapter = adapterModule().path, { net } = {}) {
  const map = join(dir, 'import-map.json');
  const imports = { tabbit: join(PKG, 'index.js'), 'tabbit/storage/deno-kv': adapter, 'tabbit/deno': join(PKG, 'deno.js') };
  await writeFile(map, JSON.stringify({ imports }));
  const reads = [...new Set([PKG, dirname(adapter), dir])];
  const args = (program, ...rest) => [
    'run',
    '--no-prompt',
    '--no-config',
    '--no-npm',
    '--unstable-kv',
    `--import-map=${map}`,
    `--allow-read=${reads.join(',')}`,
    `--allow-write=${dir}`,
    ...(net ? [`--allow-net=${net}`] : []),
    program,
    ...rest,
  ];
  const env = { ...process.env, DENO_DIR: join(dir, 'deno-cache'), DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
  return { args, env };
}
