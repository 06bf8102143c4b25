// The npm package (pkg/, as scripts/build-pkg builds it) in an app built with Vite (npm package
// `vite`, pinned in tests/package.json): `npm pack` of pkg/, installed from the tarball into a
// temp copy of tests/runtimes/vite-app (whose main.js imports 'tabbit' and runs the shared
// scenario, tests/runtimes/scenario.mjs), `vite build`, the dist served by scripts/serve.mjs and
// opened in headless Chromium (tests/node/browser.mjs). The build must not warn, and the page must
// write the scenario's result with no page error, having fetched the wasm that Vite emitted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { serve } from '../../scripts/serve.mjs';
import { launchBrowser, openPage } from './browser.mjs';
import { PKG, RUNTIMES, needBin, needPackage, removeDir, run, tempDir } from '../runtimes/helpers.mjs';
import { EXPECTED } from '../runtimes/scenario.mjs';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

test('runtime vite: a Vite-built page publishes and consumes through the installed package', { timeout: 90_000 }, async (t) => {
  await needPackage();
  const vite = await needBin('vite');
  const dir = await tempDir('tabbit-vite-');
  t.after(() => removeDir(dir));
  const env = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

  // The package as npm would publish it.
  const packed = JSON.parse(await run(npm, ['pack', '--json', '--pack-destination', dir], { t, cwd: PKG, env, timeoutMs: 30_000 }));
  const tarball = join(dir, packed[0].filename);
  const shipped = packed[0].files.map((f) => f.path);
  for (const file of ['package.json', 'index.js', 'tabbit.js', 'tabbit_bg.wasm']) {
    assert.ok(shipped.includes(file), `the tarball lacks ${file}: ${shipped.join(', ')}`);
  }

  // A copy of the app (with ../scenario.mjs beside it, as in the repository) that installs it.
  const app = join(dir, 'vite-app');
  await cp(join(RUNTIMES, 'vite-app'), app, { recursive: true });
  await cp(join(RUNTIMES, 'scenario.mjs'), join(dir, 'scenario.mjs'));
  await run(npm, ['install', '--no-audit', '--no-fund', '--no-save', '--loglevel=error', tarball], { t, cwd: app, env, timeoutMs: 60_000 });

  // Quietly: a warning (e.g. about a `node:` import in browser code) fails the test.
  const said = await run(vite, ['build', '--logLevel', 'warn'], {
    t,
    cwd: app,
    env: { ...env, NO_COLOR: '1' },
    timeoutMs: 60_000,
    all: true,
  });
  assert.equal(said.trim(), '', 'vite build warned');
  const assets = await readdir(join(app, 'dist', 'assets'));
  const wasm = assets.filter((f) => f.endsWith('.wasm'));
  assert.equal(wasm.length, 1, `vite emitted no wasm asset: ${assets.join(', ')}`);

  const server = await serve({ root: join(app, 'dist'), port: 0, host: '127.0.0.1' });
  t.after(() => server.close());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const fetched = [];
  browser.context.on('response', (r) => fetched.push(`${r.status()} ${new URL(r.url()).pathname}`));
  const { page, errors } = await openPage(browser.context, server.url + 'index.html');
  const result = page.locator('#result[data-status]');
  await result.waitFor({ timeout: 30_000 });
  const out = JSON.parse(await result.textContent());
  assert.equal(out.error, undefined, out.error);
  assert.equal(await result.getAttribute('data-status'), 'done');
  assert.deepEqual(errors, [], `errors in the page; it fetched: ${fetched.join(', ')}`);
  assert.ok(fetched.includes(`200 /assets/${wasm[0]}`), `the page did not fetch the wasm: ${fetched.join(', ')}`);
  assert.equal(out.runtime, 'vite');
  assert.deepEqual(out.result, { storage: 'indexeddb', ...EXPECTED });
});
