// How Node runs tests/runtimes/deno/stomp-server.js (serveStomp() on Deno KV) for
// tests/node/edge-stomp*.test.mjs: a temporary directory for the KV, a free port kept across
// restarts, and deno allowed to listen on and connect to 127.0.0.1 only. Node standard library only.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PKG, ROOT, RUNTIMES, freePort, lastJson, needBin, needPackage, removeDir, start, tempDir } from '../helpers.mjs';
import { adapterModule, denoKvRunner } from './kv-run.mjs';

const SERVER = join(RUNTIMES, 'deno', 'stomp-server.js');

/**
 * For test `t`: `serve(...queues)` starts the server (again, on the same port and KV) and resolves
 * once it listens, with its process `p` and the message counts of `queues` it printed; `port`.
 */
export async function stompServer(t) {
  await needPackage();
  if (!existsSync(join(PKG, 'deno.js'))) throw new Error('pkg/deno.js is missing: rebuild the package with scripts/build-pkg');
  const bin = await needBin('deno');
  const dir = await tempDir('tabbit-edge-stomp-');
  t.after(() => removeDir(dir));
  const runner = await denoKvRunner(dir, adapterModule().path, { net: '127.0.0.1' });
  const port = await freePort();
  const serve = async (...queues) => {
    const p = start(bin, runner.args(SERVER, dir, String(port), ...queues), { t, cwd: ROOT, env: runner.env, timeoutMs: 100_000 });
    let exited = false;
    p.exited.then(() => (exited = true));
    while (!p.stdout().includes('"listening"')) {
      if (exited) throw new Error(`deno exited before listening:\n${p.output().slice(-4000)}`);
      await new Promise((ok) => setTimeout(ok, 20));
    }
    return { p, queues: lastJson(p.stdout()).queues };
  };
  return { serve, port, url: `ws://127.0.0.1:${port}/ws` };
}
