// The management console and the demo (www/), end to end in headless Chromium: the console opens
// two worker tabs (window.open), publishes jobs and a chat message, crashes a worker tab (closes
// it abruptly from the console) and sees its unacked jobs redelivered to the other worker; then
// declares a queue, an exchange and a binding from the forms, publishes from the exchange's page
// and peeks at the message from the queue's page; then closes the last worker, reloads the
// console and finds the durable state again. Every assertion reads the pages' DOM (waitForFunction,
// no sleeps); any console error, exception or unhandled rejection in any page fails the test.
//
// Screenshots (console overview and demo, a worker tab, the console at 360 px) go to
// test-artifacts/ (gitignored); `node docs/screenshot.mjs` writes the README's docs/console.png.
// CONSOLE_TEST_TIMES=1 prints how long each part took.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, TEST_TIMEOUT, launchBrowser, openPage, startServer } from './browser.mjs';

const ARTIFACTS = join(ROOT, 'test-artifacts');
const VIEWPORT = { width: 1280, height: 800 };

let server;
let browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  await mkdir(ARTIFACTS, { recursive: true });
});
after(async () => {
  await browser?.close();
  await server?.close();
});

/** Records a page's console errors, exceptions and rejections, as openPage does. */
function watchErrors(page, label, errors) {
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${label}: console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`${label}: page error: ${err.stack || err.message || err}`));
}

/** A number shown in the DOM ("1,234" → 1234; "—" → NaN). */
const shown = (page, selector) =>
  page.$eval(selector, (n) => Number(n.textContent.replace(/,/g, '').trim())).catch(() => NaN);

/**
 * Waits until `fn(arg)` is truthy in the page; on timeout, fails with `what` and the texts of
 * `#status`, `#notice` and the given selectors, so that a failure says what the page showed.
 */
async function waitFor(page, what, fn, arg, { timeout = 10_000, show = [] } = {}) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    const texts = await page
      .evaluate((sels) => sels.map((s) => `${s}: ${document.querySelector(s)?.textContent?.trim().slice(0, 300) ?? '(none)'}`), [
        '#status',
        '#notice',
        ...show,
      ])
      .catch(() => []);
    throw new Error(`timed out waiting for ${what}\n  ${texts.join('\n  ')}\n  (${e.message.split('\n')[0]})`);
  }
}

const t0 = Date.now();
const mark = (what) => process.env.CONSOLE_TEST_TIMES && console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
const ready = (page, timeout = 15_000) =>
  waitFor(page, 'the page to be ready', () => /^Ready\b/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout });

