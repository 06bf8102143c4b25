// A Durable Object class that hosts one tabbit broker per object, on the object's storage:
//
//   // src/worker.js (wrangler: a durable_objects binding and a migration for the class)
//   export { TabbitBroker } from 'tabbit/durable-object';
//
//   const stub = env.BROKER.get(env.BROKER.idFromName('main'));
//   await stub.publish('', 'orders', 'hello', { persistent: true });   // resolves once confirmed
//   const m = await stub.get('orders');                                 // { handle, content, fields, properties } | null
//   await stub.ack(m.handle);
//
// Each method on the stub is a Workers RPC call into the object ("public methods on a class
// that extends DurableObject can be called over RPC": developers.cloudflare.com/durable-objects/
// best-practices/create-durable-object-stubs-and-send-requests/); arguments and results are
// structured-cloned, so messages come back as plain objects and a delivery is acked by its handle.
//
// The broker is opened once per object instance, lazily: concurrent first calls share one open.
// It is named after the object's id, so that objects sharing an isolate do not share a broker.
//
// Timers. TTLs, delayed messages and x-expires leases run on the broker's own timer while the
// object is in memory; an object can be evicted at any time, and then no timer runs. So after each
// call the object sets its alarm (ctx.storage.setAlarm: one alarm per object, it survives
// eviction and restarts: developers.cloudflare.com/durable-objects/api/alarms/) to the broker's
// next wake-up (Connection.nextWakeup()). The alarm wakes the object; alarm() opens the broker,
// which runs what is due (expiring, dead-lettering), waits until that is stored, and sets the
// next alarm. A subclass that overrides alarm() calls super.alarm().
//
// Web-STOMP. With `static options = { stompPath: '/ws', authenticate }`, fetch() upgrades
// WebSocket requests to that path and serves STOMP on them (conn.stompEndpoint(), the protocol
// in the wasm), with the hibernatable WebSocket API: the object accepts each socket with
// ctx.acceptWebSocket(), and the runtime calls webSocketMessage / webSocketClose /
// webSocketError. An object that handles no event for a while (10 s today) and has no timer set
// may be evicted from memory while its sockets stay connected ("hibernation"); the next event
// runs the constructor again (developers.cloudflare.com/durable-objects/concepts/
// durable-object-lifecycle/: "No setTimeout/setInterval scheduled callbacks are set" is one of
// the conditions). What survives is each socket's attachment, "a copy of value in memory (not
// on disk) to survive hibernation" (developers.cloudflare.com/durable-objects/api/websockets/,
// serializeAttachment), of at most 16 KiB serialized (MAX_ATTACHMENT_SIZE in workerd's
// src/workerd/api/web-socket.h). So each STOMP session keeps its state there (version, login,
// virtual host, heart-beats, each subscription's SUBSCRIBE headers: ack mode, prefetch, ...;
// never the passcode), and when the object opens its broker again it makes every session again
// from ctx.getWebSockets(). Messages a session had not acked went back to their queues when the
// broker's memory went (as when a connection goes in RabbitMQ), so they come again with
// redelivered:true and new ack ids; an ACK or NACK of an old id gets an ERROR that says so.
// Heart-beats: the object sets ctx.setWebSocketAutoResponse('\n' → '\n'), so the runtime answers
// each heart-beat of a client with one, without waking the object (workerd's
// legacy-hibernation-manager.c++ readLoop answers a matching text message itself, awake or
// not), and CONNECTED says the server sends as often as the client does. No timer runs for a
// connected session, so it does not keep the object in memory; a dead client is left to the
// runtime, which closes the socket (webSocketClose / webSocketError).
import { DurableObject } from 'cloudflare:workers';
import { connect } from './index.js';
import { durableObjectStorage } from './storage/durable-object.js';
// The wasm as a module of its own: wrangler uploads a .wasm import as a WebAssembly.Module
// (developers.cloudflare.com/workers/wrangler/bundling/), and Workers cannot compile wasm from
// bytes at run time.
import wasm from './tabbit_bg.wasm';

