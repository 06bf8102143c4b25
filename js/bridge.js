// The bridge to a RabbitMQ server over Web-STOMP (conn.bridge()).
//
// Outbound, messages routed to a bridged local exchange wait in a durable local queue (the
// outbox, stored in IndexedDB like any durable queue) until RabbitMQ has confirmed them with a
// STOMP RECEIPT; only then are they acked locally. Inbound, a RabbitMQ queue's messages are
// published into the local broker with confirms, and acked to RabbitMQ (ack mode
// client-individual) only once the local broker has confirmed, i.e. stored them.
//
// One context runs each bridge: the one hosting the broker. Which bridges run, and who
// declared them, is the mesh's registry (src/mesh/bridge.rs): declarations and statuses are
// frames between contexts like any other, a new host runs what the live contexts declare
// again. Here is only what drives the WebSocket: the Runner, started and stopped as the host
// state says (bridgeRunner). The STOMP codec and the mapping of properties to headers are in
// Rust (src/bridge/, src/wasm/stomp.rs).

/** WebSocket subprotocols, as RabbitMQ's Web-STOMP plugin accepts them. */
const PROTOCOLS = ['v12.stomp'];
/** The largest STOMP frame the bridge reads: a larger one is an error (501) that closes the connection. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** How long an inbound message the local broker refused waits before RabbitMQ gets it back. */
const REFUSED_RETRY_MS = 5000;

const DEFAULTS = Object.freeze({
  login: 'guest',
  passcode: 'guest',
  vhost: '/',
  heartbeatMs: 10000,
  prefetch: 100,
  reconnect: Object.freeze({ initialMs: 500, maxMs: 30000 }),
});

/**
 * Checks and completes bridge options; throws (406) with what to change.
 * `destinationError(d, subscribe)` is the Rust check of a STOMP destination.
 */
