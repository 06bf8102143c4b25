// Writes docs/console.png, the README's picture of the management console: headless Chromium
// at 1280×800 runs the demo for about 40 s (two worker tabs, a producer, a crashed worker, a
// chat message), then photographs the console's overview. Needs pkg/ (scripts/build-pkg).
//
//   node docs/screenshot.mjs
import { join } from 'node:path';
import { ROOT, launchBrowser, openPage, startServer } from '../tests/node/browser.mjs';

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const server = await startServer();
const { context, close } = await launchBrowser();
try {
  const { page, errors } = await openPage(context, `${server.url}www/#/demo`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForFunction(() => /^Ready\b/.test(document.getElementById('status').textContent), null, { timeout: 30_000 });
  const workers = [];
  for (let i = 0; i < 2; i++) {
    const [popup] = await Promise.all([context.waitForEvent('page'), page.click('#open-worker')]);
    workers.push(popup);
  }
  await page.bringToFront();
  await page.fill('#jobs-ms', '700');
  await page.check('#jobs-auto');
  await page.fill('#chat-text', 'hello from the console');
  await page.press('#chat-text', 'Enter');
  for (let round = 0; round < 5; round++) {
    await page.fill('#jobs-count', String(6 + round * 2));
    await page.click('#publish-jobs');
    if (round === 2) {
      await page.fill('#jobs-ms', '3000');
      await page.fill('#jobs-count', '8');
      await page.click('#publish-jobs');
      await sleep(1500);
      await page.click('#workers li[data-worker="1"] button.crash'); // its jobs come back, redelivered
      await page.fill('#jobs-ms', '700');
      await Promise.all([context.waitForEvent('page'), page.click('#open-worker')]);
      await page.bringToFront();
    }
    await sleep(7000);
  }
  await page.click('nav a[data-nav=overview]');
  await sleep(1200);
  await page.evaluate(() => {
    document.getElementById('notice').textContent = '';
    window.scrollTo(0, 0);
  });
  await page.screenshot({ path: join(ROOT, 'docs', 'console.png') });
  if (errors.length) console.error(errors.join('\n'));
  console.log('wrote docs/console.png');
} finally {
  await close();
  await server.close();
}
