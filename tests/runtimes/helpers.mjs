// What the runtime tests (tests/node/runtime-*.test.mjs) share: the repository's paths, child
// processes that cannot outlive their test, and free ports on 127.0.0.1. Node standard library only.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The built npm package (scripts/build-pkg). */
export const PKG = join(ROOT, 'pkg');
/** tests/runtimes/. */
export const RUNTIMES = join(ROOT, 'tests', 'runtimes');
/** Binaries of the npm packages in tests/ (deno, workerd, vite). */
export const BIN = join(ROOT, 'tests', 'node_modules', '.bin');

/** Throws a readable error unless scripts/build-pkg has built pkg/ (the package, not just the wasm). */
export async function needPackage() {
  for (const file of ['package.json', 'index.js', 'bridge.js', 'tabbit.js', 'tabbit_bg.wasm']) {
    await access(join(PKG, file)).catch(() => {
      throw new Error(`pkg/${file} is missing: build the package first with scripts/build-pkg`);
    });
  }
}

/**
 * Asserts that pkg/ exports the optional module `tabbit/<name>` with its types, as scripts/build-pkg
 * writes the manifest, and holds both files.
 */
export async function assertExported(name) {
  const manifest = JSON.parse(await readFile(join(PKG, 'package.json'), 'utf8'));
  assert.deepEqual(
    manifest.exports?.[`./${name}`],
    { types: `./${name}.d.ts`, default: `./${name}.js` },
    `pkg/package.json exports ./${name}: rebuild the package with scripts/build-pkg`,
  );
  for (const f of [`${name}.js`, `${name}.d.ts`]) {
    await access(join(PKG, f)).catch(() => assert.fail(`pkg/${f} is missing: rebuild the package with scripts/build-pkg`));
  }
}

/** Throws a readable error unless tests/node_modules/.bin has `name` (npm ci in tests/, as scripts/setup does). */
export async function needBin(name) {
  const path = join(BIN, name);
  await access(path).catch(() => {
    throw new Error(`${path} is missing: run npm ci in tests/ (scripts/setup does)`);
  });
  return path;
}

/** A new empty temporary directory; remove it with removeDir. */
export function tempDir(prefix) {
  return mkdtemp(join(tmpdir(), prefix));
}

export function removeDir(dir) {
  return rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * Starts `command args` in its own process group, collecting stdout and stderr. `kill()` ends the
 * whole group (SIGTERM, then SIGKILL if the leader outlives a grace period) and resolves when the
 * leader has exited; after `timeoutMs` the group is killed anyway. Give the test `t` and the kill is also registered with
 * t.after, so nothing outlives the test.
 * @returns {{child: import('node:child_process').ChildProcess, output: () => string,
 *            stdout: () => string, exited: Promise<{code: number|null, signal: string|null}>,
 *            kill: () => Promise<void>}}
 */
export function start(command, args, { t, timeoutMs = 60_000, ...options } = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  let out = '';
  let all = '';
  child.stdout.setEncoding('utf8').on('data', (s) => ((out += s), (all += s)));
  child.stderr.setEncoding('utf8').on('data', (s) => (all += s));
  let timedOut = false;
  const exited = new Promise((ok) => {
    child.once('error', (e) => ((all += `\n[spawn error: ${e.message}]`), ok({ code: null, signal: null, error: e })));
    child.once('close', (code, signal) => ok({ code, signal, timedOut }));
  });
  const signalGroup = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      // already gone
    }
  };
  // The group is signalled only while its leader is alive, so its id cannot have been reused.
  const alive = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  const kill = async () => {
    if (!alive()) return;
    signalGroup('SIGTERM');
    const grace = setTimeout(() => alive() && signalGroup('SIGKILL'), 3_000);
    await exited;
    clearTimeout(grace);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    all += `\n[killed after ${timeoutMs} ms]`;
    kill();
  }, timeoutMs);
  exited.then(() => clearTimeout(timer));
  t?.after(kill);
  return { child, exited, kill, output: () => all, stdout: () => out };
}

/**
 * Runs `command args` to the end (bounded by `timeoutMs`) and resolves with its stdout (with
 * `{ all: true }`, stdout and stderr as they came); rejects with its output if it exits non-zero,
 * by a signal, or times out.
 */
export async function run(command, args, { all = false, ...options } = {}) {
  const p = start(command, args, options);
  const { code, signal, timedOut } = await p.exited;
  if (code !== 0) {
    const why = timedOut ? 'timed out' : signal ? `was killed by ${signal}` : `exited with ${code}`;
    throw new Error(`${command} ${args.join(' ')} ${why}:\n${p.output().slice(-4000)}`);
  }
  return all ? p.output() : p.stdout();
}

/** A TCP port on 127.0.0.1 that was free a moment ago (a child then binds it). */
export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

/** The last line of `output` that parses as JSON, or throws with the output. */
export function lastJson(output) {
  const lines = output.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      return JSON.parse(line);
    } catch {
      // not this one
    }
  }
  throw new Error(`no JSON line in the output:\n${output.slice(-4000)}`);
}