export function bridgeConfig(options, failed, destinationError) {
  const bad = (what) => failed(`bridge(): ${what}`, 406);
  if (typeof options !== 'object' || options === null) throw bad("takes options such as { url: 'ws://host:15674/ws', outbound: [...], inbound: [...] }");
  const known = ['name', 'url', 'login', 'passcode', 'vhost', 'heartbeatMs', 'prefetch', 'reconnect', 'outbound', 'inbound'];
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) throw bad(`unknown option '${k}': use ${known.join(', ')}`);
  }
  const { name = 'default', url, outbound = [], inbound = [] } = options;
  const str = (v, what) => {
    if (typeof v !== 'string') throw bad(`'${what}' must be a string`);
    return v;
  };
  const whole = (v, what, min, max) => {
    if (!Number.isInteger(v) || v < min || v > max) throw bad(`'${what}' must be a whole number from ${min} to ${max}`);
    return v;
  };
  str(name, 'name');
  if (!name || new TextEncoder().encode(name).length > 100) throw bad("'name' must be 1 to 100 bytes");
  str(url, 'url');
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw bad(`'url' ${JSON.stringify(url)} is not a URL: write e.g. 'ws://127.0.0.1:15674/ws' (RabbitMQ's Web-STOMP endpoint)`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw bad(`'url' must be ws:// or wss://, not ${parsed.protocol}`);
  if (parsed.username || parsed.password) throw bad("'url' must not carry credentials: give 'login' and 'passcode'");
  const reconnect = { ...DEFAULTS.reconnect, ...(options.reconnect ?? {}) };
  whole(reconnect.initialMs, 'reconnect.initialMs', 10, 3600000);
  whole(reconnect.maxMs, 'reconnect.maxMs', reconnect.initialMs, 3600000);
  const config = {
    name,
    url,
    login: str(options.login ?? DEFAULTS.login, 'login'),
    passcode: str(options.passcode ?? DEFAULTS.passcode, 'passcode'),
    vhost: str(options.vhost ?? DEFAULTS.vhost, 'vhost'),
    heartbeatMs: whole(options.heartbeatMs ?? DEFAULTS.heartbeatMs, 'heartbeatMs', 0, 3600000),
    prefetch: whole(options.prefetch ?? DEFAULTS.prefetch, 'prefetch', 1, 65535),
    reconnect: { initialMs: reconnect.initialMs, maxMs: reconnect.maxMs },
    outbound: [],
    inbound: [],
  };
  if (!Array.isArray(outbound) || !Array.isArray(inbound)) throw bad("'outbound' and 'inbound' must be arrays");
  if (!outbound.length && !inbound.length) throw bad('give at least one rule in outbound or inbound');
  const outboxes = new Set();
  outbound.forEach((rule, i) => {
    const at = `outbound[${i}]`;
    if (typeof rule !== 'object' || rule === null) throw bad(`${at} must be { exchange, to } or { queue, to }`);
    const to = str(rule.to, `${at}.to`);
    const why = destinationError(to, false);
    if (why) throw bad(`${at}.to: ${why}`);
    let r;
    if (rule.queue !== undefined) {
      if (rule.exchange !== undefined) throw bad(`${at}: give 'exchange' (and 'pattern') or 'queue', not both`);
      r = { queue: str(rule.queue, `${at}.queue`), to, own: false };
    } else {
      const exchange = str(rule.exchange, `${at}.exchange`);
      const pattern = str(rule.pattern ?? '#', `${at}.pattern`);
      const outbox = str(rule.outbox ?? `bridge.${name}.${exchange}${pattern === '#' ? '' : `.${pattern}`}`, `${at}.outbox`);
      r = { exchange, pattern, queue: outbox, to, own: true };
    }
    if (!r.queue) throw bad(`${at}: the queue name must not be empty`);
    if (outboxes.has(r.queue)) throw bad(`${at}: queue '${r.queue}' is the outbox of another rule too: give this one an 'outbox' name of its own`);
    outboxes.add(r.queue);
    config.outbound.push(r);
  });
  inbound.forEach((rule, i) => {
    const at = `inbound[${i}]`;
    if (typeof rule !== 'object' || rule === null || typeof rule.to !== 'object' || rule.to === null) {
      throw bad(`${at} must be { from: '/amq/queue/q', to: { queue } or { exchange, routingKey? } }`);
    }
    const from = str(rule.from, `${at}.from`);
    const why = destinationError(from, true);
    if (why) throw bad(`${at}.from: ${why}`);
    let to;
    if (rule.to.queue !== undefined) to = { queue: str(rule.to.queue, `${at}.to.queue`) };
    else if (rule.to.exchange !== undefined) {
      to = { exchange: str(rule.to.exchange, `${at}.to.exchange`) };
      if (rule.to.routingKey !== undefined) to.routingKey = str(rule.to.routingKey, `${at}.to.routingKey`);
    } else throw bad(`${at}.to must be { queue } or { exchange, routingKey? }`);
    config.inbound.push({ from, to, prefetch: whole(rule.prefetch ?? config.prefetch, `${at}.prefetch`, 1, 65535) });
  });
  return config;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The options bridgeConfig turns into `config` again (an outbox of its own is named by `outbox`). */
function optionsOf(config) {
  const { outbound, ...rest } = config;
  const rule = (r) => (r?.own ? { exchange: r.exchange, pattern: r.pattern, outbox: r.queue, to: r.to } : { queue: r?.queue, to: r?.to });
  return { ...rest, outbound: Array.isArray(outbound) ? outbound.map(rule) : outbound };
}

/** Whether two configurations are alike, whatever the order of their keys. */
const alike = (a, b) =>
  a === b ||
  (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null &&
    Object.keys(a).length === Object.keys(b).length && Object.keys(a).every((k) => alike(a[k], b[k])));

/**
 * Runs the bridges the host state says to while this context hosts `broker` (a RawBroker):
 * `declared(name, config)`, called with what `broker.onBridge` reports, starts a Runner with a
 * configuration and stops it with `null`; each Runner tells its status to the host state, which
 * tells every context. A configuration came from any context as a field table
 * (src/mesh/bridge.rs): it runs only if bridgeConfig makes the same of it again, else its status
 * says why it does not.
 * @param {object} opts { openConnection(): Connection, binding(): the wasm binding, check(options): bridgeConfig's config }
 * @returns {{declared: (name: string, config: object | null) => void, stop: () => void}} stop() stops every Runner (after a panic: the instance can run none)
 */
export function bridgeRunner(broker, opts) {
  const running = new Map();
  const declared = (name, declared) => {
    running.get(name)?.stop();
    running.delete(name);
    if (!declared) return;
    let config = declared;
    let error = null;
    try {
      config = opts.check(optionsOf(declared));
      if (config.name !== name || !alike(config, declared)) throw new Error('bridgeConfig makes other options of it');
    } catch (e) {
      error = `bridge '${name}' was declared with options no bridge() made, so it does not run: ${e?.message ?? e}`;
    }
    const runner = new Runner(config, { ...opts, queueArguments: (q) => broker.queueArguments(q) }, (s) => {
      const { outbound: o, inbound: i } = s;
      const counts = [s.connects, o.sent, o.confirmed, o.pending, o.skippedHeaders, i.received, i.acked, i.refused];
      broker.bridgeStatus(name, s.state, s.error, s.since, s.retryAt, new Float64Array(counts));
    });
    running.set(name, runner);
    runner.start(error);
  };
  return { declared, stop: () => running.forEach((r) => r.stop()) };
}

/** One bridge's connection to RabbitMQ, in the hosting context: reconnects with backoff until stopped. */
class Runner {
  #config;
  #opts;
  #report;
  #stopped = false;
  #ws = null;
  #conn = null;
  #s;
  #lastReport = 0;
  #reportTimer = null;
  #reportAt = 0;

  constructor(config, opts, report) {
    this.#config = config;
    this.#opts = opts;
    this.#report = report;
    // What the host state tells every context, with the configuration (src/wasm/bridges.rs).
    this.#s = {
      state: 'connecting',
      error: null,
      since: Date.now(),
      retryAt: null,
      connects: 0,
      outbound: { sent: 0, confirmed: 0, pending: 0, skippedHeaders: 0 },
      inbound: { received: 0, acked: 0, refused: 0 },
    };
  }

  /**
   * Tells the other contexts the status within `ms`: counters change per message, so at most 4
   * times a second; a new state at once; the outbox drained (RabbitMQ confirmed all it was sent)
   * within 25 ms, so that `pending: 0` shows soon after the last receipt.
   */
  #changed(ms = 250) {
    const at = Math.max(Date.now(), this.#lastReport + ms);
    if (this.#reportTimer) {
      if (this.#reportAt <= at) return;
      clearTimeout(this.#reportTimer);
    }
    this.#reportAt = at;
    this.#reportTimer = setTimeout(() => {
      this.#reportTimer = null;
      this.#lastReport = Date.now();
      this.#report(this.#s);
    }, at - Date.now());
  }

  /** A new state (with its error, and when the next attempt is): told to the other contexts at once. */
  #state(state, error = this.#s.error, retryAt = null) {
    Object.assign(this.#s, { state, error, since: Date.now(), retryAt });
    this.#changed(0);
  }

  /** Connects, and reconnects; with an `error`, says it and stays stopped. */
  start(error) {
    if (error) {
      this.#state('stopped', error);
      return;
    }
    this.#loop().catch((e) => {
      this.#state('stopped', `the bridge stopped on an unexpected error: ${e?.message ?? e}`);
    });
  }

  /** Stops for good, telling no one: the registry tells the other contexts the bridge is gone. */
  stop() {
    this.#stopped = true;
    clearTimeout(this.#reportTimer);
    this.#report = () => {};
    try {
      this.#ws?.close();
    } catch {
      // Closing anyway.
    }
    this.#conn?.close().catch(() => {});
    Object.assign(this.#s, { state: 'stopped', error: null, since: Date.now(), retryAt: null });
  }

  async #loop() {
    this.#conn = this.#opts.openConnection();
    const { initialMs, maxMs } = this.#config.reconnect;
    let delay = initialMs;
    while (!this.#stopped) {
      this.#state('connecting');
      const { connected, error } = await this.#session();
      if (this.#stopped) break;
      if (connected) delay = initialMs;
      const wait = Math.round(delay * (0.8 + 0.4 * Math.random()));
      this.#state('waiting', error, Date.now() + wait);
      await sleep(wait);
      delay = Math.min(delay * 2, maxMs);
    }
  }

  /** One WebSocket session: resolves when it ends, with whether it got as far as CONNECTED and why it ended. */
  #session() {
    const config = this.#config;
    const binding = this.#opts.binding();
    return new Promise((resolve) => {
      let ws;
      try {
        if (typeof WebSocket !== 'function') throw new Error('this runtime has no WebSocket');
        ws = new WebSocket(config.url, PROTOCOLS);
      } catch (e) {
        resolve({ connected: false, error: `cannot open ${config.url}: ${e?.message ?? e}` });
        return;
      }
      this.#ws = ws;
      ws.binaryType = 'arraybuffer';
      const codec = new binding.StompCodec(MAX_FRAME_BYTES);
      let connected = false;
      let error = null;
      let lastHeard = Date.now();
      const timers = [];
      const channels = [];
      const send = (bytes) => {
        if (ws.readyState === 1) ws.send(bytes);
      };
      const frame = (command, headers) => {
        if (session.ended) return;
        codec.frame(command, headers);
        send(codec.take());
      };
      // Ends the session now: a peer that does not answer the close handshake must not hold it.
      const fail = (why) => {
        error ??= why;
        try {
          ws.close();
        } catch {
          // Already closing.
        }
        end();
      };
      const session = { ended: false, channels };
      const end = () => {
        if (session.ended) return;
        session.ended = true;
        this.#frame = null;
        codec.free?.();
        for (const t of timers) clearInterval(t);
        // Closing the outbox channels puts what RabbitMQ did not confirm back, in order, for
        // the next session; inbound messages not acked go back to RabbitMQ's queue.
        for (const ch of channels) ch.close().catch(() => {});
        this.#s.outbound.pending = 0;
        if (this.#ws === ws) this.#ws = null;
        resolve({ connected, error: error ?? (connected ? 'the connection closed' : `could not connect to ${config.url}`) });
      };
      ws.onopen = () => {
        frame('CONNECT', [
          ['accept-version', '1.2'],
          ['host', config.vhost],
          ['login', config.login],
          ['passcode', config.passcode],
          ['heart-beat', `${config.heartbeatMs},${config.heartbeatMs}`],
        ]);
      };
      ws.onerror = () => {
        error ??= connected ? 'the WebSocket failed' : `could not connect to ${config.url} (refused, or not a Web-STOMP endpoint)`;
      };
      ws.onclose = end;
      const handlers = {
        CONNECTED: (f) => {
          if (f.headers.get('version') !== '1.2') {
            fail(`the server speaks STOMP ${f.headers.get('version') ?? '1.0'}, not 1.2 (RabbitMQ 3.x speaks 1.2)`);
            return;
          }
          connected = true;
          this.#s.connects += 1;
          this.#state('connected', null);
          // Heart-beats, as STOMP 1.2 negotiates them: each side's wish against the other's.
          const [sx, sy] = String(f.headers.get('heart-beat') ?? '0,0').split(',').map((n) => Number(n) || 0);
          const hb = config.heartbeatMs;
          if (hb > 0 && sy > 0) timers.push(setInterval(() => send(new Uint8Array([10])), Math.max(hb, sy)));
          if (hb > 0 && sx > 0) {
            const limit = 2 * Math.max(hb, sx) + 1000;
            timers.push(setInterval(() => Date.now() - lastHeard > limit && fail(`no heart-beat from RabbitMQ for ${limit} ms`), limit / 2));
          }
          this.#open(session, codec, frame, send, fail).catch((e) => fail(`the local broker refused the bridge: ${e?.message ?? e}`));
        },
        ERROR: (f) => {
          const message = f.headers.get('message') ?? 'error';
          const text = new TextDecoder().decode(f.body ?? new Uint8Array()).trim();
          fail(`RabbitMQ: ${message}${text ? ` (${text.replace(/\s+/g, ' ')})` : ''}`);
        },
      };
      ws.onmessage = (e) => {
        if (session.ended) return;
        lastHeard = Date.now();
        const bytes = typeof e.data === 'string' ? new TextEncoder().encode(e.data) : new Uint8Array(e.data);
        let frames;
        try {
          frames = codec.push(bytes);
        } catch (err) {
          fail(`malformed frame from RabbitMQ: ${err?.message ?? err}`);
          return;
        }
        for (const f of frames) {
          if (session.ended) return;
          try {
            if (handlers[f.command]) handlers[f.command](f);
            else this.#frame?.(f);
          } catch (err) {
            fail(`could not handle a ${f.command ?? 'RECEIPT'} frame: ${err?.message ?? err}`);
          }
        }
      };
    });
  }

  /** After CONNECTED: subscribes the inbound rules and starts sending the outboxes. */
  async #open(session, codec, frame, send, fail) {
    const config = this.#config;
    const s = this.#s;
    // SENDs not confirmed yet: receipt id → message.
    const pending = new Map();
    let receipts = 0;
    const subs = new Map();
    let inbound = null;
    // A channel opened after the session ended is closed at once (its end() has run).
    const track = (ch) => {
      session.channels.push(ch);
      if (session.ended) ch.close().catch(() => {});
      return !session.ended;
    };
    // The outbound pipeline. A rule has at most `prefetch` SENDs not acked locally (its
    // window); its outbox channel's prefetch is twice that, so the next messages are already
    // delivered when a receipt frees a place: the pipe to RabbitMQ stays full without waiting
    // for the local ack → delivery round trip. Deliveries and receipts only schedule a flush,
    // which runs after the WebSocket and broker events queued meanwhile (a task, not a
    // microtask: RabbitMQ's Web-STOMP sends each RECEIPT in a WebSocket message of its own).
    // A flush acks each rule's confirmed messages from the oldest on in one ack (allUpTo: a
    // receipt that comes before an older one's waits for it, and on a reconnect both are sent
    // again, as unconfirmed ones are), and puts every SEND it can into one WebSocket message:
    // RabbitMQ's Web-STOMP reads a frame and goes on with the rest of the bytes
    // (rabbit_web_stomp_handler:handle_data1/2). `rules` holds each outbound rule's part.
    const rules = [];
    let flushing = null;
    const flush = () => {
      flushing = null;
      let acked = false;
      for (const f of rules) if (!session.ended) acked = f() || acked;
      if (session.ended) return;
      s.outbound.pending = pending.size;
      const bytes = codec.take();
      if (bytes.length) send(bytes);
      // Nothing unconfirmed left after this flush: nothing waits either.
      this.#changed(acked && !pending.size ? 25 : 250);
    };
    const schedule = () => {
      flushing ??= setTimeout(flush, 0);
    };
    if (config.inbound.length) {
      inbound = await this.#conn.createConfirmChannel();
      if (!track(inbound)) return;
    }
    this.#frame = (f) => {
      if (typeof f === 'string') {
        // A RECEIPT: the codec answers its receipt-id only.
        if (!pending.delete(f)) return;
        s.outbound.confirmed += 1;
        schedule();
      } else if (f.command === 'MESSAGE') {
        const rule = subs.get(f.headers.get('subscription'));
        const ackId = f.headers.get('ack');
        if (!rule || !ackId) return;
        s.inbound.received += 1;
        this.#changed();
        const { content, properties, fields } = f.message;
        const options = { ...properties, persistent: true };
        const settle = (err) => {
          if (!err) {
            s.inbound.acked += 1;
            frame('ACK', [['id', ackId]]);
            this.#changed();
            return;
          }
          // The local broker refused it (a limit, a full queue, full storage): RabbitMQ keeps
          // it, and gets it back after a while to offer it again.
          s.inbound.refused += 1;
          Object.assign(s, { error: `the local broker refused a message from ${rule.from}: ${err.message}` });
          this.#changed();
          setTimeout(() => frame('NACK', [['id', ackId], ['requeue', 'true']]), REFUSED_RETRY_MS);
        };
        try {
          if (rule.to.queue !== undefined) inbound.sendToQueue(rule.to.queue, content, options, settle);
          else inbound.publish(rule.to.exchange, rule.to.routingKey ?? fields.routingKey, content, options, settle);
        } catch (err) {
          settle(err);
        }
      }
    };
    config.inbound.forEach((rule, i) => {
      const id = `${i}`;
      subs.set(id, rule);
      frame('SUBSCRIBE', [
        ['id', id],
        ['destination', rule.from],
        ['ack', 'client-individual'],
        ['prefetch-count', String(rule.prefetch)],
      ]);
    });
    for (const rule of config.outbound) {
      const ch = await this.#conn.createChannel();
      if (!track(ch)) return;
      // The outbox's epoch: a random word stored in the queue's arguments when the bridge made
      // it, so that the message ids it makes (`tabbit:<outbox>:<epoch>:<sequence>`) stay unique
      // when the queue is deleted and made again.
      const epoch = (await this.#opts.queueArguments(rule.queue))?.['x-tabbit-epoch'] ?? '0';
      await ch.prefetch(Math.min(2 * config.prefetch, 65535));
      if (session.ended) return;
      const withKey = /^\/exchange\/[^/]+$/.test(rule.to);
      // Messages delivered and not sent yet; [receipt, message] sent and not acked locally yet, in delivery order.
      const ready = [];
      const sent = [];
      rules.push(() => {
        let upTo = null;
        while (sent.length && !pending.has(sent[0][0])) upTo = sent.shift()[1];
        if (upTo) ch.ack(upTo, true);
        while (sent.length < config.prefetch && ready.length) {
          const msg = ready.shift();
          const receipt = `r${++receipts}`;
          const messageId = msg.properties.messageId ?? `tabbit:${rule.queue}:${epoch}:${msg.fields.sequence}`;
          try {
            s.outbound.skippedHeaders += codec.send(withKey ? `${rule.to}/${msg.fields.routingKey}` : rule.to, receipt, messageId, msg.content, msg.properties);
          } catch (err) {
            fail(`could not send a message of '${rule.queue}': ${err?.message ?? err}`);
            return;
          }
          pending.set(receipt, msg);
          sent.push([receipt, msg]);
          s.outbound.sent += 1;
        }
        return upTo;
      });
      await ch.consume(rule.queue, (msg) => {
        if (!msg) {
          fail(`the outbox queue '${rule.queue}' was deleted`);
          return;
        }
        ready.push(msg);
        schedule();
      });
    }
  }

  /** The frame handler of the current session (RECEIPT, MESSAGE). */
  #frame = null;
}

