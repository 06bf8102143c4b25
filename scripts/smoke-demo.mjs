// Smoke test of the demo as `scripts/demo` serves it: serves the repository with serve.mjs, loads
// /www/ in headless Chromium (--dump-dom) and checks that the page shows the crate's version and,
// once the Broker binding exists, that it declared its queue. Needs pkg/ from
// `wasm-pack build --target web --release --out-dir pkg` (scripts/test builds it first).
// This would have caught Debian's wasm-opt 108 breaking the optimized package (see scripts/setup).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from './serve.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';

// Chromium as root needs --no-sandbox; the rest keep it off the (closed) network and quiet.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function dumpDom(url) {
  return mkdtemp(join(tmpdir(), 'tabbit-chromium-')).then((profile) =>
    new Promise((ok, fail) => {
      execFile(
        chromium,
        [...CHROMIUM_ARGS, `--user-data-dir=${profile}`, '--virtual-time-budget=10000', '--dump-dom', url],
        { timeout: 60_000, maxBuffer: 16 << 20 },
        (err, stdout, stderr) => (err ? fail(new Error(`${err.message}\n${stderr}`)) : ok(stdout)),
      );
    }).finally(() => rm(profile, { recursive: true, force: true })),
  );
}

const text = (html, id) => {
  const m = html.match(new RegExp(`id="${id}"[^>]*>([^<]*)<`));
  return m ? m[1].trim() : null;
};

test('the demo page loads the wasm package and shows the crate version', async () => {
  const cargo = await readFile(join(root, 'Cargo.toml'), 'utf8');
  const version = cargo.match(/^\[package\][^[]*?^version\s*=\s*"([^"]+)"/ms)?.[1];
  assert.ok(version, 'version in Cargo.toml');
  await readFile(join(root, 'pkg', 'tabbit_bg.wasm')).catch(() => {
    throw new Error('pkg/ is not built: run wasm-pack build --target web --release --out-dir pkg');
  });

  const server = await serve({ root, port: 0, host: '127.0.0.1' });
  try {
    const dom = await dumpDom(`${server.url}www/`);
    const status = text(dom, 'status');
    assert.equal(text(dom, 'version'), version, `version shown (status: ${status})`);
    assert.ok(
      status === 'core binding not built yet' || /^Ready\b/.test(status ?? ''),
      `status after loading: ${status}`,
    );
  } finally {
    await server.close();
  }
});
