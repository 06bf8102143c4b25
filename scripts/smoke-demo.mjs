// Smoke test of the console as `scripts/demo` serves it: serves the repository, loads /www/ in
// headless Chromium (through the shared scaffold of tests/node/browser.mjs) and checks that the
// page shows the crate's version and opens its broker, then declares a queue from the form,
// publishes a message from the queue's page and gets (and acks) it back, with no error in the
// page. Needs pkg/ from `scripts/build-pkg` (scripts/test builds it first). This would have
// caught Debian's wasm-opt 108 breaking the optimized package (see scripts/setup). The
// multi-tab flows (worker tabs, a crash, redelivery, a reload) are tests/node/console.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, launchBrowser, openPage, startServer } from '../tests/node/browser.mjs';

test('the console loads the wasm package, opens its broker and round-trips a message', async () => {
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
    assert.match(await page.textContent('#status'), /storage: indexeddb/);

    await page.click('nav a[data-nav=queues]');
    await page.fill('#q-name', 'smoke');
    await page.click('#form-queue button[type=submit]');
    await page.waitForSelector('#queue-rows tr[data-key="smoke"] a');
    await page.click('#queue-rows tr[data-key="smoke"] a');
    await page.waitForFunction(() => document.getElementById('qd-name').textContent === 'smoke');
    assert.equal(await page.inputValue('#p-key'), 'smoke', "the publish form routes to the queue's name");
    await page.fill('#p-body', 'hello from the smoke test');
    await page.click('#p-submit');
    await page.waitForFunction(() => /^Message published .* and confirmed/.test(document.getElementById('notice').textContent));
    await page.waitForFunction(() => document.querySelector('#qd-tiles [data-q=ready]').textContent === '1');

    await page.selectOption('#get-mode', 'ack');
    await page.fill('#get-count', '1');
    await page.click('#get-submit');
    await page.waitForSelector('#get-results li .payload');
    assert.equal(await page.textContent('#get-results li .payload'), 'hello from the smoke test');
    assert.match(await page.textContent('#notice'), /^1 message got and acked from 'smoke'/);
    await page.waitForFunction(() => document.querySelector('#qd-tiles [data-q=ready]').textContent === '0');
    assert.deepEqual(errors, []);
  } finally {
    await close();
    await server.close();
  }
});
