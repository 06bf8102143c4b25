// Builds messages in one call each with amqplib's fixed shapes, instead of one property
// write per field from wasm.

// `sequence`, beyond amqplib: the message's position in its queue, rising with every message
// the queue takes and kept across restarts and failovers while the queue exists.
export function consumeFields(consumerTag, deliveryTag, redelivered, exchange, routingKey, sequence) {
  return { consumerTag, deliveryTag, redelivered, exchange, routingKey, sequence };
}

export function getFields(deliveryTag, redelivered, exchange, routingKey, messageCount, sequence) {
  return { deliveryTag, redelivered, exchange, routingKey, messageCount, sequence };
}

export function returnFields(replyCode, replyText, exchange, routingKey) {
  return { replyCode, replyText, exchange, routingKey };
}

export function peekFields(exchange, routingKey) {
  return { exchange, routingKey };
}

// Message content as amqplib hands it over. Where there is a Buffer (Node, Deno, Bun) it is
// one, with a buffer of its own (not a slice of the shared pool); elsewhere a Content, a
// Uint8Array whose toString(encoding) decodes as Buffer's does, so that msg.content.toString(),
// `${msg.content}` and JSON.parse(msg.content) work as with amqplib. The wasm copies the body
// straight into it.
const NodeBuffer =
  typeof globalThis.Buffer === 'function' && typeof globalThis.Buffer.allocUnsafeSlow === 'function' ? globalThis.Buffer : null;

let utf8Decoder;
let utf16Decoder;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Each byte as the character of that code (latin1), in chunks that fit an argument list. */
function latin1(bytes, mask = 0xff) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 0x2000) {
    const chunk = bytes.subarray(i, i + 0x2000);
    out += String.fromCharCode.apply(null, mask === 0xff ? chunk : chunk.map((b) => b & mask));
  }
  return out;
}

