// Smoke test of the demo as `scripts/demo` serves it: serves the repository, loads /www/ in headless
// Chromium (through the shared scaffold of tests/node/browser.mjs) and checks that the page shows
// the crate's version, opens its broker and publishes, gets and acks a message, with no error in
// the page. Needs pkg/ from `scripts/build-pkg` (scripts/test
// builds it first). This would have caught Debian's wasm-opt 108 breaking the optimized package
// (see scripts/setup).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, launchBrowser, openPage, startServer } from '../tests/node/browser.mjs';

test('the demo page loads the wasm package, opens its broker and round-trips a message', async () => {
  const cargo = await readFile(join(ROOT, 'Cargo.toml'), 'utf8');
  const version = cargo.match(/^\[package\][^[]*?^version\s*=\s*"([^"]+)"/ms)?.[1];
  assert.ok(version, 'version in Cargo.toml');
  await readFile(join(ROOT, 'pkg', 'tabbit_bg.wasm')).catch(() => {
    throw new Error('pkg/ is not built: run scripts/build-pkg');
  });

  const server = await startServer();
  const { context, close } = await launchBrowser();
  try {
    const { page, errors } = await openPage(context, `${server.url}www/`);
    await page.waitForFunction(() => /^Ready\b/.test(document.getElementById('status').textContent), null, {
      timeout: 30_000,
    });
    assert.equal((await page.textContent('#version')).trim(), version);
    await page.fill('#message', 'hello from the smoke test');
    await page.click('#send');
    await page.waitForSelector('#out li');
    assert.match(await page.textContent('#out li'), /^hello from the smoke test/);
    assert.match(await page.textContent('#status'), /^Published, got and acked/);
    assert.deepEqual(errors, []);
  } finally {
    await close();
    await server.close();
  }
});