/** An alarm is never set closer than this to now: what is due now runs on the broker's own timer; the alarm is for after an eviction. */
const MIN_ALARM_MS = 100;
/** alarm() waits at most this many times for the broker's timer to run what is due. */
const MAX_DUE_ROUNDS = 20;
/**
 * Unacked deliveries. A delivery lives in the broker's memory: if the object goes, its message
 * goes back to its queue and comes again, redelivered, under a new ack id (see "Web-STOMP"
 * above). So a consumer slower than the runtime's idle window (it holds a message more than
 * ~10 s without a frame) would see its message come again and its ACK refused. While deliveries
 * are unacked, the object therefore keeps itself in memory, as a RabbitMQ node keeps a
 * connection's deliveries: a pending timer keeps the runtime from hibernating it ("Hibernation
 * will only occur if all of the below are true: No setTimeout/setInterval scheduled callbacks
 * are set", developers.cloudflare.com/durable-objects/concepts/durable-object-lifecycle/), and
 * its alarm comes at least every HOLD_ALARM_MS, since an object in memory that gets no request
 * or event "after 70-140 seconds of inactivity" is evicted all the same (same page); an alarm is
 * an event. It checks the broker's stats every HOLD_CHECK_MS while any delivery is unacked, and
 * at most every HOLD_THROTTLE_MS after the events that come otherwise (stats() costs ~0.2 ms).
 * Once none is unacked, no timer is left: the object may hibernate again. A subclass that
 * prefers hibernating to keeping slow consumers' deliveries sets `keepAliveWhileUnacked: false`.
 */
const HOLD_CHECK_MS = 5_000;
const HOLD_THROTTLE_MS = 1_000;
const HOLD_ALARM_MS = 50_000;

/**
 * Each object's open connection in this isolate, by object id. An evicted object's instance is
 * dropped, but the isolate (and so this module, and the broker the instance opened) may stay, and
 * the next instance of the object runs in it: that one closes its predecessor's broker (whose
 * storage is gone) and opens its own under a name of its own.
 */
const live = new Map();
let instances = 0;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The WebSocket subprotocols of STOMP, the highest first: as RabbitMQ's Web-STOMP
 * (rabbit_web_stomp_handler.erl), the highest the client offers is chosen.
 */
const STOMP_PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

/** A STOMP ERROR frame (STOMP 1.2, ERROR), as text. */
function stompError(message, detail) {
  return `ERROR\nmessage:${message}\ncontent-type:text/plain\nversion:1.0,1.1,1.2\n\n${detail}\0`;
}
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

function failed(message, code) {
  const e = new Error(message);
  e.code = code;
  return e;
}

/** A message body from an RPC argument: a string (as UTF-8), an ArrayBuffer or a view. */
function bodyOf(body, method, options) {
  if (options?.structured) return body;
  if (typeof body === 'string') return utf8.encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw failed(`${method}: the body must be a string, an ArrayBuffer or a Uint8Array (or any value with { structured: true }), not ${body === null ? 'null' : typeof body}`, 406);
}

function needString(value, what, method) {
  if (typeof value !== 'string') throw failed(`${method}: ${what} must be a string`, 406);
}

export class TabbitBroker extends DurableObject {
  /**
   * What subclasses may set: `{ limits, label, storage: { backend, prefix } }` (connect()'s
   * `limits` and `label`, durableObjectStorage()'s options), the Web-STOMP ones (`stompPath`,
   * `authenticate`, `allowAnonymous`, `stompLimits`), and `keepAliveWhileUnacked` (HOLD_CHECK_MS).
   */
  static options = {};

  #opening = null;
  #conn = null;
  /** Channels, each made again once closed: publishes (confirm mode), gets (holds unacked deliveries), the rest. */
  #channels = { publish: null, get: null, admin: null };
  /** Deliveries not acked yet, by handle: `<broker instance>.<delivery tag>`. */
  #held = new Map();
  #instance = '';
  /** The alarm as last set (ms since the epoch, or null), so that it is written only when it changes. */
  #alarmAt;
  #timer = null;
  /** Whether deliveries were unacked at the last check; the timer and the check under way (see HOLD_CHECK_MS). */
  #holding = false;
  #holdTimer = null;
  #holdCheck = null;
  #holdCheckedAt = -Infinity;
  /** The STOMP endpoint (conn.stompEndpoint()), made on first use when `stompPath` is set. */
  #endpoint = null;
  /** Served sockets: WebSocket → { id, socket } (socket: the endpoint's receive / closed). */
  #sockets = new WeakMap();
  /** The same by the id kept in each socket's attachment, for a WebSocket object met anew. */
  #byId = new Map();