test('console and demo: worker tabs, a crash and redelivery, forms, peek, durable state across a reload', { timeout: TEST_TIMEOUT }, async () => {
  const cargo = await readFile(join(ROOT, 'Cargo.toml'), 'utf8');
  const version = cargo.match(/^\[package\][^[]*?^version\s*=\s*"([^"]+)"/ms)?.[1];
  const broker = `console-test-${Date.now()}`;
  const { context } = browser;
  const errors = [];
  const popups = [];
  context.on('page', (page) => {
    // Worker tabs opened by the console (window.open): watched from their first script on.
    if (page.url() === 'about:blank' || page.url().includes('worker.html')) {
      popups.push(page);
      watchErrors(page, `worker tab ${popups.length}`, errors);
    }
  });

  const { page: console_, errors: consoleErrors } = await openPage(context, `${server.url}www/?broker=${broker}#/demo`);
  const page = console_;
  await page.setViewportSize(VIEWPORT);
  await ready(page);
  assert.equal((await page.textContent('#version')).trim(), version);
  assert.match(await page.textContent('#status'), /this tab hosts it/);
  // Storage: kind, whether it is persisted, the origin's usage against its quota; and the button
  // that asks the browser to keep it (headless Chromium answers by its heuristics: no prompt).
  await waitFor(page, 'the storage info', () => /^indexeddb \((persisted|best-effort|eviction).*uses .+ of .+\)$/.test(document.getElementById('storage').textContent), null, { show: ['#storage'] });
  const persisted = /^indexeddb \(persisted/.test(await page.textContent('#storage'));
  assert.equal(await page.isVisible('#persist'), !persisted, 'the persist button shows while the storage is not persisted');
  if (!persisted) {
    await page.click('#persist');
    await waitFor(page, "the browser's answer", () => /persists this origin|refused to persist/.test(document.getElementById('notice').textContent));
  }

  mark('two worker tabs');
  // ---- two worker tabs ----
  const openWorker = async (n) => {
    const [popup] = await Promise.all([context.waitForEvent('page'), page.click('#open-worker')]);
    await popup.waitForLoadState('domcontentloaded');
    assert.match(popup.url(), new RegExp(`worker\\.html\\?n=${n}&broker=${broker}`));
    await ready(popup);
    assert.equal((await popup.textContent('#worker-name')).trim(), `worker ${n}`);
    return popup;
  };
  const w1 = await openWorker(1);
  const w2 = await openWorker(2);
  // A page in a background tab gets no animation frames, which Playwright's clicks wait for.
  await page.bringToFront();
  await waitFor(page, "2 consumers on 'work'", () => document.getElementById('work-consumers').textContent === '2');
  await waitFor(
    page,
    'both workers listed as open',
    () => [1, 2].every((n) => /^open/.test(document.querySelector(`#workers li[data-worker="${n}"] .info`)?.textContent ?? '')),
    null,
    { show: ['#workers'] },
  );

  mark('chat across');
  // ---- chat across tabs, on the topic exchange ----
  await page.fill('#chat-text', 'hello from the console');
  await page.press('#chat-text', 'Enter');
  for (const [tab, label] of [[page, 'the console'], [w1, 'worker 1'], [w2, 'worker 2']]) {
    await waitFor(tab, `the chat message in ${label}'s feed`, () =>
      [...document.querySelectorAll('#feed li')].some((li) => li.textContent.includes('console: hello from the console')),
    );
  }
  await w2.bringToFront();
  await w2.fill('#chat-text', 'hi from worker 2');
  await w2.click('#chat-send');
  await page.bringToFront();
  await waitFor(page, "worker 2's chat message in the console", () =>
    [...document.querySelectorAll('#feed li')].some((li) => li.textContent.includes('worker 2: hi from worker 2')),
  );

  mark('jobs');
  // ---- jobs: each worker takes 2 (prefetch 2), 2 stay ready ----
  await page.fill('#jobs-count', '6');
  await page.fill('#jobs-ms', '4000');
  await page.click('#publish-jobs');
  await waitFor(page, 'the publish to be confirmed', () => /^Published 6 jobs/.test(document.getElementById('notice').textContent));
  await waitFor(
    page,
    "'work' to show 4 unacked and 2 ready",
    (sel) => sel.every(([s, v]) => document.querySelector(s).textContent === v),
    [['#work-unacked', '4'], ['#work-ready', '2']],
    { show: ['#work-tiles'] },
  );
  await waitFor(page, 'worker 1 to hold 2 unacked jobs', () =>
    /holds 2 unacked jobs/.test(document.querySelector('#workers li[data-worker="1"] .info').textContent),
  );
  assert.equal(await shown(page, '#work-redelivered'), 0);

  mark('crash worker 1');
  // ---- crash worker 1 while it holds 2 jobs: they go to worker 2, redelivered ----
  await page.screenshot({ path: join(ARTIFACTS, 'demo-before-crash.png') });
  const held = await w1.$$eval('#in-hand li', (lis) => lis.map((li) => li.dataset.job));
  assert.equal(held.length, 2, `worker 1 holds 2 jobs: ${held}`);
  const closed = new Promise((ok) => w1.once('close', ok));
  await page.click('#workers li[data-worker="1"] button.crash');
  await closed;
  await waitFor(page, "the console to show worker 1 closed", () =>
    /^closed/.test(document.querySelector('#workers li[data-worker="1"] .info')?.textContent ?? ''),
  );
  // Its 2 unacked jobs go back: 4 ready (until worker 2, busy with its own 2, takes them).
  await waitFor(
    page,
    "worker 1's jobs back in 'work': 4 ready, 2 unacked",
    (sel) => sel.every(([s, v]) => document.querySelector(s).textContent === v),
    [['#work-ready', '4'], ['#work-unacked', '2']],
    { show: ['#work-tiles'] },
  );
  await waitFor(page, "'work' redelivered counter to reach 2", (sel) => Number(document.querySelector(sel).textContent) >= 2, '#work-redelivered', {
    show: ['#work-tiles'],
  });
  await waitFor(
    w2,
    "worker 1's jobs to reach worker 2 flagged redelivered",
    (jobs) => jobs.every((j) => document.querySelector(`#in-hand li.redelivered[data-job="${j}"], #done li.redelivered[data-job="${j}"]`)),
    held,
    { show: ['#in-hand', '#done'] },
  );
  assert.ok((await shown(w2, '#count-redelivered')) >= 2);
  await waitFor(page, 'the feed to tell of the redelivery', (jobs) =>
    jobs.every((j) => [...document.querySelectorAll('#feed li')].some((li) => li.textContent.includes(`worker 2 got job ${j} again`))),
    held,
  );
  await page.screenshot({ path: join(ARTIFACTS, 'demo.png') });
  await w2.screenshot({ path: join(ARTIFACTS, 'worker.png') });

  mark("the console's views");
  // ---- the console's views ----
  await page.click('nav a[data-nav=queues]');
  await waitFor(page, "the queues table to show 'work' redelivered ≥ 2", () =>
    Number(document.querySelector('#queue-rows tr[data-key="work"] td[data-col=redelivered]')?.textContent) >= 2,
  );
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'h-queues', 'focus moves to the view heading');
  await page.click('nav a[data-nav=connections]');
  await waitFor(page, 'the connections table to list the console (host) and worker 2', () => {
    const rows = [...document.querySelectorAll('#context-rows tr')].map((tr) => tr.textContent);
    return rows.length === 2 && rows.some((t) => t.includes('console') && t.includes('host')) && rows.some((t) => t.includes('worker 2'));
  });
  assert.match(await page.textContent('#context-rows tr.self'), /console/);
  await page.click('nav a[data-nav=overview]');
  await waitFor(page, 'the overview to show the host and totals', () =>
    document.getElementById('ov-host').textContent.includes('console') &&
    Number(document.querySelector('#ov-totals [data-total=redelivered]').textContent) >= 2 &&
    document.querySelectorAll('#chart-overview polyline').length === 4,
  );
  await page.screenshot({ path: join(ARTIFACTS, 'console.png') });

  mark('forms');
  // ---- forms: a queue, an exchange, a binding; publish on the exchange, peek on the queue ----
  await page.click('nav a[data-nav=queues]');
  await page.fill('#q-name', 'orders');
  await page.fill('#q-max', '100');
  await page.click('#form-queue button[type=submit]');
  await waitFor(page, "queue 'orders' declared", () => document.querySelector('#queue-rows tr[data-key="orders"]'));
  assert.match(await page.textContent('#queue-rows tr[data-key="orders"] td.features'), /D.*Lim/);
  await page.click('nav a[data-nav=exchanges]');
  await page.fill('#ex-name', 'shop');
  await page.selectOption('#ex-type', 'topic');
  await page.click('#form-exchange button[type=submit]');
  await waitFor(page, "exchange 'shop' declared", () => document.querySelector('#exchange-rows tr[data-key="shop"]'));
  await page.fill('#b-source', 'shop');
  await page.fill('#b-destination', 'orders');
  await page.fill('#b-key', 'order.*');
  await page.click('#form-binding button[type=submit]');
  await waitFor(page, 'the binding listed', () =>
    [...document.querySelectorAll('#binding-rows tr')].some((tr) => /shop.*orders.*order\.\*/.test(tr.textContent)),
  );
  await page.click('#exchange-rows tr[data-key="shop"] a');
  await waitFor(page, "the exchange page of 'shop'", () => !document.getElementById('view-exchange').hidden &&
    document.getElementById('x-type').textContent === 'topic' && !document.getElementById('form-publish').hidden);
  assert.equal(await page.inputValue('#p-exchange'), 'shop');
  await page.fill('#p-key', 'order.created');
  await page.fill('#p-headers', 'source = "console test"\nattempt = 1');
  await page.fill('#p-body', '{"order": 42}');
  await page.click('#p-submit');
  await waitFor(page, 'the publish confirmed and routed', () =>
    /^Message published to exchange 'shop' with routing key 'order.created' and confirmed/.test(document.getElementById('notice').textContent),
  );
  await page.fill('#p-key', 'nobody.listens');
  await page.click('#p-submit');
  await waitFor(page, 'an unroutable publish reported', () => /but not routed/.test(document.getElementById('notice').textContent));

  await page.goto(`${server.url}www/?broker=${broker}#/queues/orders`);
  await waitFor(page, "the queue page of 'orders' with 1 ready", () =>
    document.getElementById('qd-name').textContent === 'orders' && document.querySelector('#qd-tiles [data-q=ready]').textContent === '1',
  );
  assert.equal(await page.inputValue('#get-mode'), 'peek', 'peek is the default mode (conn.peek exists)');
  await page.click('#get-submit');
  await waitFor(page, 'the peeked message', () => document.querySelector('#get-results li .payload')?.textContent === '{"order": 42}');
  const peeked = await page.textContent('#get-results li');
  assert.match(peeked, /order\.created/);
  assert.match(peeked, /source = console test/);
  assert.match(await page.textContent('#notice'), /^1 message peeked at from 'orders'/);
  assert.equal(await shown(page, '#qd-tiles [data-q=ready]'), 1, 'peek leaves the message in the queue');

  mark('durable state');
  // ---- durable state: close the last worker, reload the console ----
  await page.goto(`${server.url}www/?broker=${broker}#/demo`);
  await ready(page);
  const closed2 = new Promise((ok) => w2.once('close', ok));
  await page.click('#workers li[data-worker="2"] button.crash');
  await closed2;
  await waitFor(page, "'work' with no consumer and nothing unacked", () =>
    document.getElementById('work-consumers').textContent === '0' && document.getElementById('work-unacked').textContent === '0',
  );
  const left = await shown(page, '#work-ready'); // stable: no consumer
  // Jobs nobody takes, persistent: stored before the confirm.
  await page.fill('#jobs-count', '3');
  await page.click('#publish-jobs');
  await waitFor(page, 'the publish to be confirmed', () => /^Published 3 jobs/.test(document.getElementById('notice').textContent));
  const readyBefore = left + 3;
  await waitFor(page, `'work' to show ${readyBefore} ready`, (n) => Number(document.getElementById('work-ready').textContent) === n, readyBefore);
  await page.reload();
  await ready(page);
  await waitFor(page, `'work' to show ${readyBefore} ready jobs after the reload`, (n) => Number(document.getElementById('work-ready').textContent) === n, readyBefore, {
    show: ['#work-tiles'],
  });
  await waitFor(page, 'the chat history after the reload', () =>
    [...document.querySelectorAll('#feed li.history')].some((li) => li.textContent.includes('console: hello from the console')),
  );
  await page.click('nav a[data-nav=queues]');
  await waitFor(page, "'orders' (1 ready) after the reload", () =>
    document.querySelector('#queue-rows tr[data-key="orders"] td[data-col=ready]')?.textContent === '1',
  );
  await page.click('nav a[data-nav=exchanges]');
  await waitFor(page, "exchange 'shop' and its binding after the reload", () =>
    document.querySelector('#exchange-rows tr[data-key="shop"]') &&
    [...document.querySelectorAll('#binding-rows tr')].some((tr) => /shop.*orders.*order\.\*/.test(tr.textContent)),
  );

  mark('narrow screen');
  // ---- narrow screen ----
  await page.setViewportSize({ width: 360, height: 740 });
  await page.click('nav a[data-nav=demo]');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways at 360 px by ${overflow} px`);
  await page.screenshot({ path: join(ARTIFACTS, 'console-360.png'), fullPage: true });

  assert.deepEqual([...consoleErrors, ...errors], []);
});
