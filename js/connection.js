// connect() and amqplib's Connection: one broker per name in this context, shared by every
// connect() to it; the Connection's channels, bridges (bridge.js runs them), storage checks and
// Web-STOMP endpoints (StompEndpoint).
import { failed } from './errors.js';
import { binding, broken, load, guard, promise, DEAD, brokers, closing } from './loader.js';
import { Emitter } from './emitter.js';
import { OWNER, PERSISTENT, requestPersist, storageInfo, checkStorage } from './persistence.js';
import { Channel, ConfirmChannel } from './channel.js';

/**
 * bridge.js, loaded on first use (a bridge() call, or a bridge declared to a broker this context
 * hosts): an app that never bridges does not download it. Its `import()` stays a separate file in
 * the package and in an app's bundle.
 */
let bridgeModule = null;
function bridging() {
  bridgeModule ??= import('./bridge.js').catch((e) => {
    bridgeModule = null; // tried again on the next use
    throw failed(`tabbit's bridge code (bridge.js, beside its main module) could not be loaded: ${e?.message ?? e}`, 506);
  });
  return bridgeModule;
}

/** bridge()'s options checked and completed (406 with what to change), STOMP destinations by the binding. */
const checkBridge = (bridgeConfig, options) =>
  bridgeConfig(options, failed, (d, subscribe) => guard(() => binding.stompDestinationError(d, subscribe)) ?? null);

/**
 * The host's bridge declarations for broker `b` (what `b.onBridge` reports), run by bridge.js once
 * it is loaded, in the order they came; `entry.stopBridges` stops them. If bridge.js cannot be
 * loaded, each bridge declared meanwhile says so in its status.
 */
function runBridgesLazily(b, entry) {
  let queued = [];
  let runner = null;
  return (name, declared) => {
    if (runner) return runner.declared(name, declared);
    queued.push([name, declared]);
    if (queued.length > 1) return;
    bridging().then(
      (m) => {
        if (broken) return; // the instance panicked meanwhile: it runs no bridge
        runner = m.bridgeRunner(b, {
          // The bridges' own connection: not counted, so it never keeps the broker open.
          openConnection: () => new Connection(b, () => Promise.resolve()),
          binding: () => binding,
          check: (options) => checkBridge(m.bridgeConfig, options),
        });
        entry.stopBridges = runner.stop;
        for (const [n, d] of queued) runner.declared(n, d);
        queued = [];
      },
      (e) => {
        const last = new Map(queued);
        queued = [];
        try {
          for (const [n, d] of last) if (d) guard(() => b.bridgeStatus(n, 'stopped', e.message, Date.now(), null, new Float64Array(8)));
        } catch {
          // The instance panicked or the broker closed meanwhile: no one to tell.
        }
      },
    );
  };
}

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
        b.onBridge(runBridgesLazily(b, entry));
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
    const { Bridge, bridgeConfig, declareOutboxes } = await bridging();
    const config = checkBridge(bridgeConfig, options);
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