/** A message's content outside Node: a Uint8Array that reads as text the way Buffer does. */
export class Content extends Uint8Array {
  /**
   * The bytes from `start` to `end` as text: 'utf8' (the default; 'utf-8'), 'hex', 'base64',
   * 'base64url', 'latin1' ('binary'), 'ascii', or 'utf16le' ('ucs2'), as Buffer's toString.
   */
  toString(encoding = 'utf8', start = 0, end = this.length) {
    start = Math.max(0, Math.trunc(Number(start)) || 0);
    end = Math.min(this.length, end === undefined ? this.length : Math.trunc(Number(end)) || 0);
    if (end <= start) return '';
    const bytes = start === 0 && end === this.length ? this : this.subarray(start, end);
    switch (String(encoding).toLowerCase()) {
      case 'utf8':
      case 'utf-8':
        return (utf8Decoder ??= new TextDecoder()).decode(bytes);
      case 'hex': {
        let out = '';
        for (const b of bytes) out += HEX[b];
        return out;
      }
      case 'base64':
        return btoa(latin1(bytes));
      case 'base64url':
        return btoa(latin1(bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
      case 'latin1':
      case 'binary':
        return latin1(bytes);
      case 'ascii':
        return latin1(bytes, 0x7f);
      case 'utf16le':
      case 'utf-16le':
      case 'ucs2':
      case 'ucs-2':
        return (utf16Decoder ??= new TextDecoder('utf-16le')).decode(bytes.subarray(0, bytes.length & ~1));
      default:
        throw new TypeError(`Unknown encoding: ${encoding} (use 'utf8', 'hex', 'base64', 'base64url', 'latin1', 'ascii' or 'utf16le')`);
    }
  }

  /** As Buffer's: `{ type: 'Buffer', data: [bytes] }`. */
  toJSON() {
    return { type: 'Buffer', data: Array.from(this) };
  }
}

// Outside Node, contents under 4 KiB are carved out of a shared 64 KiB ArrayBuffer, as Node's
// Buffer.allocUnsafe() carves small Buffers out of its pool: one allocation for many messages
// instead of an ArrayBuffer each (in Chromium a view ~0.1-0.2 µs, an ArrayBuffer of its own
// ~0.5-0.9 µs). So `content.buffer` may hold other messages' contents too: use
// `content.slice()` for a copy of its own (before transferring its buffer, for one).
const POOL_BYTES = 64 * 1024;
const POOLED_BELOW = 4 * 1024;
let pool = null;
let poolUsed = 0;

/** An empty content of `length` bytes, for the wasm to fill. */
export function newContent(length) {
  if (NodeBuffer) return NodeBuffer.allocUnsafeSlow(length);
  if (length >= POOLED_BELOW) return new Content(length);
  // A pool whose buffer an app transferred away (detached: byteLength 0) is replaced.
  if (pool === null || pool.byteLength === 0 || poolUsed + length > POOL_BYTES) {
    pool = new ArrayBuffer(POOL_BYTES);
    poolUsed = 0;
  }
  const content = new Content(pool, poolUsed, length);
  poolUsed += (length + 7) & ~7; // each content 8-byte aligned, as a Float64Array view needs
  return content;
}

export function makeMessage(
  content, fields, contentType, contentEncoding, headers, deliveryMode, priority, correlationId,
  replyTo, expiration, messageId, timestamp, type, userId, appId,
) {
  return {
    content,
    fields,
    properties: {
      contentType, contentEncoding, headers, deliveryMode, priority, correlationId, replyTo,
      expiration, messageId, timestamp, type, userId, appId,
    },
  };
}

// An exception thrown by an app's callback (a consumer, a publish callback): reported as
// uncaught, as an event listener's would be, without stopping the broker.
export function reportUncaught(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else setTimeout(() => { throw e; });
}

// ---------------------------------------------------------------- the mesh's transport
// What the broker needs from the platform to span the contexts of an origin: a
// BroadcastChannel to carry posts, and Web Locks to pick the host and to learn that a
// context died. Every decision is in Rust (src/wasm/link.rs).

/** Whether this context can join a mesh (Web Locks and BroadcastChannel). */
export function meshAvailable() {
  return typeof BroadcastChannel === 'function' && typeof globalThis.navigator?.locks?.request === 'function';
}

/**
 * The time in microseconds since 1970, as finely as this context's clock tells it: a hosting
 * context's term (mesh::host::HostState::since) starts from it, so that two take-overs in one
 * millisecond still come in order.
 */
export function clockMicros() {
  const p = globalThis.performance;
  const ms = typeof p?.now === 'function' && typeof p.timeOrigin === 'number' ? p.timeOrigin + p.now() : Date.now();
  return Math.floor(ms * 1000);
}

/** What a context is called in the stats when connect() gets no label: the page's title or path, or the worker's kind and name. */
export function defaultLabel() {
  const g = globalThis;
  if (g.document) return g.document.title || g.location?.pathname || 'page';
  const kind =
    typeof g.SharedWorkerGlobalScope === 'function' && g instanceof g.SharedWorkerGlobalScope ? 'shared worker'
    : typeof g.ServiceWorkerGlobalScope === 'function' && g instanceof g.ServiceWorkerGlobalScope ? 'service worker'
    : typeof g.WorkerGlobalScope === 'function' && g instanceof g.WorkerGlobalScope ? 'worker'
    : 'context';
  const name = g.name || g.location?.pathname;
  return name ? `${kind} ${name}` : kind;
}

/** Posts larger than this are dropped unread (and counted). */
const MAX_POST_BYTES = 64 * 1024 * 1024;

/** Every open port of this instance, for closeAllPorts(). */
const ports = new Set();

/** After a panic: every port leaves, releasing its locks, so that other contexts go on. */
export function closeAllPorts() {
  for (const p of [...ports]) {
    try {
      p.close();
    } catch {
      // Closing the rest matters more.
    }
  }
}

export class Port {
  /**
   * @param {string} prefix the broker's resource prefix (mesh::resource_prefix): `tabbit:<name>`, or `tabbit@<app>:<name>`
   * @param {number} me this context's id
   * @param {(bytes: Uint8Array | undefined) => void} onPost a post from another context (undefined: one that is not ours)
   * @param {() => void} onHost this context now holds the host lock
   * @param {(id: number) => void} onGone the context `id` watched with watch() died or left
   * @param {() => void} onFrozen this page goes into the back/forward cache: it has left
   */
  constructor(prefix, me, onPost, onHost, onGone, onFrozen) {
    this.prefix = prefix;
    this.me = me;
    this.onHost = onHost;
    this.onGone = onGone;
    this.abort = new AbortController();
    this.releases = [];
    this.channel = new BroadcastChannel(this.prefix);
    this.channel.onmessage = (e) => {
      const d = e.data;
      onPost(d instanceof Uint8Array && d.byteLength <= MAX_POST_BYTES ? d : undefined);
    };
    this.channel.onmessageerror = () => onPost(undefined);
    // A page kept in the back/forward cache is frozen with its locks: it leaves instead, so
    // that another context hosts, or the host requeues what this one held.
    this.onPageHide = (e) => {
      if (e.persisted) {
        this.close();
        onFrozen();
      }
    };
    globalThis.addEventListener?.('pagehide', this.onPageHide);
    ports.add(this);
  }

  /** Holds a lock until close(); resolves when it is granted. */
  #hold(name, granted) {
    return new Promise((resolve, reject) => {
      navigator.locks
        .request(name, { signal: this.abort.signal }, () => {
          resolve();
          granted?.();
          return new Promise((release) => this.releases.push(release));
        })
        .catch((e) => (e?.name === 'AbortError' ? resolve() : reject(e)));
    });
  }

  /** Takes this context's own lock (held for its life), then queues for the host lock. */
  async start() {
    await this.#hold(`${this.prefix}:client:${this.me}`);
    this.#hold(`${this.prefix}:host`, () => this.onHost()).catch(() => {});
  }

  post(bytes) {
    this.channel.postMessage(bytes);
  }

  /** Calls onGone(id) once context `id` no longer holds its lock (it died or closed). */
  watch(id) {
    navigator.locks
      .request(`${this.prefix}:client:${id}`, { signal: this.abort.signal }, () => this.onGone(id))
      .catch(() => {});
  }

  /** The ids of the other contexts that hold their lock now. */
  async liveClients() {
    const { held = [] } = await navigator.locks.query();
    const start = `${this.prefix}:client:`;
    return held
      .map((l) => l.name)
      .filter((n) => n?.startsWith(start))
      .map((n) => Number(n.slice(start.length)))
      .filter((id) => Number.isSafeInteger(id) && id !== this.me);
  }

  /** Leaves: releases both locks (another context takes over hosting) and the channel. */
  close() {
    ports.delete(this);
    globalThis.removeEventListener?.('pagehide', this.onPageHide);
    this.abort.abort();
    for (const release of this.releases) release();
    this.releases = [];
    // Deaf at once, closed a macrotask later: Deno 2.9.6 breaks a BroadcastChannel opened in the
    // same turn as the last one closes (postMessage throws 'expected i32'), which is what
    // `await conn.close(); await connect()` does (tests/node/edge-deno.test.mjs).
    const channel = this.channel;
    channel.onmessage = channel.onmessageerror = null;
    setTimeout(() => channel.close(), 0);
  }
}
