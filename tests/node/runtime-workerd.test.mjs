// The npm package (pkg/, as scripts/build-pkg builds it) in Cloudflare's workerd (npm package
// `workerd`, pinned in tests/package.json): `workerd serve` runs tests/runtimes/workerd/worker.js,
// which imports pkg/index.js and the wasm as a module (passed to connect() as `wasm`), on
// 127.0.0.1 and a free port; GET /scenario runs the shared scenario (tests/runtimes/scenario.mjs)
// on memory storage and answers JSON. Two requests: the wasm loaded by the first serves the second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { RUNTIMES, freePort, needBin, needPackage, removeDir, start, tempDir } from '../runtimes/helpers.mjs';
import { EXPECTED } from '../runtimes/scenario.mjs';
import { writeWorkerdConfig } from '../runtimes/workerd/config.mjs';

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Starts workerd on a free port; tries another port if the one picked was taken meanwhile. */
async function serveWorker(t, workerd, dir) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = join(dir, `tabbit-${port}.capnp`);
    await writeWorkerdConfig(config, { address: `127.0.0.1:${port}` });
    const proc = start(workerd, ['serve', '--verbose', config], { t, timeoutMs: 50_000, cwd: dir });
    const url = `http://127.0.0.1:${port}/`;
    const deadline = Date.now() + 20_000;
    let exited = false;
    proc.exited.then(() => (exited = true));
    while (!exited && Date.now() < deadline) {
      const up = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.text().then(() => true),
        () => false,
      );
      if (up) return { url, proc };
      await sleep(100);
    }
    await proc.kill();
    if (attempt < 3 && /address already in use/i.test(proc.output())) continue;
    throw new Error(`workerd did not serve ${url} within 20 s:\n${proc.output().slice(-4000)}`);
  }
}

test('runtime workerd: a worker publishes and consumes through the package', { timeout: 60_000 }, async (t) => {
  await needPackage();
  const workerd = await needBin('workerd');
  const dir = await tempDir('tabbit-workerd-');
  t.after(() => removeDir(dir));
  const { url, proc } = await serveWorker(t, workerd, dir);

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
