// examples/ against the package as built (pkg/, scripts/build-pkg): each example is copied to a
// temp dir with node_modules/tabbit linked to pkg/, type-checked by tsc (its tsconfig.json, or
// jsconfig.json with checkJs for the examples without a build) and built by `vite build`, which
// must not warn and must emit the wasm. The worker consumer then runs in headless Chromium: a
// job the page publishes is consumed by its dedicated worker, whose answer the page shows.
// And the package itself as a user gets it: its README and package.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, readdir, symlink } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from '../../scripts/serve.mjs';
import { launchBrowser, openPage } from './browser.mjs';
import { PKG, ROOT, needBin, needPackage, removeDir, run, tempDir } from '../runtimes/helpers.mjs';

const EXAMPLES = join(ROOT, 'examples');
const examples = (await readdir(EXAMPLES, { withFileTypes: true }))
  .filter((d) => d.isDirectory() && existsSync(join(EXAMPLES, d.name, 'package.json')))
  .map((d) => d.name)
  .sort();

/** A copy of example `name` in a temp dir, with the package installed as a link to pkg/. */
async function install(t, name) {
  const dir = await tempDir(`tabbit-example-${name}-`);
  t.after(() => removeDir(dir));
  const app = join(dir, name);
  await cp(join(EXAMPLES, name), app, { recursive: true, filter: (f) => !/[/\\](node_modules|dist)$/.test(f) });
  await mkdir(join(app, 'node_modules'));
  await symlink(PKG, join(app, 'node_modules', 'tabbit'), 'dir');
  return app;
}

/** tsc on the example's tsconfig.json or jsconfig.json, then `vite build`; the built dist folder. */
async function build(t, name) {
  const tsc = await needBin('tsc');
  const vite = await needBin('vite');
  const app = await install(t, name);
  const config = ['tsconfig.json', 'jsconfig.json'].find((f) => existsSync(join(app, f)));
  assert.ok(config, `examples/${name} has no tsconfig.json or jsconfig.json`);
  await run(tsc, ['-p', config], { t, cwd: app, timeoutMs: 60_000, all: true });
  const said = await run(vite, ['build', '--logLevel', 'warn'], { t, cwd: app, env: { ...process.env, NO_COLOR: '1' }, timeoutMs: 60_000, all: true });
  assert.equal(said.trim(), '', `vite build of examples/${name} warned`);
  const assets = await readdir(join(app, 'dist', 'assets'));
  assert.equal(assets.filter((f) => f.endsWith('.wasm')).length, 1, `examples/${name}: no wasm emitted: ${assets}`);
  return join(app, 'dist');
}

test('examples: the folder holds the four kinds of example, each with a README line', () => {
  for (const name of ['vite-app', 'worker-consumer', 'cross-tab-feed', 'outbox']) assert.ok(examples.includes(name), `examples/${name} missing`);
  const readme = readFileSync(join(EXAMPLES, 'README.md'), 'utf8');
  for (const name of examples) assert.match(readme, new RegExp(`\\[${name}\\]\\(${name}/\\)`), `examples/README.md does not list ${name}`);
});

for (const name of examples) {
  test(`examples: ${name} type-checks and builds against pkg/`, { timeout: 90_000 }, async (t) => {
    await needPackage();
    const dist = await build(t, name);
    if (name !== 'worker-consumer') return;
    // Runnable: the page publishes a job, the worker (another context of the same broker) consumes it.
    const server = await serve({ root: dist, port: 0, host: '127.0.0.1' });
    t.after(() => server.close());
    const browser = await launchBrowser();
    t.after(() => browser.close());
    const { page, errors } = await openPage(browser.context, server.url + 'index.html');
    await page.click('#send:not([disabled])', { timeout: 30_000 });
    const result = page.locator('#results li').first();
    await result.waitFor({ timeout: 30_000 });
    assert.match(await result.textContent(), /^photo 1: 69632 pixels in \d+ ms$/);
    assert.deepEqual(errors, []);
  });
}

test("examples: the package's README and package.json are the user's", async () => {
  await needPackage();
  const readme = readFileSync(join(PKG, 'README.md'), 'utf8');
  assert.doesNotMatch(readme, /repository-only/, 'the README part for contributors was not left out');
  assert.doesNotMatch(readme, /\b(scripts|tests)\//, 'the package README names scripts/ or tests/, which the package does not hold');
  assert.doesNotMatch(readme, /!\[/, 'the package README shows an image');
  for (const [, href] of readme.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^(https?:|mailto:|#)/.test(href)) continue;
    assert.ok(existsSync(join(PKG, href)), `the package README links ${href}, which the package does not hold`);
  }
  assert.ok(readme.split('\n').length <= 250, 'the README is longer than 250 lines');
  const p = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8'));
  assert.equal(p.license, 'MIT OR Apache-2.0');
  assert.ok(p.keywords?.includes('rabbitmq') && p.engines?.node, 'package.json lacks keywords or engines');
  const cargo = readFileSync(join(ROOT, 'Cargo.toml'), 'utf8');
  if (/^repository\s*=/m.test(cargo)) {
    assert.ok(p.repository?.url && p.homepage && p.bugs?.url, 'package.json lacks repository, homepage or bugs');
  }
  // What npm would ship.
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PKG, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const files = JSON.parse(r.stdout)[0].files.map((f) => f.path);
  for (const f of ['README.md', 'LICENSE-MIT', 'LICENSE-APACHE', 'index.js', 'index.d.ts', 'tabbit_bg.wasm']) {
    assert.ok(files.includes(f), `npm pack would not ship ${f}: ${files.join(', ')}`);
  }
});
