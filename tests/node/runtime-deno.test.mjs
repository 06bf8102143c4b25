// The npm package (pkg/, as scripts/build-pkg builds it) in Deno (npm package `deno`, pinned in
// tests/package.json): tests/runtimes/deno/main.js imports ../../../pkg/index.js, whose connect()
// fetches the wasm from a file: URL, and runs the shared scenario (tests/runtimes/scenario.mjs)
// on memory storage, then closes and reopens a connection in one turn, three times. Deno may read pkg/ and nothing else; its cache goes to a temp directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PKG, ROOT, RUNTIMES, lastJson, needBin, needPackage, removeDir, run, tempDir } from '../runtimes/helpers.mjs';
import { EXPECTED } from '../runtimes/scenario.mjs';

test('runtime deno: the package publishes and consumes', { timeout: 60_000 }, async (t) => {
  await needPackage();
  const deno = await needBin('deno');
  const denoDir = await tempDir('tabbit-deno-');
  t.after(() => removeDir(denoDir));
  const args = ['run', '--no-prompt', '--no-config', '--no-npm', `--allow-read=${PKG}`, join(RUNTIMES, 'deno', 'main.js')];
  const stdout = await run(deno, args, {
    t,
    cwd: ROOT,
    timeoutMs: 45_000,
    env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
  });
  const out = lastJson(stdout);
  assert.equal(out.error, undefined, out.error);
  assert.equal(out.runtime, 'deno');
  assert.match(out.deno, /^\d+\.\d+\.\d+/);
  t.diagnostic(`deno ${out.deno}, tabbit ${out.version}`);
  assert.deepEqual(out.result, { storage: 'memory', ...EXPECTED });
  assert.deepEqual(out.reconnected, ['m0', 'm1', 'm2'], 'a connection opened as the previous one closes works');
});
