// tabbit's main module: amqplib's API over the broker compiled to wasm. `connect()` loads
// the wasm on first use. The classes here only turn the binding's answers into promises
// and events; every decision is in Rust (src/wasm/channel.rs and below).
import init, {
  RawBroker, version as wasmVersion, onPanic, resourcePrefix, StompCodec, stompDestinationError,
} from './tabbit.js';
import { Bridge, bridgeConfig, declareOutboxes, runBridges } from './bridge.js';

/** The wasm binding in use: the one imported above, or a fresh instance after a panic. */
let binding = {
  init, RawBroker, version: wasmVersion, onPanic, resourcePrefix, StompCodec, stompDestinationError,
};
let loading;
/** What the wasm was loaded from, to load a fresh instance from after a panic. */
let loadedFrom;
/** After a panic: the error pending calls fail with, until the fresh instance is loaded. */
let broken = null;
let instances = 0;

/** Loads the wasm once: `wasm` (bytes or a WebAssembly.Module) if given, else the file beside this module. */
function load(wasm) {
  loading ??= (async () => {
    if (broken) {
      // The instance that panicked is gone for good: a module imported anew has its own.
      try {
        const m = await import(/* @vite-ignore */ /* webpackIgnore: true */ `./tabbit.js?instance=${++instances}`);
        binding = {
          init: m.default, RawBroker: m.RawBroker, version: m.version, onPanic: m.onPanic,
          resourcePrefix: m.resourcePrefix, StompCodec: m.StompCodec,
          stompDestinationError: m.stompDestinationError,
        };
      } catch (e) {
        throw failed(`${broken.message} (a fresh instance could not be loaded: ${e?.message ?? e}; reload the page)`, 541);
      }
      wasm ??= loadedFrom;
    }
    let source = wasm;
    if (source === undefined && typeof process === 'object' && process.versions?.node && !globalThis.Deno) {
      // Node's fetch cannot read file: URLs. The specifier is a variable, and marked, so that
      // bundlers leave this Node-only import alone (Vite warns about, webpack fails on, a
      // `node:` import in code for the browser).
      const fsModule = 'node:fs/promises';
      const { readFile } = await import(/* @vite-ignore */ /* webpackIgnore: true */ fsModule);
      source = await readFile(new URL('./tabbit_bg.wasm', import.meta.url));
    }
    try {
      await binding.init(source === undefined ? undefined : { module_or_path: source });
      loadedFrom = source;
      broken = null;
      binding.onPanic(panicked);
    } catch (e) {
      throw failed(
        `could not load tabbit's wasm (${e?.message ?? e}); where the file beside the package cannot be ` +
          'fetched (Cloudflare Workers, some bundlers), pass it: connect({ wasm }) with its bytes or a WebAssembly.Module',
        506,
      );
    }
  })();
  loading.catch(() => (loading = undefined));
  return loading;
}

/** The package version. */
export async function version() {
  await load();
  return binding.version();
}

/**
 * tabbit panicked (a bug): its wasm instance has stopped for good. Every connection of this
 * context fails with code 541, the instance's mesh ports have left (so another context hosts),
 * and the next connect() loads a fresh instance.
 */
function panicked(message) {
  broken = failed(
    `tabbit stopped on an internal error (a bug, please report it: ${message}); its connections in this ` +
      'context are closed: connect again',
    541,
  );
  const open = [...brokers.values()].flatMap((entry) => [...entry.open]);
  const bridges = [...brokers.values()].map((entry) => entry.stopBridges);
  brokers.clear();
  closing.clear();
  loading = undefined;
  // After the current call has failed: the instance traps as soon as this returns.
  queueMicrotask(() => {
    open.forEach((conn) => conn[DEAD](broken));
    // Their WebSockets close; the instance can run no Runner.
    bridges.forEach((stop) => stop?.());
  });
}

/** Runs a binding call; after a panic, its trap becomes the panic's error. */
function guard(fn) {
  if (broken) throw broken;
  try {
    return fn();
  } catch (e) {
    throw broken && e instanceof WebAssembly.RuntimeError ? broken : e;
  }
}

function failed(message, code) {
  const e = new Error(message);
  e.code = code;
  return e;
}

/** A small EventEmitter: on/once/off/emit, as amqplib's objects are emitters (exported: the types name it). */
export class Emitter {
  #listeners = new Map();

  on(name, fn) {
    const list = this.#listeners.get(name) ?? [];
    list.push(fn);
    this.#listeners.set(name, list);
    return this;
  }

  once(name, fn) {
    const wrapper = (...args) => {
      this.off(name, wrapper);
      fn(...args);
    };
    wrapper.listener = fn;
    return this.on(name, wrapper);
  }

