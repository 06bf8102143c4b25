// The npm package (pkg/, as scripts/build-pkg builds it) in Cloudflare's workerd (npm package
// `workerd`, pinned in tests/package.json): `workerd serve` runs tests/runtimes/workerd/worker.js,
// which imports pkg/index.js and the wasm as a module (passed to connect() as `wasm`), on
// 127.0.0.1 and a free port; GET /scenario runs the shared scenario (tests/runtimes/scenario.mjs)
// on memory storage and answers JSON. Two requests: the wasm loaded by the first serves the second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needBin, needPackage, removeDir, tempDir } from '../runtimes/helpers.mjs';
import { EXPECTED } from '../runtimes/scenario.mjs';
import { writeWorkerdConfig } from '../runtimes/workerd/config.mjs';
import { serveWorkerd } from '../runtimes/workerd/serve.mjs';

test('runtime workerd: a worker publishes and consumes through the package', { timeout: 60_000 }, async (t) => {
  await needPackage();
  const workerd = await needBin('workerd');
  const dir = await tempDir('tabbit-workerd-');
  t.after(() => removeDir(dir));
  const served = await serveWorkerd(t, workerd, dir, (file, address) => writeWorkerdConfig(file, { address }));
  const { proc } = served;
  const url = `${served.url}/`;

  for (const request of ['first', 'second']) {
    const response = await fetch(url + 'scenario', { signal: AbortSignal.timeout(20_000) });
    const body = await response.text();
    let out;
    try {
      out = JSON.parse(body);
    } catch {
      assert.fail(`${request} request: not JSON (HTTP ${response.status}): ${body.slice(0, 2000)}\n${proc.output().slice(-2000)}`);
    }
    assert.equal(out.error, undefined, `${request} request: ${out.error}`);
    assert.equal(response.status, 200);
    assert.equal(out.runtime, 'workerd');
    assert.equal(out.wasmIsModule, true, 'the wasm module binding is a WebAssembly.Module');
    assert.deepEqual(out.result, { storage: 'memory', ...EXPECTED }, `${request} request`);
  }
  t.diagnostic(`workerd served ${url}`);
  await proc.kill();
  assert.doesNotMatch(proc.output(), /uncaught|error:/i, 'workerd logged an error');
});
