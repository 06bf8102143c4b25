// Starts `workerd serve` on a config written for a free port on 127.0.0.1 and waits until it
// answers HTTP; shared by the workerd tests and bench/edge-workerd.mjs.
//
//   const { url, proc } = await serveWorkerd(t, workerd, dir, (file, address) => writeWorkerdConfig(file, { address }));
import { join } from 'node:path';
import { freePort, start } from '../helpers.mjs';

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/**
 * `writeConfig(file, address)` writes the config; it goes to `dir`, the process's working
 * directory. Tries another port if the one picked was taken meanwhile, unless `port` fixes it
 * (a server started again where its clients reconnect). `t` (optional) ends the process after
 * the test; `timeoutMs` bounds its life; `args`: more options of `workerd serve`.
 * @returns {Promise<{url: string, proc: ReturnType<typeof start>}>}
 */
export async function serveWorkerd(t, workerd, dir, writeConfig, { timeoutMs = 50_000, args = [], port: fixed } = {}) {
  for (let attempt = 1; ; attempt++) {
    const port = fixed ?? (await freePort());
    const config = join(dir, `tabbit-${port}.capnp`);
    await writeConfig(config, `127.0.0.1:${port}`);
    const proc = start(workerd, ['serve', '--verbose', ...args, config], { t, timeoutMs, cwd: dir });
    const url = `http://127.0.0.1:${port}`;
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
    if (attempt < 3 && fixed === undefined && /address already in use/i.test(proc.output())) continue;
    throw new Error(`workerd did not serve ${url} within 20 s:\n${proc.output().slice(-4000)}`);
  }
}

/**
 * Calls `method(...args)` on the object named `object` of broker-do.js's class `kind` ('sql' or
 * 'kv') through its worker at `url` (POST /<kind>/<object>/<method>, a JSON array of arguments),
 * and resolves with the result; rejects with the error the worker answers.
 */
export async function callObject(url, kind, object, method, ...args) {
  const r = await fetch(`${url}/${kind}/${object}/${method}`, { method: 'POST', body: JSON.stringify(args), signal: AbortSignal.timeout(120_000) });
  const text = await r.text();
  let out;
  try {
    out = JSON.parse(text);
  } catch {
    throw new Error(`${method}: not JSON (HTTP ${r.status}): ${text.slice(0, 2000)}`);
  }
  if (r.status !== 200) throw new Error(`${method}: HTTP ${r.status}: ${out.error ?? text}`);
  return out;
}