  off(name, fn) {
    const list = this.#listeners.get(name);
    if (list) {
      const i = list.findIndex((f) => f === fn || f.listener === fn);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  addListener(name, fn) {
    return this.on(name, fn);
  }

  removeListener(name, fn) {
    return this.off(name, fn);
  }

  listenerCount(name) {
    return this.#listeners.get(name)?.length ?? 0;
  }

  emit(name, ...args) {
    const list = this.#listeners.get(name);
    if (!list?.length) {
      // As an EventEmitter does, an 'error' nobody listens to is not silent.
      if (name === 'error') report(args[0]);
      return false;
    }
    for (const fn of [...list]) {
      try {
        fn(...args);
      } catch (e) {
        report(e);
      }
    }
    return true;
  }
}

function report(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else setTimeout(() => { throw e; });
}

/** Runs a binding call as a promise: a thrown error becomes a rejection. */
/**
 * A message's delivery tag, read here rather than by the binding (two property reads across
 * the boundary per ack); anything else goes as it is, for the binding to accept or refuse.
 */
const tagOf = (m) => (typeof m?.fields?.deliveryTag === 'number' ? m.fields.deliveryTag : m);

function promise(fn) {
  try {
    return Promise.resolve(guard(fn));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** The binding under a channel: for this module's classes only. */
const RAW = Symbol('tabbit.raw');
/** Closes a connection or channel whose wasm instance panicked: 'error', then 'close'. */
const DEAD = Symbol('tabbit.dead');

// ---- structured values: publish(…, value, { structured: true }) -----------------------------

/** The contentType of a message whose content is a structured value. */
export const STRUCTURED = 'application/x-tabbit-structured';

const T = { undef: 0, nul: 1, f: 2, t: 3, num: 4, big: 5, str: 6, date: 7, re: 8, arr: 9, obj: 10, map: 11, set: 12, buf: 13, view: 14, err: 15, ref: 16 };
const VIEWS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView];
const ERRORS = ['Error', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError', 'TypeError', 'URIError'];
const text = { enc: new TextEncoder(), dec: new TextDecoder() };

/**
 * Encodes what structuredClone() copies, as bytes: primitives (bigint included), Date, RegExp,
 * Array, plain objects, Map, Set, ArrayBuffer, typed arrays, DataView and Error, with shared
 * references and cycles kept. Anything else (a function, a symbol, a Blob, a DOM node) throws 406.
 */
export function encodeValue(value) {
  let buf = new Uint8Array(256);
  let dv = new DataView(buf.buffer);
  let at = 0;
  const seen = new Map();
  const room = (n) => {
    if (at + n <= buf.length) return;
    const next = new Uint8Array(Math.max(buf.length * 2, at + n));
    next.set(buf);
    buf = next;
    dv = new DataView(buf.buffer);
  };
  const byte = (b) => (room(1), (buf[at++] = b));
  const uint = (n) => {
    room(4);
    dv.setUint32(at, n);
    at += 4;
  };
  const bytes = (u8) => (uint(u8.length), room(u8.length), buf.set(u8, at), (at += u8.length));
  const str = (s) => bytes(text.enc.encode(s));
  const put = (v) => {
    switch (typeof v) {
      case 'undefined': return byte(T.undef);
      case 'boolean': return byte(v ? T.t : T.f);
      case 'number': return (byte(T.num), room(8), dv.setFloat64(at, v), (at += 8));
      case 'bigint': return (byte(T.big), str(v.toString()));
      case 'string': return (byte(T.str), str(v));
      case 'object': break;
      default: throw failed(`a ${typeof v} cannot be a structured message's content (it cannot be cloned)`, 406);
    }
    if (v === null) return byte(T.nul);
    if (seen.has(v)) return (byte(T.ref), uint(seen.get(v)));
    seen.set(v, seen.size);
    if (v instanceof Date) return (byte(T.date), room(8), dv.setFloat64(at, v.getTime()), (at += 8));
    if (v instanceof RegExp) return (byte(T.re), str(v.source), str(v.flags));
    if (v instanceof ArrayBuffer) return (byte(T.buf), bytes(new Uint8Array(v)));
    if (ArrayBuffer.isView(v)) {
      const kind = VIEWS.findIndex((K) => v instanceof K);
      if (kind < 0) throw failed(`a ${v.constructor?.name} cannot be a structured message's content`, 406);
      return (byte(T.view), byte(kind), bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
    }
    if (v instanceof Error) {
      return (byte(T.err), str(ERRORS.includes(v.name) ? v.name : 'Error'), str(String(v.message)), str(v.stack ?? ''));
    }
    if (Array.isArray(v)) {
      byte(T.arr);
      uint(v.length);
      for (let i = 0; i < v.length; i++) put(v[i]);
      return;
    }
    if (v instanceof Map) {
      byte(T.map);
      uint(v.size);
      for (const [k, x] of v) (put(k), put(x));
      return;
    }
    if (v instanceof Set) {
      byte(T.set);
      uint(v.size);
      for (const x of v) put(x);
      return;
    }
    const proto = Object.getPrototypeOf(v);
    const plain = proto === Object.prototype || proto === null;
    if (!plain && (typeof v.constructor !== 'function' || /^(Blob|File|ImageData|ImageBitmap|MessagePort|Node|Window|WeakMap|WeakSet|Promise)$/.test(v.constructor.name) || typeof Node === 'function' && v instanceof Node)) {
      throw failed(`a ${v.constructor?.name ?? 'value of this kind'} cannot be a structured message's content`, 406);
    }
    const keys = Object.keys(v);
    byte(T.obj);
    uint(keys.length);
    for (const k of keys) (str(k), put(v[k]));
  };
  put(value);
  return buf.slice(0, at);
}

/** Decodes encodeValue()'s bytes; throws 406 on bytes it did not write. */
export function decodeValue(bytes) {
  // A plain view: a Buffer's slice() shares its memory, where Uint8Array's copies.
  bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const refs = [];
  const bad = () => failed('not a structured value: the bytes are cut short or corrupt', 406);
  const need = (n) => {
    if (at + n > bytes.length) throw bad();
  };
  const byte = () => (need(1), bytes[at++]);
  const uint = () => (need(4), (at += 4), dv.getUint32(at - 4));
  const raw = () => {
    const n = uint();
    need(n);
    return bytes.subarray(at, (at += n));
  };
  const str = () => text.dec.decode(raw());
  const f64 = () => (need(8), (at += 8), dv.getFloat64(at - 8));
  const keep = (v) => (refs.push(v), v);
  const get = () => {
    switch (byte()) {
      case T.undef: return undefined;
      case T.nul: return null;
      case T.f: return false;
      case T.t: return true;
      case T.num: return f64();
      case T.big: return BigInt(str());
      case T.str: return str();
      case T.date: return keep(new Date(f64()));
      case T.re: return keep(new RegExp(str(), str()));
      case T.buf: return keep(raw().slice().buffer);
      case T.view: {
        const K = VIEWS[byte()];
        if (!K) throw bad();
        const b = raw().slice().buffer;
        const n = K === DataView ? b.byteLength : b.byteLength / K.BYTES_PER_ELEMENT;
        if (!Number.isInteger(n)) throw bad();
        return keep(K === DataView ? new DataView(b) : new K(b));
      }
      case T.err: {
        const name = str();
        const E = globalThis[ERRORS.includes(name) ? name : 'Error'];
        const e = keep(new E(str()));
        e.stack = str();
        return e;
      }
      case T.arr: {
        const n = uint();
        need(n);
        const a = keep(new Array(n));
        for (let i = 0; i < n; i++) a[i] = get();
        return a;
      }
      case T.map: {
        const n = uint();
        const m = keep(new Map());
        for (let i = 0; i < n; i++) m.set(get(), get());
        return m;
      }
      case T.set: {
        const n = uint();
        const s = keep(new Set());
        for (let i = 0; i < n; i++) s.add(get());
        return s;
      }
      case T.obj: {
        const n = uint();
        const o = keep({});
        for (let i = 0; i < n; i++) {
          const k = str();
          Object.defineProperty(o, k, { value: get(), enumerable: true, writable: true, configurable: true });
        }
        return o;
      }
      case T.ref: {
        const i = uint();
        if (i >= refs.length) throw bad();
        return refs[i];
      }
      default:
        throw bad();
    }
  };
  const v = get();
  if (at !== bytes.length) throw bad();
  return v;
}

/** Publish options without `structured`, and the content to send. */
function outgoing(content, options) {
  if (!options?.structured) return [content, options];
  const { structured, ...rest } = options;
  if (rest.contentType !== undefined && rest.contentType !== STRUCTURED) {
    throw failed(`a structured message's contentType is '${STRUCTURED}': leave contentType out`, 406);
  }
  return [encodeValue(content), { ...rest, contentType: STRUCTURED }];
}

/** With `structured`, a message that carries a structured value gets it decoded as `value`. */
function incoming(msg, structured) {
  if (structured && msg && msg.properties.contentType === STRUCTURED) msg.value = decodeValue(msg.content);
  return msg;
}

/** Brokers open in this context, by name: every connect() to a name shares one. */
const brokers = new Map();
/** Brokers closing, by name: a new one on the name waits, so that two never share its storage. */
const closing = new Map();

/** bridge()'s options checked and completed (406 with what to change), STOMP destinations by the binding. */
const checkBridge = (options) => bridgeConfig(options, failed, (d, subscribe) => guard(() => binding.stompDestinationError(d, subscribe)) ?? null);

/**
 * Connects to broker `name` (default 'default') of this origin, in namespace `app` (default: none,
 * the names tabbit used before namespaces; see resourcePrefix). `storage`: 'indexeddb' (the
 * default where IndexedDB exists), 'memory', or an adapter `{ load(), write(writes) }`.
 * `wasm`: the module's bytes or a WebAssembly.Module, for runtimes that cannot fetch it.
 * `limits`: { maxMessageBytes, maxQueues, maxExchanges, maxBindings, maxConsumers, maxChannels,
 * maxQueueLength } for the broker while this context hosts it.
 * `label`: what this context is called in stats().contexts (default: the page's title or path,
 * or the worker's kind and name).
 * `mesh` (default true): every tab and worker of the origin that connects to `name` joins one
 * broker, hosted by one of them, where Web Locks and BroadcastChannel exist; false keeps the
 * broker to this context.
 */
export async function connect(options = {}) {
  if (typeof options !== 'object' || options === null) {
    throw failed(
      "connect() takes options such as { name: 'app' }, not a URL: tabbit runs in this page, not on a server",
      406,
    );
  }
  const { name = 'default', storage, wasm, mesh = true, label, limits, app } = options;
  if (typeof name !== 'string') throw failed("connect(): 'name' must be a string", 406);
  if (app !== undefined && typeof app !== 'string') throw failed("connect(): 'app' must be a string", 406);
  if (typeof mesh !== 'boolean') throw failed("connect(): 'mesh' must be true or false", 406);
  if (label !== undefined && typeof label !== 'string') throw failed("connect(): 'label' must be a string", 406);
  if (options.persist !== undefined && typeof options.persist !== 'boolean') throw failed("connect(): 'persist' must be true or false", 406);
  await load(wasm);
  // What the broker's IndexedDB database, locks and channels are named after: one per (app, name).
  const key = guard(() => binding.resourcePrefix(name, app));
  let entry = brokers.get(key);
  while (!entry && closing.has(key)) {
    await closing.get(key);
    entry = brokers.get(key);
  }
  if (!entry) {
    entry = { broker: binding.RawBroker.open(name, storage, mesh, label, limits, app), storage, mesh, connections: 0, open: new Set() };
    brokers.set(key, entry);
    entry.broker.then(
      (b) => {
        entry.stopBridges = runBridges(b, {
          // The bridges' own connection: not counted, so it never keeps the broker open.
          openConnection: () => new Connection(b, () => Promise.resolve()),
          binding: () => binding,
          check: checkBridge,
        });
        b.onFailover((info) => entry.open.forEach((c) => c.emit('failover', info)));
      },
      () => brokers.delete(key),
    );
  } else if ((storage !== undefined && storage !== entry.storage) || mesh !== entry.mesh) {
    throw failed(
      `broker '${name}' is open already with other storage or mesh options in this context: connect with the same ones, or close it first`,
      406,
    );
  }
  // Counted before the wait, so that a connection closing meanwhile does not close it.
  entry.connections += 1;
  let broker;
  try {
    broker = await entry.broker;
  } catch (e) {
    entry.connections -= 1;
    throw e;
  }
  const conn = new Connection(broker, () => {
    entry.open.delete(conn);
    entry.connections -= 1;
    if (entry.connections > 0) return Promise.resolve();
    brokers.delete(key);
    const done = broker.close();
    closing.set(key, done);
    done.finally(() => closing.get(key) === done && closing.delete(key));
    return done;
  });
  entry.open.add(conn);
  if (options.persist) requestPersist(); // answered in conn.persist() and storageInfo().persist
  return conn;
}

// ---- storage: persistence on request, and what the app is told (docs/storage.md) ------------
// Browsers evict an origin's best-effort storage (IndexedDB included) under storage pressure,
// and Safari deletes the storage of a site not used for 7 days; storage the browser agreed to
// persist (navigator.storage.persist()) is evicted only by the user. StorageManager:
// https://storage.spec.whatwg.org/#storagemanager (persist() is [Exposed=Window] only: a
// worker can ask persisted() and estimate() but not persist()).

/** Channel → its Connection, for the storage warning on persistent publishes. */
const OWNER = Symbol('tabbit.owner');
/** Connection method a channel calls after a persistent publish: (exchange, routingKey). */
const PERSISTENT = Symbol('tabbit.persistent');

/** This context's navigator.storage.persist() request: null until asked. */
let persistRequest = null;

/**
 * Asks the browser to persist the origin's storage, once per context (connect({ persist: true })
 * or conn.persist()), or again with `again` after a refusal (conn.persist(), say from a click).
 * Resolves with the answer: true (persisted), false (refused), null (this context cannot ask:
 * no navigator.storage.persist, as in workers and WebKitGTK).
 */
function requestPersist(again = false) {
  if (!persistRequest || (again && persistRequest.state === 'denied')) {
    const storage = globalThis.navigator?.storage;
    const request = { state: 'pending', answer: null };
    if (typeof storage?.persist !== 'function') {
      request.state = 'unavailable';
      request.answer = Promise.resolve(null);
    } else {
      request.answer = Promise.resolve()
        .then(() => storage.persist())
        .then(
          (granted) => {
            request.state = granted === true ? 'granted' : 'denied';
            return granted === true;
          },
          () => {
            request.state = 'denied'; // rejected (e.g. a document not fully active): not persisted
            return false;
          },
        );
    }
    persistRequest = request;
  }
  return persistRequest.answer;
}

/** StorageInfo: what the origin's storage manager says about the storage of a broker of `kind`. */
async function storageInfo(kind) {
  // Only IndexedDB is the origin's storage; memory and adapters are not the browser's to evict.
  const storage = kind === 'indexeddb' ? globalThis.navigator?.storage : undefined;
  const ask = async (method) => {
    try {
      return typeof storage?.[method] === 'function' ? await storage[method]() : null;
    } catch {
      return null; // e.g. a SecurityError in an opaque origin: the platform cannot say
    }
  };
  const [persisted, estimate] = await Promise.all([ask('persisted'), ask('estimate')]);
  const bytes = (n) => (typeof n === 'number' && Number.isFinite(n) ? n : null);
  return {
    kind,
    persisted: typeof persisted === 'boolean' ? persisted : null,
    usage: bytes(estimate?.usage),
    quota: bytes(estimate?.quota),
    persist: persistRequest?.state ?? null,
  };
}

/** Whether a message published to `exchange` with `routingKey` can land in a durable queue (stats() view). */
function reachesDurableQueue(stats, exchange, routingKey) {
  const durable = new Set(stats.queues.filter((q) => q.durable).map((q) => q.name));
  if (exchange === '') return durable.has(routingKey);
  // Through bindings, exchange to exchange too; routing keys are not matched (it may warn once too often).
  const seen = new Set([exchange]);
  const todo = [exchange];
  while (todo.length) {
    const source = todo.pop();
    for (const b of stats.bindings) {
      if (b.source !== source) continue;
      if (b.destinationType === 'queue' && durable.has(b.destination)) return true;
      if (b.destinationType === 'exchange' && !seen.has(b.destination)) {
        seen.add(b.destination);
        todo.push(b.destination);
      }
    }
  }
  return false;
}

/**
 * The 'storage' warning of connection `conn`, whose storage state is `state` ({done, seen,
 * checks}): after a persistent publish, checks once per destination (a queue by name, or an
 * exchange) whether the origin's storage is not known to be persisted while the message can
 * land in a durable queue; emits 'storage' once. Never again once it warned, or once the
 * storage is found not to be the origin's or persisted.
 */
function checkStorage(conn, state, exchange, routingKey) {
  const key = exchange === '' ? `queue ${routingKey}` : `exchange ${exchange}`;
  if (state.done || state.seen.has(key)) return;
  state.seen.add(key);
  const check = (async () => {
    const info = await storageInfo(conn.storage);
    if (info.kind !== 'indexeddb' || info.persisted === true) return (state.done = true);
    if (state.done || !reachesDurableQueue(await conn.stats(), exchange, routingKey) || state.done) return;
    state.done = true;
    conn.emit('storage', info);
  })()
    .catch(() => state.seen.delete(key)) // a closed connection, a failover under way: the next publish checks again
    .finally(() => state.checks.delete(check));
  state.checks.add(check);
}

/** Tells the channel's connection of a persistent publish (amqplib: persistent, or deliveryMode 2). */
function notePersistent(channel, exchange, routingKey, options) {
  if (options && (options.persistent === true || options.deliveryMode === 2)) channel[OWNER]?.[PERSISTENT](exchange, routingKey);
}

/**
 * A connection to a broker: amqplib's Connection. Events: 'close', 'error', and beyond
 * amqplib 'failover' ({hosting, cancelled, notRestored}) after another context took over hosting the broker.
 */
export class Connection extends Emitter {
  #broker;
  #raw;
  #release;
  #channels = new Set();
  #closed = false;
  /** The error of a panic that stopped this connection's wasm instance. */
  #dead = null;
  /** The bridges this connection declared. */
  #bridges = new Set();

  constructor(broker, release) {
    super();
    this.#broker = broker;
    this.#raw = broker.connect();
    this.#release = release;
  }

  /** The broker binding, unless a panic stopped its instance. */
  get #b() {
    if (this.#dead) throw this.#dead;
    return this.#broker;
  }

  /** 'indexeddb', 'memory' or 'adapter'. */
  get storage() {
    return this.#b.storage;
  }

  /** Whether this context hosts the broker now (the others send it their commands). */
  get hosting() {
    return !this.#dead && this.#broker.hosting;
  }

  /** Stored records that recovery skipped, each with why. */
  get problems() {
    return this.#b.problems;
  }

  #open(Kind, confirm) {
    if (this.#closed) return Promise.reject(failed('connection is closed: connect again', 504));
    return promise(() => {
      const ch = new Kind(this.#raw, confirm);
      ch[OWNER] = this;
      this.#channels.add(ch);
      ch.once('close', () => this.#channels.delete(ch));
      return ch;
    });
  }

  createChannel() {
    return this.#open(Channel, false);
  }

  createConfirmChannel() {
    return this.#open(ConfirmChannel, true);
  }

  [DEAD](error) {
    this.#dead = error;
    if (this.#closed) return;
    this.#closed = true;
    for (const ch of [...this.#channels]) ch[DEAD](error);
    this.emit('error', error);
    this.emit('close');
  }

  /** Closes the connection: its channels close (unacked messages go back), its exclusive queues go, its bridges are let go. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const b of [...this.#bridges]) b.close();
    if (!this.#dead) this.#raw.close();
    await this.#release();
    this.emit('close');
  }

  /** Resolves when every write made so far is stored. */
  flush() {
    return this.#b.flush().then(() => undefined);
  }

  /**
   * Beyond amqplib: when the broker next has something due (a TTL, a delayed message, an
   * x-expires lease), in ms since the epoch; null if nothing is, or if another context hosts.
   * The broker runs it on its own timer; a host that can be evicted (a Durable Object) sets an
   * alarm for it.
   */
  nextWakeup() {
    return this.#b.nextWakeup() ?? null;
  }

  /** The broker's exchanges, queues, bindings, contexts, totals and rates, for a management view. */
  async stats() {
    const stats = await this.#b.stats();
    stats.bridges = guard(() => this.#b.bridges());
    return stats;
  }

  /**
   * Beyond amqplib: bridges this broker to a RabbitMQ server over Web-STOMP (docs/bridge.md in the repository).
   * Resolves once the context hosting the broker runs the bridge (it connects, and reconnects,
   * in the background: see `status`). The outbox queues are declared and bound first, so that
   * messages published after this resolves wait for RabbitMQ even while it cannot be reached.
   */
  async bridge(options) {
    if (this.#closed) throw failed('connection is closed: connect again', 504);
    const config = checkBridge(options);
    if (typeof WebSocket !== 'function') {
      throw failed('bridge(): this runtime has no WebSocket: bridge from a browser page or worker, Deno or workerd', 540);
    }
    await declareOutboxes(this, config, (q) => promise(() => this.#b.queueArguments(q)));
    await promise(() => this.#b.declareBridge(config.name, config));
    // After a panic the bridge has no status, and is let go with the instance.
    const broker = {
      bridges: () => (this.#dead || broken ? [] : this.#broker.bridges()),
      undeclare: (name) => this.#dead || broken || this.#broker.undeclareBridge(name),
    };
    const handle = new Bridge(broker, config.name, (h) => this.#bridges.delete(h));
    this.#bridges.add(handle);
    return handle;
  }

  /**
   * Beyond amqplib: a Web-STOMP endpoint of this broker, as RabbitMQ's Web-STOMP plugin serves
   * (docs/edge-deno.md in the repository). Only the context hosting the broker can serve.
   * `authenticate(login, passcode, host, request)` says (or resolves to) whether a CONNECT's
   * credentials are good; `allowAnonymous` lets a CONNECT without login in; `limits`:
   * { maxFrameBytes, maxConnections, maxSubscriptions, connectTimeoutMs }.
   */
  stompEndpoint(options) {
    if (this.#closed) throw failed('connection is closed: connect again', 504);
    return new StompEndpoint(guard(() => this.#b.stompEndpoint(options)));
  }

  // ---- storage (the functions are above the class) ----
  #storageState = { done: false, seen: new Set(), checks: new Set() };

  /**
   * Beyond amqplib: { kind, persisted, usage, quota, persist } — the storage kind, whether the
   * browser persists the origin's storage, its usage and quota in bytes (null where the platform
   * cannot say, or the storage is not the origin's), and this context's persist request
   * ('pending', 'granted', 'denied', 'unavailable', or null if not asked). Waits for the storage
   * checks under way (see the 'storage' event), so that an event they lead to comes first.
   */
  async storageInfo() {
    await Promise.all(this.#storageState.checks);
    const [info, stats] = await Promise.all([storageInfo(this.storage), this.stats().catch(() => null)]);
    return { ...info, emptied: stats?.storageEmptied ?? null };
  }

  /**
   * Beyond amqplib: asks the browser to persist the origin's storage (once per context, as
   * `connect({ persist: true })` does, and again after a refusal). Resolves true (persisted),
   * false (refused) or null (no persist() here: workers, some browsers). Firefox shows the user
   * a prompt: call it from a user action there.
   */
  persist() {
    return requestPersist(true);
  }

  [PERSISTENT](exchange, routingKey) {
    checkStorage(this, this.#storageState, exchange, routingKey);
  }

  /** Beyond amqplib, for a management view: up to `count` (default 10) messages at the head of `queue`, not consumed. */
  async peek(queue, count) {
    if (typeof queue !== 'string') throw failed('peek(queue, count): queue must be a string', 406);
    if (count !== undefined && !(Number.isInteger(count) && count >= 0)) {
      throw failed('peek(queue, count): count must be a whole number', 406);
    }
    return this.#b.peek(queue, count);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A Web-STOMP endpoint (`conn.stompEndpoint()`): it serves sockets; the protocol is in Rust (src/bridge/server.rs). */
export class StompEndpoint {
  #raw;

  constructor(raw) {
    this.#raw = raw;
  }

  /** Sockets served now. */
  get connections() {
    return guard(() => this.#raw.connections);
  }

  /**
   * Serves a socket of yours: tabbit calls `send(Uint8Array)` for each frame to send and `close()`
   * to close it. Give what it receives to `receive(data)` and call `closed()` when it closes.
   * A hibernatable endpoint calls `save(state)` with the session's state (a string) as it
   * changes; `state`, one that `save` got, makes that session again on a socket that stayed open.
   */
  open({ send, close, request, save, state } = {}) {
    if (typeof send !== 'function' || typeof close !== 'function') {
      throw failed('stompEndpoint().open({ send, close, request }): send and close must be functions', 406);
    }
    if (save !== undefined && typeof save !== 'function') throw failed('stompEndpoint().open(): save must be a function (state) => void', 406);
    if (state !== undefined && typeof state !== 'string') throw failed('stompEndpoint().open(): state must be a string that save() got', 406);
    const n = guard(() => this.#raw.open(send, close, request, save, state));
    return { receive: (data) => guard(() => this.#raw.receive(n, data)), closed: () => guard(() => this.#raw.closed(n)) };
  }

  /**
   * Serves a WebSocket (the standard API: Deno.upgradeWebSocket's, a browser's, workerd's) once
   * it is open. Frames go out as text, as RabbitMQ's Web-STOMP sends them by default, or as
   * binary when a body is not UTF-8. `request` goes to `authenticate`.
   */
  accept(ws, request) {
    ws.binaryType = 'arraybuffer';
    let socket;
    const start = () => {
      socket ??= this.open({
        send: (bytes) => {
          if (ws.readyState !== 1) return;
          let text;
          try {
            text = utf8.decode(bytes);
          } catch {
            // Not UTF-8: a binary message.
          }
          ws.send(text ?? bytes);
        },
        close: () => ws.close(),
        request,
      });
    };
    if (ws.readyState === 1) start();
    else ws.addEventListener('open', start);
    ws.addEventListener('message', (e) => socket?.receive(e.data));
    ws.addEventListener('close', () => socket?.closed());
  }
}

/** amqplib's Channel. Events: 'return' (mandatory messages no queue took), 'error', 'close'. */
export class Channel extends Emitter {
  #raw;
  #closed = false;
  #dead = null;

  constructor(connection, confirm) {
    super();
    this.#raw = connection.createChannel(confirm, (name, arg) => {
      if (name === 'ack' || name === 'nack') {
        // A confirm: amqplib's event shape, made only when someone listens.
        if (this.listenerCount(name)) this.emit(name, { deliveryTag: arg, multiple: false });
        return;
      }
      if (name === 'close') this.#closed = true;
      this.emit(name, arg);
    });
    this[RAW] = this.#raw;
  }

  /** The channel binding, unless a panic stopped its instance. */
  get #r() {
    if (this.#dead) throw this.#dead;
    return this.#raw;
  }

  assertQueue(queue, options) {
    return promise(() => this.#r.assertQueue(queue ?? '', options));
  }
  checkQueue(queue) {
    return promise(() => this.#r.checkQueue(queue));
  }
  deleteQueue(queue, options) {
    return promise(() => this.#r.deleteQueue(queue, options));
  }
  purgeQueue(queue) {
    return promise(() => this.#r.purgeQueue(queue));
  }
  bindQueue(queue, source, pattern, args) {
    return promise(() => this.#r.bindQueue(queue, source, pattern ?? '', args));
  }
  unbindQueue(queue, source, pattern, args) {
    return promise(() => this.#r.unbindQueue(queue, source, pattern ?? '', args));
  }
  assertExchange(exchange, type, options) {
    return promise(() => this.#r.assertExchange(exchange, type, options));
  }
  checkExchange(exchange) {
    return promise(() => this.#r.checkExchange(exchange));
  }
  deleteExchange(exchange, options) {
    return promise(() => this.#r.deleteExchange(exchange, options));
  }
  bindExchange(destination, source, pattern, args) {
    return promise(() => this.#r.bindExchange(destination, source, pattern ?? '', args));
  }
  unbindExchange(destination, source, pattern, args) {
    return promise(() => this.#r.unbindExchange(destination, source, pattern ?? '', args));
  }

  /**
   * Publishes; returns true (there is no write buffer to fill). Beyond amqplib, with
   * `options.structured` the content may be any structured-cloneable value (see encodeValue).
   */
  publish(exchange, routingKey, content, options) {
    const ok = guard(() => this.#r.publish(exchange, routingKey, ...outgoing(content, options), undefined));
    notePersistent(this, exchange, routingKey, options);
    return ok;
  }

  sendToQueue(queue, content, options) {
    return this.publish('', queue, content, options);
  }

  /**
   * consume(queue, callback, options) → {consumerTag}. Beyond amqplib: `options.signal`, an
   * AbortSignal that cancels the consumer.
   */
  consume(queue, callback, options = {}) {
    const { signal, structured, ...rest } = options ?? {};
    if (signal?.aborted) return Promise.reject(signal.reason ?? failed('aborted', 406));
    const deliver = structured && typeof callback === 'function' ? (m) => callback(incoming(m, true)) : callback;
    return promise(() => this.#r.consume(queue, deliver, rest)).then((ok) => {
      signal?.addEventListener('abort', () => this.cancel(ok.consumerTag).catch(() => {}), { once: true });
      return ok;
    });
  }

  cancel(consumerTag) {
    return promise(() => this.#r.cancel(consumerTag));
  }

  get(queue, options) {
    // Without `structured`, the binding's promise as it is: no second promise per get.
    if (!options?.structured) return this.#r.get(queue, options);
    const { structured, ...rest } = options;
    return this.#r.get(queue, rest).then((m) => incoming(m, structured));
  }

  ack(message, allUpTo) {
    guard(() => this.#r.ack(tagOf(message), allUpTo));
  }
  ackAll() {
    guard(() => this.#r.ackAll());
  }
  nack(message, allUpTo, requeue) {
    guard(() => this.#r.nack(tagOf(message), allUpTo, requeue));
  }
  nackAll(requeue) {
    guard(() => this.#r.nackAll(requeue));
  }
  reject(message, requeue) {
    guard(() => this.#r.reject(tagOf(message), requeue));
  }

  [DEAD](error) {
    this.#dead = error;
    this[RAW] = new Proxy({}, { get: () => () => { throw error; } });
    if (this.#closed) return;
    this.#closed = true;
    this.emit('error', error);
    this.emit('close');
  }

  prefetch(count, global) {
    return promise(() => this.#r.prefetch(count, global));
  }

  recover() {
    return promise(() => this.#r.recover());
  }

  close() {
    if (this.#closed) return Promise.resolve();
    return promise(() => this.#raw.close());
  }

  /**
   * Beyond amqplib: the queue's messages as an async iterator (a consumer under the hood;
   * ack each message unless `noAck`). Ends when `options.signal` aborts, the consumer is
   * cancelled, or the loop exits (which cancels it).
   */
  async *messages(queue, options = {}) {
    const { signal, ...rest } = options ?? {};
    const buffer = [];
    let wake;
    let done = false;
    const stop = () => {
      done = true;
      wake?.();
    };
    const { consumerTag } = await this.consume(queue, (m) => (m === null ? stop() : (buffer.push(m), wake?.())), rest);
    signal?.addEventListener('abort', stop, { once: true });
    this.once('close', stop);
    try {
      while (true) {
        if (buffer.length) {
          yield buffer.shift();
        } else if (done || signal?.aborted) {
          return;
        } else {
          await new Promise((ok) => (wake = ok));
          wake = undefined;
        }
      }
    } finally {
      this.off('close', stop);
      signal?.removeEventListener('abort', stop);
      if (!this.#closed) await this.cancel(consumerTag).catch(() => {});
    }
  }
}

/**
 * amqplib's ConfirmChannel: publish takes a callback `(err, ok)`; waitForConfirms(); events
 * 'ack' and 'nack' with `{ deliveryTag, multiple }` (deliveryTag: the publish's sequence
 * number, from 1), after the publish's callback.
 */
export class ConfirmChannel extends Channel {
  #confirmEvents = false;

  /** As Emitter's; the first 'ack' or 'nack' listener asks the binding for those events. */
  on(name, fn) {
    if (!this.#confirmEvents && (name === 'ack' || name === 'nack')) {
      this.#confirmEvents = true;
      try {
        this[RAW].wantConfirmEvents();
      } catch {
        // A channel a panic stopped has no events left to give.
      }
    }
    return super.on(name, fn);
  }

  publish(exchange, routingKey, content, options, callback) {
    const cb = callback && ((err) => (err ? callback(err) : callback(null, {})));
    const ok = guard(() => this[RAW].publish(exchange, routingKey, ...outgoing(content, options), cb));
    notePersistent(this, exchange, routingKey, options);
    return ok;
  }

  sendToQueue(queue, content, options, callback) {
    return this.publish('', queue, content, options, callback);
  }

  waitForConfirms() {
    return this[RAW].waitForConfirms();
  }
}

/** For `import amqp from 'tabbit'; amqp.connect(…)`, as with amqplib. */
export default { connect, version, encodeValue, decodeValue, STRUCTURED, Connection, Channel, ConfirmChannel, Emitter };