  constructor(ctx, env) {
    super(ctx, env);
    const { stompPath } = this.constructor.options ?? {};
    // The runtime answers each STOMP heart-beat (an end-of-line) with one, even while the
    // object is evicted (see the comment at the top).
    if (stompPath !== undefined && typeof WebSocketRequestResponsePair === 'function') {
      ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('\n', '\n'));
    }
  }

  /**
   * The Connection to this object's broker (opened on the first call): for subclass methods that
   * use the channel API directly. Not an RPC method: a Connection cannot be cloned.
   */
  connection() {
    this.#opening ??= this.#open().catch((e) => {
      this.#opening = null;
      throw e;
    });
    return this.#opening;
  }

  async #open() {
    const { limits, label, storage } = this.constructor.options ?? {};
    const id = this.ctx.id.toString();
    const before = live.get(id);
    if (before) before.close().catch(() => {});
    const conn = await connect({
      name: `${id}.${++instances}`,
      storage: durableObjectStorage(this.ctx.storage, storage),
      wasm,
      mesh: false,
      limits,
      label,
    });
    this.#alarmAt = await this.ctx.storage.getAlarm();
    this.#instance = crypto.randomUUID().slice(0, 8);
    this.#conn = conn;
    live.set(id, conn);
    this.#restoreSockets();
    return conn;
  }

  /** The STOMP endpoint of `stompPath` (made once; throws, saying what to change, on bad options). */
  #stomp() {
    if (this.#endpoint) return this.#endpoint;
    const { authenticate, allowAnonymous, stompLimits } = this.constructor.options ?? {};
    this.#endpoint = this.#conn.stompEndpoint({ authenticate, allowAnonymous, limits: stompLimits, hibernatable: true });
    return this.#endpoint;
  }

  /**
   * After the object was evicted with sockets open: each STOMP session is made again from the
   * state its socket's attachment kept, before any event is handled.
   */
  #restoreSockets() {
    if ((this.constructor.options ?? {}).stompPath === undefined) return;
    for (const ws of this.ctx.getWebSockets()) {
      let kept;
      try {
        kept = ws.deserializeAttachment();
      } catch {
        kept = null;
      }
      if (!kept || kept.tabbitStomp !== 1 || this.#byId.has(kept.id)) continue;
      if (typeof kept.state !== 'string') {
        // Evicted before its CONNECT was answered: the request its credentials were to be checked with is gone.
        this.#refuse(ws, 'Server restarted', 'the broker restarted before this connection was let in: connect again');
        continue;
      }
      try {
        this.#serve(ws, kept.id, null, kept.state);
      } catch (e) {
        this.#refuse(ws, 'Server error', `this connection could not be served again after the broker restarted (${e?.message ?? e}): connect again`);
      }
    }
  }

  #refuse(ws, message, detail) {
    try {
      ws.send(stompError(message, detail));
      ws.close(1011, message);
    } catch {
      // closed already
    }
  }

  /** Serves hibernatable WebSocket `ws` (new, or with the `state` its session saved). */
  #serve(ws, id, request, state) {
    const socket = this.#stomp().open({
      send: (bytes) => {
        let text;
        try {
          text = utf8Strict.decode(bytes);
        } catch {
          // Not UTF-8: a binary message.
        }
        try {
          ws.send(text ?? bytes);
        } catch {
          // The socket is closing: its close event ends the session.
        }
      },
      close: () => {
        try {
          ws.close(1000, 'STOMP session ended');
        } catch {
          // closed already
        }
      },
      request,
      // A few hundred bytes, at most the endpoint's 8 KiB: within the attachment's 16 KiB.
      save: (saved) => ws.serializeAttachment({ tabbitStomp: 1, id, state: saved }),
      state: state ?? undefined,
    });
    const entry = { id, socket };
    this.#sockets.set(ws, entry);
    this.#byId.set(id, entry);
    return entry;
  }

  /** The served socket `ws` is, or null. */
  #entry(ws) {
    const known = this.#sockets.get(ws);
    if (known) return known;
    let kept;
    try {
      kept = ws.deserializeAttachment();
    } catch {
      return null;
    }
    const entry = kept && this.#byId.get(kept.id);
    if (entry) this.#sockets.set(ws, entry);
    return entry ?? null;
  }

  /** Channel `kind`, made again if it was closed (a channel error closes it). */
  async #channel(kind) {
    const conn = await this.connection();
    const open = this.#channels[kind];
    if (open) return open;
    const ch = kind === 'publish' ? conn.createConfirmChannel() : conn.createChannel();
    this.#channels[kind] = ch;
    let made;
    try {
      made = await ch;
    } catch (e) {
      this.#channels[kind] = null;
      throw e;
    }
    // The error also rejects the call that caused it; the channel is made again on the next call.
    made.on('error', () => {});
    made.once('close', () => {
      if (this.#channels[kind] === ch) this.#channels[kind] = null;
      // Its unacked deliveries went back to their queues.
      if (kind === 'get') for (const [h, d] of this.#held) if (d.ch === made) this.#held.delete(h);
    });
    return made;
  }

  /** Runs `f`, then sets the alarm to the broker's next wake-up. */
  async #call(f) {
    try {
      return await f();
    } finally {
      if (this.#conn) await this.#arm();
    }
  }

  /**
   * As #call, answering once what `f` changed is stored (conn.flush()): the storage adapter
   * writes a turn's batch a macrotask later (js/storage/durable-object.js, "Group commit"), so
   * the output gate alone no longer holds the answer until the commit.
   */
  #stored(f) {
    return this.#call(async () => {
      const out = await f();
      await this.#conn.flush();
      return out;
    });
  }

  /**
   * Sets the object's alarm to the broker's next wake-up if that changed, and follows it with a
   * timer while the object is in memory (a deadline the broker's own timer brings, such as a
   * dead-lettered message's TTL in its new queue, moves the alarm too).
   */
  async #arm() {
    this.#watchHolds();
    const next = this.#conn.nextWakeup();
    let at = next === null ? null : Math.max(next, Date.now() + MIN_ALARM_MS);
    clearTimeout(this.#timer);
    if (next !== null) this.#timer = setTimeout(() => this.#arm().catch(() => {}), at - Date.now() + 1);
    if (this.#holding) {
      // An alarm within HOLD_ALARM_MS: the one set, if it is (so that it is not rewritten on every call).
      const now = Date.now();
      const keep = this.#alarmAt !== null && this.#alarmAt > now && this.#alarmAt <= now + HOLD_ALARM_MS ? this.#alarmAt : now + HOLD_ALARM_MS;
      at = at === null ? keep : Math.min(at, keep);
    }
    if (at === this.#alarmAt) return;
    // Chosen and issued in one turn: of two calls, the later one's alarm is the one that stays.
    this.#alarmAt = at;
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }

  /** Checks whether deliveries are unacked (see HOLD_CHECK_MS), unless a check is under way or due. */
  #watchHolds() {
    if (!this.#conn || this.#holdTimer !== null || this.#holdCheck !== null) return;
    if ((this.constructor.options ?? {}).keepAliveWhileUnacked === false) return;
    const wait = this.#holdCheckedAt + HOLD_THROTTLE_MS - Date.now();
    if (wait > 0) {
      this.#holdTimer = setTimeout(() => {
        this.#holdTimer = null;
        this.#watchHolds();
      }, wait);
      return;
    }
    this.#holdCheckedAt = Date.now();
    this.#holdCheck = this.#checkHolds()
      .catch(() => {})
      .finally(() => (this.#holdCheck = null));
  }

  async #checkHolds() {
    const conn = this.#conn;
    const { queues } = await conn.stats();
    if (conn !== this.#conn) return;
    const holding = queues.some((q) => q.unacked > 0);
    const changed = holding !== this.#holding;
    this.#holding = holding;
    if (holding) {
      this.#holdTimer = setTimeout(() => {
        this.#holdTimer = null;
        this.#watchHolds();
      }, HOLD_CHECK_MS);
    }
    // The alarm follows: within HOLD_ALARM_MS while holding, the broker's next deadline otherwise.
    if (changed) await this.#arm();
  }

  /**
   * Sets the object's alarm to the broker's next deadline. The class's methods and alarm() call
   * it; a subclass method that changes deadlines (a publish with a TTL, a queue with x-expires)
   * through connection() calls it before it returns.
   */
  async syncAlarm() {
    await this.connection();
    await this.#arm();
  }

  /** The alarm: opens the broker, which runs what is due, waits until that is stored, and sets the next alarm. */
  async alarm() {
    const conn = await this.connection();
    // The broker's timer fires for a deadline already past at the end of this turn: wait for it,
    // and for deadlines closer than the next alarm could be set.
    for (let round = 0; round < MAX_DUE_ROUNDS; round++) {
      const next = conn.nextWakeup();
      if (next === null || next > Date.now() + MIN_ALARM_MS) break;
      await sleep(Math.max(0, next - Date.now()) + 1);
    }
    await conn.flush();
    await this.#arm();
  }

  /**
   * Publishes to `exchange` with `routingKey` (amqplib's publish options: `persistent`,
   * `expiration`, `headers`, `priority`, `structured`, …). Resolves `true` once the broker
   * confirmed it (for a persistent message to a durable queue: stored); rejects if it was refused.
   */
  publish(exchange, routingKey, body, options) {
    return this.#call(async () => {
      needString(exchange, 'exchange', 'publish');
      needString(routingKey, 'routingKey', 'publish');
      const content = bodyOf(body, 'publish', options);
      // A publish to a missing exchange closes its channel, and would fail the other callers'
      // publishes in flight on it: checked first, on the admin channel.
      if (exchange !== '') await (await this.#channel('admin')).checkExchange(exchange);
      const ch = await this.#channel('publish');
      return new Promise((ok, fail) => ch.publish(exchange, routingKey, content, options, (err) => (err ? fail(err) : ok(true))));
    });
  }

  /** Publishes to `queue` through the default exchange; as publish(). */
  sendToQueue(queue, body, options) {
    return this.publish('', queue, body, options);
  }

  /**
   * The next message of `queue`, or null if it is empty: `{ handle, content, fields,
   * properties }` (and `value` with `{ structured: true }`). With `{ noAck: true }` it is acked
   * at once; otherwise ack(handle) or nack(handle) it. An unacked message stays delivered while
   * the object is in memory; if the object goes, it comes back `redelivered` and its handle no
   * longer works.
   */
  get(queue, options = {}) {
    return this.#call(async () => {
      needString(queue, 'queue', 'get');
      // A get from a missing queue closes its channel, which would requeue every held delivery.
      await (await this.#channel('admin')).checkQueue(queue);
      const ch = await this.#channel('get');
      const m = await ch.get(queue, options);
      if (!m) return null;
      const handle = options.noAck ? null : `${this.#instance}.${m.fields.deliveryTag}`;
      if (handle) this.#held.set(handle, { ch, m });
      const out = { handle, content: new Uint8Array(m.content), fields: { ...m.fields }, properties: { ...m.properties } };
      if ('value' in m) out.value = m.value;
      return out;
    });
  }

  #take(handle, method) {
    const held = typeof handle === 'string' ? this.#held.get(handle) : undefined;
    if (!held) {
      throw failed(
        `${method}: no delivery with handle ${JSON.stringify(handle)}: it was acked or nacked already, or the object restarted since (its message went back to the queue, to be delivered again)`,
        406,
      );
    }
    this.#held.delete(handle);
    return held;
  }

  /** Acks the delivery `handle` (from get()); resolves `true` once the ack is stored. */
  ack(handle) {
    return this.#call(async () => {
      const { ch, m } = this.#take(handle, 'ack');
      ch.ack(m);
      await this.#conn.flush();
      return true;
    });
  }

  /** Nacks the delivery `handle`: back to its queue (`requeue`, the default) or dead-lettered / dropped. Resolves `true` once stored. */
  nack(handle, { requeue = true } = {}) {
    return this.#call(async () => {
      const { ch, m } = this.#take(handle, 'nack');
      ch.nack(m, false, requeue);
      await this.#conn.flush();
      return true;
    });
  }

  /** amqplib's assertQueue: `{ queue, messageCount, consumerCount }`. */
  assertQueue(queue, options) {
    return this.#stored(async () => ({ ...(await (await this.#channel('admin')).assertQueue(queue, options)) }));
  }

  /** amqplib's checkQueue. */
  checkQueue(queue) {
    return this.#call(async () => ({ ...(await (await this.#channel('admin')).checkQueue(queue)) }));
  }

  /** amqplib's deleteQueue: `{ messageCount }`. */
  deleteQueue(queue, options) {
    return this.#stored(async () => ({ ...(await (await this.#channel('admin')).deleteQueue(queue, options)) }));
  }

  /** amqplib's purgeQueue: `{ messageCount }`. */
  purgeQueue(queue) {
    return this.#stored(async () => ({ ...(await (await this.#channel('admin')).purgeQueue(queue)) }));
  }

  /** amqplib's assertExchange: `{ exchange }`. */
  assertExchange(exchange, type, options) {
    return this.#stored(async () => ({ ...(await (await this.#channel('admin')).assertExchange(exchange, type, options)) }));
  }

  /** amqplib's bindQueue. */
  bindQueue(queue, source, pattern, args) {
    return this.#stored(async () => {
      await (await this.#channel('admin')).bindQueue(queue, source, pattern, args);
      return true;
    });
  }

  /** amqplib's unbindQueue. */
  unbindQueue(queue, source, pattern, args) {
    return this.#stored(async () => {
      await (await this.#channel('admin')).unbindQueue(queue, source, pattern, args);
      return true;
    });
  }

  /** The broker's exchanges, queues (counts and counters), bindings, totals and rates (Connection.stats()). */
  stats() {
    return this.#call(async () => (await this.connection()).stats());
  }

  /** Resolves once every write made so far is stored (Connection.flush()). */
  flush() {
    return this.#call(async () => {
      await (await this.connection()).flush();
      return true;
    });
  }

  /**
   * Web-STOMP on `options.stompPath` (a WebSocket upgrade); no other HTTP API: the object answers
   * RPC calls on its stub, and every other request gets a 404 that says so.
   */
  async fetch(request) {
    const { stompPath } = this.constructor.options ?? {};
    const path = new URL(request.url).pathname;
    if (stompPath === undefined || path !== stompPath) {
      const stomp = stompPath === undefined ? '' : ` and Web-STOMP on ${stompPath}`;
      return Response.json(
        { error: `TabbitBroker has no HTTP API${stomp}: call its methods on the stub (await stub.publish(...), stub.get(...)) from your worker` },
        { status: 404 },
      );
    }
    if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
      return new Response(`${stompPath} is a Web-STOMP endpoint: open a WebSocket to it, with subprotocol v12.stomp\n`, {
        status: 426,
        headers: { upgrade: 'websocket' },
      });
    }
    try {
      await this.connection();
      this.#stomp();
    } catch (e) {
      return Response.json({ error: `TabbitBroker cannot serve STOMP: ${e?.message ?? e}` }, { status: 500 });
    }
    const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim());
    const protocol = STOMP_PROTOCOLS.find((p) => offered.includes(p));
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    const id = crypto.randomUUID();
    // Marks the socket as a STOMP one before its CONNECT (its session then saves its state here).
    server.serializeAttachment({ tabbitStomp: 1, id, state: null });
    this.#serve(server, id, request, null);
    return new Response(null, { status: 101, webSocket: client, headers: protocol ? { 'sec-websocket-protocol': protocol } : {} });
  }

  /** A message on a STOMP socket (the hibernatable WebSocket API's handler). */
  async webSocketMessage(ws, message) {
    await this.connection();
    const entry = this.#entry(ws);
    if (!entry) return this.#refuse(ws, 'Server error', 'this socket is not served by the broker: connect again');
    // A heart-beat other than the '\n' the runtime answers (say '\r\n') is answered here.
    if (typeof message === 'string' && /^[\r\n]+$/.test(message)) {
      try {
        ws.send('\n');
      } catch {
        // closing
      }
    }
    // A SEND may bring a deadline (a TTL): the alarm follows.
    return this.#call(async () => entry.socket.receive(message));
  }

  /** A STOMP socket closed: its session ends, and its unacked messages go back to their queues. */
  async webSocketClose(ws, code, reason) {
    await this.#gone(ws);
    try {
      // Before the compatibility date 2026-04-07 the runtime does not answer a close itself
      // (web_socket_auto_reply_to_close in workerd's compatibility-date.capnp).
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // closed already
    }
  }

  /** A STOMP socket failed: as webSocketClose. */
  async webSocketError(ws) {
    await this.#gone(ws);
  }

  async #gone(ws) {
    await this.connection();
    const entry = this.#entry(ws);
    if (!entry) return;
    this.#sockets.delete(ws);
    this.#byId.delete(entry.id);
    await this.#call(async () => entry.socket.closed());
  }
}
