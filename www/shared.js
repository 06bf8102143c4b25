// What the console (index.html) and the worker tabs (worker.html) share: the demo's names and
// topology, connecting, channels that reopen after a channel error, DOM and number helpers,
// and the feed (a topic exchange shown as a list). Plain ES module; the package is ../pkg/index.js.

export const params = new URLSearchParams(location.search);
/** The broker every tab of the demo joins (?broker= picks another). */
export const BROKER = params.get('broker') || 'demo';
export const WORK_QUEUE = 'work';
export const FEED_EXCHANGE = 'feed';
/** A durable queue bound to chat.# with x-max-length: the chat history, peeked at on load. */
export const HISTORY_QUEUE = 'feed.history';
export const HISTORY_LENGTH = 50;
/** Each worker tab holds at most this many unacked jobs. */
export const WORKER_PREFETCH = 2;

export const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });
export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// ---- DOM -------------------------------------------------------------------------------------

export const $ = (id) => document.getElementById(id);

/** el('td', {class: 'num', dataset: {col: 'ready'}}, 'text', node…) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== 'string') node[k] = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) if (c !== undefined && c !== null && c !== false) node.append(c);
  return node;
}

/** Sets a node's text only when it changed (no needless layout, no screen-reader chatter). */
export function setText(node, text) {
  const s = String(text);
  if (node && node.textContent !== s) node.textContent = s;
}

// ---- numbers ---------------------------------------------------------------------------------

const isNum = (n) => typeof n === 'number' && Number.isFinite(n);
export const DASH = '—';
export const fmtNum = (n) => (isNum(n) ? Math.round(n).toLocaleString('en-US') : DASH);
export function fmtRate(n) {
  if (!isNum(n)) return DASH;
  if (n === 0) return '0/s';
  return `${n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US')}/s`;
}
export function fmtBytes(n) {
  if (!isNum(n)) return DASH;
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}
export const fmtTime = (ms) =>
  isNum(ms) ? new Date(ms).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : DASH;

/** An error as the console shows it: `Error 406: PRECONDITION_FAILED - …`. */
export const errorText = (e) => `Error${e?.code !== undefined ? ` ${e.code}` : ''}: ${e?.message ?? e}`;

/** A message body as text when it is UTF-8, else as hex. → {text, binary} */
export function bodyText(bytes) {
  try {
    return { text: strictDecoder.decode(bytes), binary: false };
  } catch {
    const hex = Array.from(bytes.subarray(0, 512), (b) => b.toString(16).padStart(2, '0')).join(' ');
    return { text: hex + (bytes.length > 512 ? ' …' : ''), binary: true };
  }
}

/** A field-table value as short text. */
export function valueText(v) {
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/**
 * Parses "key = value" lines (headers, arguments). A value that reads as JSON (a number,
 * true/false/null, a "quoted string", an array or object) is that; anything else is a string.
 * Throws an Error naming the bad line.
 */
export function parseTable(text) {
  const out = {};
  const lines = String(text ?? '').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith('#')) return;
    const at = line.indexOf('=');
    if (at <= 0) throw new Error(`line ${i + 1}: write key = value (got "${line.trim()}")`);
    const key = line.slice(0, at).trim();
    const raw = line.slice(at + 1).trim();
    let value = raw;
    if (raw !== '') {
      try {
        value = JSON.parse(raw);
      } catch {
        value = raw;
      }
    }
    out[key] = value;
  });
  return out;
}

export const uid = () =>
  globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

// ---- the package -----------------------------------------------------------------------------

/** Imports ../pkg/index.js and reads its version. → {tabbit, version} */
export async function loadTabbit() {
  const tabbit = await import('../pkg/index.js');
  const version = await tabbit.version(); // loads tabbit_bg.wasm, as connect() does
  return { tabbit, version };
}

/**
 * loadTabbit() for a page: shows the version in #version, or 'unavailable' and why through
 * `show(text, isError)` (then rethrows). Answers the package's module.
 */
export async function loadTabbitInto(show) {
  try {
    const { tabbit, version } = await loadTabbit();
    setText($('version'), version);
    return tabbit;
  } catch (e) {
    setText($('version'), 'unavailable');
    show(`Could not load ../pkg/index.js (build it with scripts/build-pkg, or run scripts/demo): ${e?.message ?? e}`, true);
    throw e;
  }
}

/**
 * Channels for one-off commands: `get()` answers an open channel, opening a new one after a
 * channel error closed the last (as in AMQP, a refused command closes its channel). Channel
 * errors are reported by the call's rejection; the 'error' listener only keeps them from
 * being reported as uncaught.
 */
export class ChannelSource {
  #conn;
  #confirm;
  #current = null;
  #setup;

  constructor(conn, { confirm = false, setup } = {}) {
    this.#conn = conn;
    this.#confirm = confirm;
    this.#setup = setup;
  }

