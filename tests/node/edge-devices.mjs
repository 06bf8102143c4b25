// "Devices" for the edge bridge tests (edge-stomp-bridge.test.mjs against Deno,
// edge-do-bridge.test.mjs against a Durable Object): each a tab in a browser context of its own
// (so its own IndexedDB and mesh), joined to a broker of its own and bridged by
// tests/node/bridge-page.js.
//
//   let server, browser;
//   useServerAndBrowser((s, b) => ([server, browser] = [s, b]));
//   const a = await device(t, { server, browser }, { url, login, passcode, outbound: [...] });
//   await a.page.evaluate(() => __bridge.publish('to-rabbit', 'k', 20, 'm-'));
import { BLANK, openPage } from './browser.mjs';

/**
 * A tab of a new device on `server` in `browser` (useServerAndBrowser's), bridged with `bridge`
 * (conn.bridge()'s options); its context closes after test `t`. Resolves with `{ page, errors }`.
 */
export async function device(t, { server, browser }, bridge) {
  const context = await browser.browser.newContext();
  t.after(() => context.close());
  const { page, errors } = await openPage(context, `${server.url}${BLANK}`);
  await page.evaluate((a) => import('/tests/node/bridge-page.js').then((m) => m.join(a)), { name: `edge-${Date.now()}`, bridge });
  return { page, errors };
}
