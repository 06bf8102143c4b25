// Proves the scaffold in browser.mjs: the wasm package loads in a page served by startServer,
// errors are recorded, a crashed tab does not take its context down, a quota override bites.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BLANK, ROOT, TEST_TIMEOUT, crashPage, launchBrowser, openPage, setQuota, startServer } from './browser.mjs';

test('harness: the page loads /pkg/index.js and version() is the crate version', { timeout: TEST_TIMEOUT }, async (t) => {
  const cargo = await readFile(join(ROOT, 'Cargo.toml'), 'utf8');
  const version = cargo.match(/^\[package\][^[]*?^version\s*=\s*"([^"]+)"/ms)?.[1];
  await Promise.all(['tabbit_bg.wasm', 'index.js'].map((f) => readFile(join(ROOT, 'pkg', f)))).catch(() => {
    throw new Error('pkg/ is not built: run scripts/build-pkg');
  });
  const server = await startServer();
  t.after(() => server.close());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const { page, errors } = await openPage(browser.context, server.url + BLANK);
  const shown = await page.evaluate(async () => {
    const { version } = await import('/pkg/index.js'); // loads the wasm on first use
    return await version();
  });
  assert.equal(shown, version);
  assert.deepEqual(errors, []);

  // The error recorder sees console.error, exceptions and unhandled rejections.
  await page.evaluate(() => {
    console.error('one');
    setTimeout(() => {
      throw new Error('two');
    });
    Promise.reject(new Error('three'));
  });
  await page.waitForTimeout(200);
  assert.equal(errors.length, 3, errors.join('\n'));
  for (const word of ['one', 'two', 'three']) assert.ok(errors.some((e) => e.includes(word)), word);
});

test('harness: crashPage kills one tab, setQuota makes IndexedDB writes fail (deletions still commit)', { timeout: TEST_TIMEOUT }, async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const { page: victim } = await openPage(browser.context, server.url + BLANK);
  await crashPage(victim);
  await assert.rejects(victim.evaluate(() => 1));

  const { page, errors } = await openPage(browser.context, server.url + BLANK);
  await setQuota(page, server.origin, 1 << 20);
  const written = await page.evaluate(async () => {
    const db = await new Promise((ok, fail) => {
      const req = indexedDB.open('quota-probe', 1);
      req.onupgradeneeded = () => req.result.createObjectStore('s');
      req.onsuccess = () => ok(req.result);
      req.onerror = () => fail(req.error);
    });
    for (let i = 0; i < 64; i++) {
      const body = crypto.getRandomValues(new Uint8Array(65536));
      const failed = await new Promise((ok) => {
        const tx = db.transaction('s', 'readwrite');
        tx.objectStore('s').put(body, i);
        tx.oncomplete = () => ok(null);
        tx.onabort = () => ok(tx.error?.name ?? 'aborted');
      });
      if (failed) {
        // What the broker's fence relies on (README, "The guarantee"): full storage takes a
        // transaction that only deletes.
        const deleted = await new Promise((ok) => {
          const tx = db.transaction('s', 'readwrite');
          tx.objectStore('s').delete(0);
          tx.oncomplete = () => ok(null);
          tx.onabort = () => ok(tx.error?.name ?? 'aborted');
        });
        return { i, failed, deleted };
      }
    }
    return { i: 64, failed: null };
  });
  assert.equal(written.failed, 'QuotaExceededError', `64 KB writes under a 1 MB quota: ${JSON.stringify(written)}`);
  assert.ok(written.i >= 4 && written.i <= 16, `failed after ${written.i} writes of 64 KB`);
  assert.equal(written.deleted, null, `a deletion once storage is full: ${JSON.stringify(written)}`);
  assert.deepEqual(errors, []);
});
