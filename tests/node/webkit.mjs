// A small W3C WebDriver client (fetch only, no dependency) and the launcher of WebKitGTK for the
// WebKit tests (tests/node/webkit.test.mjs): Debian's `webkit2gtk-driver` (WebKitWebDriver, which
// drives WebKitGTK's MiniBrowser) drawing into an `Xvfb` display. scripts/setup installs both.
//
//   import { launchWebKit } from './webkit.mjs';
//   const wk = await launchWebKit();          // null when the binaries are missing (see `missing`)
//   const s = await wk.session();             // one MiniBrowser window
//   await s.navigate(server.url + BLANK);
//   const v = await s.evaluate(async (x) => (await import('/pkg/index.js')).version(), 1);
//   await s.close(); await wk.close();
//
// As a command, it runs another command against a WebKitWebDriver of its own, then stops both:
//   node tests/node/webkit.mjs -- wasm-pack test --headless --firefox --geckodriver "$(command -v geckodriver)" . --lib --test '*'
// wasm-bindgen-test-runner (0.2.130) talks W3C WebDriver with our capabilities only on its Gecko
// path: it takes the driver's address from GECKODRIVER_REMOTE (before looking for any binary) and
// the capabilities from the file WASM_BINDGEN_TEST_WEBDRIVER_JSON names, to which it adds
// moz:firefoxOptions (WebKitWebDriver ignores it). Its Safari path sends empty capabilities, which
// cannot name MiniBrowser. This sets both variables; scripts/test's webkit stage uses it.
//
// The protocol is the W3C WebDriver spec, https://www.w3.org/TR/webdriver2/ (sections "New
// Session", "Navigate To", "Execute Async Script", "New Window", "Close Window", "Switch To
// Window"). The capability `webkitgtk:browserOptions` {binary, args: ['--automation']} is how
// WebKitGTK's driver is told which browser to run (the design notes' "Tooling known to work"):
// MiniBrowser started with --automation accepts the session. Checked here: each session's
// browser keeps website data for that session only (a new session starts with no IndexedDB
// database; a reload keeps them), and WebDriver returns objects with keys in no set order.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../runtimes/helpers.mjs';

export const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER ?? '/usr/bin/WebKitWebDriver';
export const XVFB = process.env.XVFB ?? '/usr/bin/Xvfb';
export const MINIBROWSER = process.env.MINIBROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';

