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
// context died. Every decision is in Rust (src/api/link.rs).

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
    this.channel.close();
  }
}
