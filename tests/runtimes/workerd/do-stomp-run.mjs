// How Node runs the package's Durable Object class with Web-STOMP (tests/runtimes/workerd/
// do-stomp-worker.js: TabbitBroker with `stompPath`, SQLite-backed, on local disk, hibernatable
// WebSockets; and LeanBroker, the same with `keepAliveWhileUnacked: false`, under /lean/) for
// tests/node/edge-do-*.test.mjs: a temporary directory for the objects, and a
// port kept across restarts, so that clients (a tab's conn.bridge()) reconnect to the same URL.
//
//   const edge = await doStompServer(t);
//   let { url, ws, proc } = await edge.serve();   // url: http://127.0.0.1:<port>, ws: ws://…/ws (LeanBroker: ws://…/lean/ws)
//   await kill9(proc);                            // SIGKILL, as a crash
//   ({ proc } = await edge.serve());              // the same port and disk
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PKG, ROOT, freePort, needBin, needPackage, removeDir, tempDir } from '../helpers.mjs';
import { needAdapterBuild, writeDurableObjectConfig } from './do-config.mjs';
import { serveWorkerd } from './serve.mjs';

const WORKER = join(ROOT, 'tests/runtimes/workerd/do-stomp-worker.js');

/**
 * For test `t`: `serve()` starts workerd (again, on the same port and disk) and resolves once it
 * answers, with `{ url, ws, proc }`; `url` and `ws` are known before the first start.
 */
export async function doStompServer(t) {
  await needPackage();
  await needAdapterBuild();
  const built = await stat(join(PKG, 'durable-object.js')).catch(() => null);
  const source = await stat(join(ROOT, 'js/durable-object.js'));
  if (!built || built.mtimeMs < source.mtimeMs) throw new Error('pkg/durable-object.js is missing or older than js/durable-object.js: rebuild the package with scripts/build-pkg');
  const workerd = await needBin('workerd');
  const dir = await tempDir('tabbit-do-stomp-');
  t.after(() => removeDir(dir));
  const disk = join(dir, 'disk');
  await mkdir(disk);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const ws = `ws://127.0.0.1:${port}/ws`;
  const classes = [
    { className: 'Broker', binding: 'BROKER', sql: true },
    { className: 'LeanBroker', binding: 'BROKER_LEAN', sql: true },
  ];
  const write = (file, address) =>
    writeDurableObjectConfig(file, { disk, address, worker: WORKER, classes, preventEviction: false, compatibilityFlags: ['unsafe_module'] });
  const serve = async () => {
    const { proc } = await serveWorkerd(t, workerd, dir, write, { timeoutMs: 170_000, args: ['--experimental'], port });
    return { url, ws, proc };
  };
  return { serve, url, ws, disk };
}

/** Kills workerd (its process group) with SIGKILL, as a crash, and waits until it is gone. */
export async function kill9(proc) {
  try {
    process.kill(-proc.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await proc.exited;
}