/** The binaries launchWebKit needs that are not there (empty when WebKit can run). */
export function missing() {
  return [WEBKIT_DRIVER, XVFB, MINIBROWSER].filter((p) => !existsSync(p));
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Starts a process, keeping the tail of its output for error messages; `stop()` ends it. */
function start(cmd, args, env) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (d) => (log = (log + d).slice(-4000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((ok) => child.on('exit', (code, signal) => ok({ code, signal })));
  return {
    child,
    log: () => log,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited, sleep(3000).then(() => null)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** A WebDriver error with the driver's `error` code (e.g. 'javascript error', 'no such window'). */
export class WebDriverError extends Error {
  constructor(status, value, what) {
    super(`${what}: ${value?.error ?? status}: ${value?.message ?? JSON.stringify(value)}`);
    this.code = value?.error;
  }
}

/**
 * Starts Xvfb on a free display and WebKitWebDriver on a free port. Returns null when a binary is
 * missing. `session()` opens a new MiniBrowser (each session its own browser process, and its own
 * ephemeral website data: two sessions share no storage); `close()` ends the sessions, the
 * driver and the display.
 */
export async function launchWebKit() {
  if (missing().length > 0) return null;
  // A display no other X server has: Xvfb fails at once on one taken (its lock file exists).
  let xvfb;
  let display;
  for (let n = 90 + (process.pid % 500); ; n++) {
    if (existsSync(`/tmp/.X${n}-lock`)) continue;
    display = `:${n}`;
    xvfb = start(XVFB, [display, '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], {});
    // Xvfb has no "ready" signal but its socket; wait for it (or for its exit).
    const socket = `/tmp/.X11-unix/X${n}`;
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      if (xvfb.child.exitCode !== null) break;
      up = existsSync(socket);
      if (!up) await sleep(50);
    }
    if (up) break;
    await xvfb.stop();
    if (n > 90 + (process.pid % 500) + 20) throw new Error(`launchWebKit: Xvfb did not start: ${xvfb.log()}`);
  }
  const port = await freePort();
  const driver = start(WEBKIT_DRIVER, [`--port=${port}`, '--host=127.0.0.1'], { DISPLAY: display });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`${base}/status`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (driver.child.exitCode !== null || i > 200) {
      await driver.stop();
      await xvfb.stop();
      throw new Error(`launchWebKit: WebKitWebDriver did not start: ${driver.log()}`);
    }
    await sleep(50);
  }
  const sessions = new Set();
  return {
    display,
    port,
    driverLog: driver.log,
    async session() {
      const s = await Session.create(base);
      sessions.add(s);
      s.onClose = () => sessions.delete(s);
      return s;
    },
    async close() {
      for (const s of [...sessions]) await s.close().catch(() => {});
      await driver.stop();
      await xvfb.stop();
    },
  };
}

/** One WebDriver session: a MiniBrowser with one or more windows (tabs). */
export class Session {
  static async create(base) {
    const capabilities = {
      alwaysMatch: {
        browserName: 'MiniBrowser',
        ...BROWSER_OPTIONS,
      },
    };
    const value = await call(base, 'POST', '/session', { capabilities }, 'new session');
    const s = new Session(base, value.sessionId, value.capabilities);
    await s.cmd('POST', '/timeouts', { script: 60_000, pageLoad: 30_000 }, 'set timeouts');
    return s;
  }

  constructor(base, id, capabilities) {
    this.base = base;
    this.id = id;
    this.capabilities = capabilities;
    this.closed = false;
    this.onClose = null;
  }

  cmd(method, path, body, what) {
    return call(this.base, method, `/session/${this.id}${path}`, body, what);
  }

  navigate(url) {
    return this.cmd('POST', '/url', { url }, `navigate to ${url}`);
  }

  refresh() {
    return this.cmd('POST', '/refresh', {}, 'refresh');
  }

  /**
   * Runs `fn(...args)` (an async function, as source: it sees only its arguments, which must be
   * JSON) in the current window's page and resolves with what it resolves with (JSON). A throw
   * or rejection in the page rejects here with its stack.
   */
  async evaluate(fn, ...args) {
    const script = `const done = arguments[arguments.length - 1];
      Promise.resolve().then(() => (${fn}).apply(null, ${JSON.stringify(args)}))
        .then((value) => done({ value: value === undefined ? null : value }),
              (e) => done({ error: String((e && e.stack) || e) + (e && e.code !== undefined ? ' (code ' + e.code + ')' : '') }));`;
    const out = await this.cmd('POST', '/execute/async', { script, args: [] }, 'execute async script');
    if (out && 'error' in out) throw new Error(`in WebKit: ${out.error}`);
    return out?.value;
  }

  /** Opens a new tab (or window) and returns its handle; the current window stays current. */
  async newWindow(type = 'tab') {
    const { handle } = await this.cmd('POST', '/window/new', { type }, 'new window');
    return handle;
  }

  windowHandle() {
    return this.cmd('GET', '/window', undefined, 'get window handle');
  }

  windowHandles() {
    return this.cmd('GET', '/window/handles', undefined, 'get window handles');
  }

  switchTo(handle) {
    return this.cmd('POST', '/window', { handle }, 'switch to window');
  }

  /** Closes the current window; resolves with the handles left. Switch to one of them next. */
  closeWindow() {
    return this.cmd('DELETE', '/window', undefined, 'close window');
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.();
    await call(this.base, 'DELETE', `/session/${this.id}`, undefined, 'delete session');
  }
}

async function call(base, method, path, body, what) {
  const r = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${what}: HTTP ${r.status}, not JSON: ${text.slice(0, 200)}`);
  }
  if (!r.ok) throw new WebDriverError(r.status, json.value, what);
  return json.value;
}

/** The `webkitgtk:browserOptions` capability that runs MiniBrowser under automation. */
export const BROWSER_OPTIONS = { 'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] } };

// ---- as a command: node tests/node/webkit.mjs -- <command...> ----------------------------------
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const at = process.argv.indexOf('--');
  const command = at < 0 ? [] : process.argv.slice(at + 1);
  if (command.length === 0) {
    console.error('usage: node tests/node/webkit.mjs -- <command> [args...]  (runs it with GECKODRIVER_REMOTE at a WebKitWebDriver)');
    process.exit(2);
  }
  const wk = await launchWebKit();
  if (!wk) {
    console.error(`tests/node/webkit.mjs: WebKit is not installed (missing ${missing().join(', ')}): scripts/setup installs webkit2gtk-driver and xvfb`);
    process.exit(1);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tabbit-webkit-'));
  const capabilities = join(dir, 'webdriver.json');
  writeFileSync(capabilities, JSON.stringify(BROWSER_OPTIONS));
  const env = { ...process.env, GECKODRIVER_REMOTE: `http://127.0.0.1:${wk.port}`, WASM_BINDGEN_TEST_WEBDRIVER_JSON: capabilities };
  const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  const code = await new Promise((ok) => child.on('exit', (c, signal) => ok(c ?? (signal ? 1 : 0))));
  await wk.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
