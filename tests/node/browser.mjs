// The shared scaffold of the browser tests and benchmarks in tests/node: a static server for the
// repository, Debian's Chromium driven by playwright-core, pages that record their errors, and
// the two DevTools tricks the storage tests need (crash a tab, shrink the storage quota).
//
//   import { startServer, launchBrowser, openPage, crashPage, setQuota, tempDir } from './browser.mjs';
//   const server = await startServer();                       // serves the repository root
//   const { context, close } = await launchBrowser();          // or launchBrowser({ userDataDir })
//   const { page, errors } = await openPage(context, server.url + BLANK);
//   const v = await page.evaluate(async () => {
//     const { version } = await import('/pkg/index.js');   // the package's main module
//     return await version();
//   });
//   assert.deepEqual(errors, []);                              // no console error, exception, rejection
//   await close(); await server.close();
//
// Needs pkg/ (scripts/build-pkg) and /usr/bin/chromium
// (scripts/setup installs it; CHROMIUM=/path overrides). playwright-core never downloads a browser.
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../../scripts/serve.mjs';

/** The repository root (what startServer serves). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Path of the blank test page, relative to the server's url: navigate here, then import /pkg/index.js. */
export const BLANK = 'tests/node/blank.html';

/** The `timeout` option every browser test gives node:test: `test(name, { timeout: TEST_TIMEOUT }, fn)`. */
export const TEST_TIMEOUT = Number(process.env.TEST_TIMEOUT_MS || 120_000);

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Root needs --no-sandbox; the rest keep Chromium off the (closed) network, quiet and small.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * Serves the repository root on 127.0.0.1, on a free port.
 * @returns {Promise<{url: string, origin: string, port: number, close: () => Promise<void>}>}
 *   url ends in '/'; origin is e.g. 'http://127.0.0.1:41234' (what setQuota wants).
 */
export async function startServer() {
  const s = await serve({ root: ROOT, port: 0, host: '127.0.0.1' });
  return { url: s.url, origin: new URL(s.url).origin, port: s.port, close: s.close };
}

/**
 * Launches headless Chromium. With `userDataDir`, a persistent context in that directory
 * (launchPersistentContext), so closing and relaunching with the same directory keeps IndexedDB;
 * without, a fresh browser with one new (incognito-like) context.
 * @param {{userDataDir?: string}} [options]
 * @returns {Promise<{context: import('playwright-core').BrowserContext,
 *                    browser: import('playwright-core').Browser | null, close: () => Promise<void>}>}
 */
export async function launchBrowser({ userDataDir } = {}) {
  const options = { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 };
  if (userDataDir) {
    const context = await chromium.launchPersistentContext(userDataDir, options);
    return { context, browser: context.browser(), close: () => context.close() };
  }
  const browser = await chromium.launch(options);
  const context = await browser.newContext();
  return {
    context,
    browser,
    close: async () => {
      await context.close().catch(() => {});
      await browser.close();
    },
  };
}

/**
 * Opens a new page in `context` at `url`. `errors` collects, as strings, every console.error,
 * uncaught exception and unhandled promise rejection of the page: a test asserts it is empty.
 * @returns {Promise<{page: import('playwright-core').Page, errors: string[]}>}
 */
export async function openPage(context, url) {
  const page = await context.newPage();
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console.error: ${msg.text()}`);
  });
  // Chromium reports both uncaught exceptions and unhandled rejections here.
  page.on('pageerror', (err) => errors.push(`page error: ${err.stack || err.message || err}`));
  await page.goto(url);
  return { page, errors };
}

const sessions = new WeakMap(); // page -> CDP session, kept open: a quota override lives with it

async function cdpSession(page) {
  let session = sessions.get(page);
  if (!session) {
    session = await page.context().newCDPSession(page);
    sessions.set(page, session);
  }
  return session;
}

/**
 * Crashes the page's renderer (CDP Page.crash), like a tab killed by the OS, and waits for the
 * page's 'crash' event. The CDP call itself never answers (the renderer is gone), so it is not
 * awaited. Throws if the page has not crashed within `timeoutMs`.
 */
export async function crashPage(page, timeoutMs = 10_000) {
  const crashed = new Promise((ok) => page.once('crash', () => ok(true)));
  const session = await page.context().newCDPSession(page);
  session.send('Page.crash').catch(() => {}); // rejects (target closed) or never resolves
  let timer;
  const timedOut = new Promise((ok) => (timer = setTimeout(() => ok(false), timeoutMs)));
  const ok = await Promise.race([crashed, timedOut]);
  clearTimeout(timer);
  if (!ok) throw new Error(`crashPage: the page did not crash within ${timeoutMs} ms`);
}

/**
 * Sets the storage quota of `origin` (e.g. server.origin) to `bytes` (CDP
 * Storage.overrideQuotaForOrigin); `bytes` null/undefined removes the override. The override
 * holds for the whole browser context while `page` stays open (it lives with the CDP session).
 * Lower it BEFORE the origin first opens IndexedDB: Chromium 156 keeps the quota it saw when it
 * opened the origin's IndexedDB, so a quota lowered later does not bite. A raised quota (or the
 * override removed) takes effect at once, also for writes that failed before.
 */
export async function setQuota(page, origin, bytes) {
  const session = await cdpSession(page);
  const params = bytes == null ? { origin } : { origin, quotaSize: bytes };
  await session.send('Storage.overrideQuotaForOrigin', params);
}

/**
 * A static server and a headless Chromium for the tests of one file: started before them and
 * closed after them, handed to `set(server, browser)` once both are up.
 */
export function useServerAndBrowser(set) {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    set(server, browser);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });
}

/** A new empty temporary directory (for userDataDir); remove it with removeDir. */
export function tempDir(prefix = 'tabbit-test-') {
  return mkdtemp(join(tmpdir(), prefix));
}

export function removeDir(dir) {
  return rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * mulberry32, a small seeded PRNG, for the random schedules of the mesh and fault tests:
 * int(n) in [0, n), pick(xs), chance(p).
 */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { int: (n) => Math.floor(next() * n), pick: (xs) => xs[Math.floor(next() * xs.length)], chance: (p) => next() < p };
}

/**
 * Polls `fn` every `interval` ms until it answers something truthy (returned); throws after
 * `timeout` ms, naming `what` (a string, or a function that tells the state at the time).
 */
export async function waitUntil(what, fn, timeout = 10_000, interval = 10) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${typeof what === 'function' ? await what() : what}`);
    }
    await new Promise((ok) => setTimeout(ok, interval));
  }
}