  get() {
    if (!this.#current) {
      const p = (async () => {
        const ch = this.#confirm ? await this.#conn.createConfirmChannel() : await this.#conn.createChannel();
        ch.on('error', () => {});
        ch.on('close', () => {
          if (this.#current === p) this.#current = null;
        });
        await this.#setup?.(ch);
        return ch;
      })();
      this.#current = p;
      p.catch(() => {
        if (this.#current === p) this.#current = null;
      });
    }
    return this.#current;
  }
}

/** Publishes on a confirm channel; resolves once confirmed, rejects with the nack's error. */
export function publishConfirmed(ch, exchange, routingKey, content, options = {}) {
  return new Promise((ok, fail) => {
    try {
      ch.publish(exchange, routingKey, content, options, (err) => (err ? fail(err) : ok()));
    } catch (e) {
      fail(e);
    }
  });
}

/** Declares what the demo uses (every tab does, alike): the feed exchange, the work queue, the chat history. */
export async function declareDemo(ch) {
  await ch.assertExchange(FEED_EXCHANGE, 'topic', { durable: true });
  await ch.assertQueue(WORK_QUEUE, { durable: true });
  await ch.assertQueue(HISTORY_QUEUE, { durable: true, maxLength: HISTORY_LENGTH });
  await ch.bindQueue(HISTORY_QUEUE, FEED_EXCHANGE, 'chat.#');
}

// ---- the feed --------------------------------------------------------------------------------

/**
 * A live view of the topic exchange `feed`: an exclusive server-named queue bound with
 * `pattern`, consumed with noAck, shown newest first in `list`. Chat messages are
 * `chat.<room>` with a JSON body {from, text}; the workers post `job.done` and
 * `job.redelivered` with {from, job, count}. With conn.peek, the chat history (the durable
 * queue feed.history) is shown first. Re-subscribes if the broker cancels the consumer (its
 * exclusive queue lived in a host that died).
 */
export class Feed {
  constructor(conn, list, { pattern = '#', max = 100, onError } = {}) {
    this.conn = conn;
    this.list = list;
    this.pattern = pattern;
    this.max = max;
    this.onError = onError ?? (() => {});
    this.seen = new Set();
    this.ch = null;
    this.queue = null;
    this.closed = false;
  }

  async start() {
    await this.#subscribe();
    await this.showHistory();
  }

  async #subscribe() {
    const ch = await this.conn.createChannel();
    ch.on('error', (e) => this.onError(e));
    this.ch = ch;
    const { queue } = await ch.assertQueue('', { exclusive: true, durable: false });
    this.queue = queue;
    await ch.bindQueue(queue, FEED_EXCHANGE, this.pattern);
    await ch.consume(queue, (msg) => (msg === null ? this.#cancelled(ch) : this.#show(msg, false)), { noAck: true });
  }

  async #cancelled(ch) {
    if (this.closed || ch !== this.ch) return;
    // The queue went (its host died, or someone deleted it): subscribe again.
    await sleep(200);
    if (ch !== this.ch) return;
    ch.close().catch(() => {});
    this.#subscribe().catch((e) => this.onError(e));
  }

  /** Binds the feed's queue with `pattern` instead of the old one. */
  async setPattern(pattern) {
    if (pattern === this.pattern) return;
    const old = this.pattern;
    await this.ch.bindQueue(this.queue, FEED_EXCHANGE, pattern);
    await this.ch.unbindQueue(this.queue, FEED_EXCHANGE, old);
    this.pattern = pattern;
  }

  /** Shows the chat history (up to HISTORY_LENGTH messages, oldest first) if conn.peek exists. → whether it could. */
  async showHistory() {
    if (typeof this.conn.peek !== 'function') return false;
    const msgs = await this.conn.peek(HISTORY_QUEUE, HISTORY_LENGTH);
    // peek answers oldest first; the list is newest first, and live messages may be in it already.
    for (const msg of [...msgs].reverse()) this.#show(msg, true);
    return true;
  }

  #show(msg, history) {
    const id = msg.properties?.messageId;
    if (id) {
      if (this.seen.has(id)) return;
      this.seen.add(id);
    }
    const key = msg.fields?.routingKey ?? '';
    let data = null;
    try {
      data = JSON.parse(new TextDecoder().decode(msg.content));
    } catch {
      /* not JSON: shown as text */
    }
    const text = describe(key, data, msg);
    const at = msg.properties?.timestamp;
    const li = el(
      'li',
      { class: history ? 'history' : '', dataset: { key } },
      el('time', { text: fmtTime(at) }),
      el('code', { class: 'key', text: key }),
      text,
      history ? el('span', { class: 'visually-hidden', text: ' (history)' }) : null,
    );
    if (history) {
      // Older than anything shown live: goes below the live ones, in order.
      this.list.append(li);
    } else {
      this.list.prepend(li);
    }
    while (this.list.children.length > this.max) this.list.lastElementChild.remove();
  }

  close() {
    this.closed = true;
    this.ch?.close().catch(() => {});
  }
}

function describe(key, data, msg) {
  if (data && typeof data === 'object') {
    if (key.startsWith('chat.') && typeof data.text === 'string') return `${data.from ?? '?'}: ${data.text}`;
    if (key === 'job.done') return `${data.from} finished job ${data.job}${data.redelivered ? ' (it had been redelivered)' : ''}`;
    if (key === 'job.redelivered')
      return `${data.from} got job ${data.job} again: redelivered${data.count ? ` (delivery ${data.count + 1})` : ''}`;
  }
  return bodyText(msg.content).text;
}

/** Posts a chat message to the feed (persistent: it is kept in feed.history). */
export function chatOptions(from) {
  return { persistent: true, messageId: uid(), timestamp: Date.now(), contentType: 'application/json', appId: from };
}