/**
 * Declares the outbox queues of `config` and binds them (from any context): durable, so that
 * messages routed to them wait in storage while RabbitMQ cannot be reached.
 */
export async function declareOutboxes(conn, config, queueArguments) {
  const rules = config.outbound.filter((r) => r.own);
  if (!rules.length) return;
  let ch = await conn.createChannel();
  try {
    for (const r of rules) {
      if ((await queueArguments(r.queue)) === null) {
        const epoch = Math.floor(Math.random() * 2 ** 48).toString(36);
        try {
          await ch.assertQueue(r.queue, { durable: true, arguments: { 'x-tabbit-epoch': epoch } });
        } catch (e) {
          // 406: another context made it meanwhile, with its own epoch, and the error closed
          // the channel. Anything else is an error to report.
          if (e?.code !== 406) throw e;
          ch = await conn.createChannel();
          await ch.checkQueue(r.queue);
        }
      }
      await ch.bindQueue(r.queue, r.exchange, r.pattern);
    }
  } finally {
    await ch.close().catch(() => {});
  }
}

/** What `conn.bridge()` returns: the bridge's name, its status, and close(). */
export class Bridge {
  #broker;
  #closed = false;
  #onClose;

  /** `broker`: { bridges(), undeclare(name) } of the connection's broker. */
  constructor(broker, name, onClose) {
    this.#broker = broker;
    this.name = name;
    this.#onClose = onClose;
  }

  /**
   * The bridge's status, as the hosting context last told it (undefined until it has):
   * `{ state, error, connects, outbound, inbound, ... }`; `conn.stats().bridges` has every bridge's.
   */
  get status() {
    return this.#broker.bridges().find((s) => s.name === this.name);
  }

  /** This context no longer wants the bridge: it stops once no context does. Its outboxes stay, durable. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#broker.undeclare(this.name);
    this.#onClose(this);
  }
}
