// The package under a strict Content-Security-Policy (script-src 'self' 'wasm-unsafe-eval', no
// 'unsafe-eval', no inline script): tests/node/csp.html runs tests/node/csp.js, which connects,
// publishes and consumes; any CSP violation or page error fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT, launchBrowser, openPage, startServer } from './browser.mjs';

test('csp: the package runs under script-src self wasm-unsafe-eval, with no violation', { timeout: TEST_TIMEOUT }, async () => {
  const server = await startServer();
  const { context, close } = await launchBrowser();
  try {
    const { page, errors } = await openPage(context, `${server.url}tests/node/csp.html`);
    await page.waitForFunction(() => document.getElementById('result').textContent !== 'running', null, { timeout: 30_000 });
    assert.equal(await page.textContent('#result'), 'ok under a strict policy 1 hosting=true');
    assert.deepEqual(await page.evaluate(() => window.violations), []);
    assert.deepEqual(errors, []);
  } finally {
    await close();
    await server.close();
  }
});
