// Types of tabbit's main module (js/index.js, shipped as pkg/index.js): amqplib's API
// (the shapes of @types/amqplib) over a broker that runs in this JS context. Hand-written:
// keep in step with js/index.js, src/wasm/channel.rs and src/wasm/convert.rs.
//
// Errors. Every error tabbit raises is an `Error` with the AMQP reply `code` (see
// `TabbitError`), and a message that says what to change. Two kinds:
// - a bad argument (a wrong type, an unknown publish option) throws or rejects with 406
//   PRECONDITION_FAILED, and the channel stays open;
// - a refusal by the broker (no such queue, an inequivalent redeclaration, an unknown
//   delivery tag...) is a channel error, as in AMQP: the call's promise rejects (if it has
//   one), and the channel emits 'error' then 'close' and is unusable: open a new one.
//   Listen to 'error': one nobody listens to is reported as uncaught, as EventEmitter does.

/**
 * tabbit's main module, `import { connect } from 'tabbit'`: amqplib's promise API (Connection,
 * Channel, ConfirmChannel) over a broker with RabbitMQ's model that runs in this JS context and
 * is shared by the origin's tabs and workers. Guides: the README and docs/ of the repository.
 * @module tabbit
 */

// ---- errors ----------------------------------------------------------------------------------

/**
 * The AMQP reply codes tabbit uses: every code of the Rust error enum (`ReplyCode` in
 * src/core/error.rs) and the ones the package's JS raises itself (tests/node/surface.test.mjs
 * checks both). Errors carry all but 312:
 * - 312 NO_ROUTE: not an error: the `replyCode` of a returned mandatory message (`ReturnMessageFields`).
 * - 320 CONNECTION_FORCED: the context hosting the broker went away before answering (the
 *   call may or may not have taken effect); another context hosts now.
 * - 403 ACCESS_REFUSED: a name starting with `amq.` (reserved), an operation on the default
 *   exchange `''` or a built-in one, publishing to an internal exchange, or a consumer
 *   conflicting with an exclusive one.
 * - 404 NOT_FOUND: no such queue or exchange: declare it first.
 * - 405 RESOURCE_LOCKED: the queue is exclusive to another connection, or exists and is not
 *   exclusive when declared `exclusive`.
 * - 406 PRECONDITION_FAILED: a bad argument or option, an inequivalent redeclaration, an
 *   unknown delivery tag, `ifUnused`/`ifEmpty` not met, a broker limit reached.
 * - 501 FRAME_ERROR: a STOMP frame from RabbitMQ that cannot be read (the bridge).
 * - 503 COMMAND_INVALID: an unknown exchange type.
 * - 504 CHANNEL_ERROR: the channel or connection is closed.
 * - 506 RESOURCE_ERROR: storage is full or cannot be opened; a publish that was not stored.
 * - 530 NOT_ALLOWED: a consumer tag in use on the channel, too many channels.
 * - 540 NOT_IMPLEMENTED: this runtime lacks what the call needs (a WebSocket for `bridge()`).
 * - 541 INTERNAL_ERROR: a bug in tabbit; please report it.
 */
export type ReplyCode = 312 | 320 | 403 | 404 | 405 | 406 | 501 | 503 | 504 | 506 | 530 | 540 | 541;

/**
 * An error from tabbit: an `Error` with the AMQP reply `code` (`ReplyCode`). One the broker
 * gave for an AMQP method has amqplib's shape and wording too: `classId` and `methodId` name
 * the method (50/10 queue.declare, 60/40 basic.publish, 60/70 basic.get, …), a rejected call
 * reads `Operation failed: QueueDeclare; 404 (NOT-FOUND) with message "NOT_FOUND - no queue
 * 'jobs': declare it first with assertQueue"`, and a channel's 'error' event `Channel closed
 * by server: 404 (NOT-FOUND) with message "…"`. Other errors read `NOT_FOUND - …`. Not a
 * class: test `code`, not `instanceof`. Errors that do not come from the broker have no
 * `code`: the wasm failing to load, an adapter's own rejection, an AbortSignal's reason.
 */
export interface TabbitError extends Error {
  code: ReplyCode | number;
  /** The AMQP class of the method that failed (40 exchange, 50 queue, 60 basic, 20 channel). */
  classId?: number;
  /** The AMQP method that failed, within its class. */
  methodId?: number;
}

// ---- field tables ----------------------------------------------------------------------------

/**
 * A value in a field table (`headers`, `arguments`). Integers within 2^53 are stored as
 * integers, other numbers as floats; a `Date` becomes an AMQP timestamp (whole seconds);
 * `null` and `undefined` become void. Nesting is limited to a few levels (406 beyond).
 */
export type FieldValue =
  | null
  | undefined
  | boolean
  | number
  | string
  | Uint8Array
  | Date
  | FieldValue[]
  | FieldTable;

/** A field table given to tabbit: a plain object of `FieldValue`s. */
export interface FieldTable {
  [key: string]: FieldValue;
}

/** Queue arguments: the `x-` ones tabbit acts on (a wrong type or range is 406), and any other. */
export interface QueueArguments extends FieldTable {
  /** Milliseconds a message may stay in the queue (0 to 2^32-1). */
  'x-message-ttl'?: number;
  /** Milliseconds without use after which the queue is deleted (1 to 2^32-1). */
  'x-expires'?: number;
  /** Most ready messages; then `x-overflow` decides. */
  'x-max-length'?: number;
  /** Most ready bytes of bodies; then `x-overflow` decides. */
  'x-max-length-bytes'?: number;
  /** What a full queue does: drop (dead-letter) its head (the default), or refuse the publish (a nack, 506). */
  'x-overflow'?: 'drop-head' | 'reject-publish' | 'reject-publish-dlx';
  'x-dead-letter-exchange'?: string;
  /** Needs `x-dead-letter-exchange` too. */
  'x-dead-letter-routing-key'?: string;
  /** 1 to 255: a priority queue. */
  'x-max-priority'?: number;
  'x-single-active-consumer'?: boolean;
  /** Deliveries after which a message that keeps coming back is dead-lettered (`delivery_limit`). */
  'x-delivery-limit'?: number;
  /** Only `'classic'`. */
  'x-queue-type'?: 'classic';
}

/** Exchange arguments. */
export interface ExchangeArguments extends FieldTable {
  /** Where messages this exchange cannot route go. */
  'alternate-exchange'?: string;
}

/** Binding arguments (`bindQueue`, `bindExchange`): for a headers exchange, the headers to match. */
export interface BindingArguments extends FieldTable {
  /** Headers exchange: match all the headers (the default) or any; `-with-x` also compares `x-` headers. */
  'x-match'?: 'all' | 'any' | 'all-with-x' | 'any-with-x';
}

/** Consumer arguments. */
export interface ConsumeArguments extends FieldTable {
  /** The consumer's priority (as the `priority` option). */
  'x-priority'?: number;
}

/** Headers given to `publish`. */
export interface PublishHeaders extends FieldTable {
  /** tabbit's delayed delivery: the message waits this many milliseconds in its queues before it is ready. */
  'x-delay'?: number;
}

// ---- options ---------------------------------------------------------------------------------

export declare namespace Options {
  /** `connect()`'s options. */
  interface Connect {
    /** The broker's name (default `'default'`); with IndexedDB, its database is `tabbit:<name>`. Every connect() to a name in this context shares one broker. */
    name?: string;
    /**
     * Where durable things are stored: `'indexeddb'` (the default where IndexedDB exists),
     * `'memory'` (the default elsewhere: nothing survives the context), or a `StorageAdapter`.
     * A broker already open in this context with other storage: 406. IndexedDB missing or
     * failing to open: 506 (tabbit never falls back to memory by itself).
     */
    storage?: 'indexeddb' | 'memory' | StorageAdapter;
    /**
     * The wasm, for runtimes that cannot fetch the file beside the module: its bytes, a
     * `WebAssembly.Module`, a URL or a `Response`. Used by the first connect() only.
     */
    wasm?: WasmSource | Promise<WasmSource>;
    /**
     * Default `true`: where Web Locks and BroadcastChannel exist (browsers), every tab and
     * worker of the origin that connects to `name` joins one broker, hosted by one of them;
     * when the host goes, another takes over. `false`: the broker stays in this context.
     * Without Web Locks (Node, Deno, workerd) the broker is always this context's own.
     */
    mesh?: boolean;
    /**
     * What this context is called in `stats().contexts`. Default: the page's title (or path),
     * or the worker's kind and name. The first connect() to a name in a context sets it.
     */
    label?: string;
    /**
     * Bounds the broker enforces while this context hosts it (the hosting context's apply to
     * every context). Exceeding one is an error (406, or 530 for channels) that names it.
     */
    limits?: Limits;
    /**
     * A namespace for the broker's origin-wide resources (IndexedDB database, Web Locks,
     * BroadcastChannels), so that two apps on one origin using the same broker `name` do
     * not share a broker by accident. 1 to 255 bytes without ':'. Default: none, which keeps
     * the names of earlier versions (`tabbit:<name>`), so existing data stays readable.
     * Not a security boundary: every script of the origin can open any app's broker.
     */
    app?: string;
    /**
     * `true`: ask the browser to persist the origin's storage (`navigator.storage.persist()`),
     * once per context, without waiting for the answer: `conn.persist()` gives it,
     * `conn.storageInfo().persist` tells it. Default `false`: tabbit never asks by itself
     * (Firefox may show the user a prompt). Not available in workers (`persist: 'unavailable'`).
     * See docs/storage.md, "Eviction".
     */
    persist?: boolean;
  }

  /** `connect()`'s `limits`: whole numbers from 1 (`maxQueueLength` also `Infinity`). */
  interface Limits {
    /** Largest message: body, headers and properties, in bytes. Default 16 MiB; at most 48 MiB. */
    maxMessageBytes?: number;
    /** Default 10,000. */
    maxQueues?: number;
    /** Default 10,000. */
    maxExchanges?: number;
    /** Default 100,000. */
    maxBindings?: number;
    /** Default 10,000. */
    maxConsumers?: number;
    /** Channels per connection. Default 2,047. */
    maxChannels?: number;
    /**
     * Ready messages a queue declared without `x-max-length` takes; past it a publish is
     * refused as with `x-overflow: reject-publish` (a confirm channel's callback gets an
     * error naming `limits.maxQueueLength`). A queue's own `x-max-length` wins.
     * Default 1,000,000; `Infinity`: no default.
     */
    maxQueueLength?: number;
  }

  /** `assertQueue`'s options (the shorthands set the `x-` arguments). */
  interface AssertQueue {
    /** Survives a restart of the broker (with persistent messages stored). Default `true`. */
    durable?: boolean;
    /** Only this connection may use the queue, and it goes when the connection closes. Default `false`. */
    exclusive?: boolean;
    /** Deleted when its last consumer cancels (once it had one). Default `false`. */
    autoDelete?: boolean;
    arguments?: QueueArguments;
    /** `x-message-ttl`: milliseconds. */
    messageTtl?: number;
    /** `x-expires`: milliseconds unused before the queue is deleted. */
    expires?: number;
    /** `x-dead-letter-exchange`. */
    deadLetterExchange?: string;
    /** `x-dead-letter-routing-key`. */
    deadLetterRoutingKey?: string;
    /** `x-max-length`. */
    maxLength?: number;
    /** `x-max-priority` (1 to 255). */
    maxPriority?: number;
  }

  /** `assertExchange`'s options. */
  interface AssertExchange {
    /** Default `true`. */
    durable?: boolean;
    /** Only other exchanges may publish to it (publishing to it: 403). Default `false`. */
    internal?: boolean;
    /** Deleted when its last binding goes. Default `false`. */
    autoDelete?: boolean;
    /** `alternate-exchange`: where messages it cannot route go. */
    alternateExchange?: string;
    arguments?: ExchangeArguments;
  }

  /**
   * `publish`'s and `sendToQueue`'s options, amqplib's. Any other key (among them amqplib's
   * `CC`, `BCC` and `immediate`, which tabbit does not support) throws 406 naming it.
   */
  interface Publish {
    /** Stored with a durable queue, surviving a restart. Same as `deliveryMode: 2`. */
    persistent?: boolean;
    /** 2 is persistent, 1 (or 0) is not. */
    deliveryMode?: number;
    /** Return the message (the channel's 'return' event) if no queue takes it. */
    mandatory?: boolean;
    /** Milliseconds the message may wait in a queue, as a decimal string or a whole number. */
    expiration?: string | number;
    /** 0 to 255; only a queue with `maxPriority` orders by it. */
    priority?: number;
    headers?: PublishHeaders;
    messageId?: string;
    correlationId?: string;
    replyTo?: string;
    contentType?: string;
    contentEncoding?: string;
    /** A whole number, carried as given (AMQP's is seconds). */
    timestamp?: number;
    type?: string;
    userId?: string;
    appId?: string;
    /** Not supported by tabbit (406): bind the queues to the exchange instead. */
    CC?: never;
    /** Not supported by tabbit (406): bind the queues to the exchange instead. */
    BCC?: never;
    /** Not supported by tabbit (406). */
    immediate?: never;
    /**
     * Beyond amqplib: the content is any structured-cloneable value (see `encodeValue`), sent
     * as bytes with contentType `'application/x-tabbit-structured'`. A value that cannot be
     * cloned (a function, a symbol, a Blob): 406.
     */
    structured?: boolean;
  }

  /** `consume`'s (and `messages`') options. */
  interface Consume {
    /** The consumer's tag; default: one generated (`amq.ctag-…`). A tag in use on the channel: 530. */
    consumerTag?: string;
    /** Messages count as acked when delivered: do not ack them. Default `false`. */
    noAck?: boolean;
    /** The only consumer of the queue (another consumer on it: 403). Default `false`. */
    exclusive?: boolean;
    /** The consumer's priority (`x-priority`): higher ones get messages first. */
    priority?: number;
    arguments?: ConsumeArguments;
    /** Accepted and ignored, as RabbitMQ does. */
    noLocal?: boolean;
    /** Beyond amqplib: aborting it cancels the consumer. Already aborted: rejects with its reason. */
    signal?: AbortSignalLike;
    /** Beyond amqplib: messages published with `structured` get their value decoded as `message.value`. */
    structured?: boolean;
  }

  /** `get`'s options. */
  interface Get {
    /** The message counts as acked at once. Default `false`. */
    noAck?: boolean;
    /** Beyond amqplib: a message published with `structured` gets its value decoded as `message.value`. */
    structured?: boolean;
  }

  /** `deleteQueue`'s options. */
  interface DeleteQueue {
    /** Only if it has no consumers (else 406). */
    ifUnused?: boolean;
    /** Only if it has no ready messages (else 406). */
    ifEmpty?: boolean;
  }

  /** `deleteExchange`'s options. */
  interface DeleteExchange {
    /** Only if it has no bindings (else 406). */
    ifUnused?: boolean;
  }
}

/**
 * What `connect({wasm})` accepts, as the wasm-bindgen loader takes it: the module's bytes (an
 * `ArrayBuffer` or a view such as a `Uint8Array` or Node's `Buffer`), a compiled
 * `WebAssembly.Module`, where to fetch it (a URL string, a `URL`, a `Request`), or a `Response`.
 * Written with the structural types below rather than the DOM's (`BufferSource`, `RequestInfo`,
 * `Response`, `WebAssembly.Module`), so that the types compile in a project without the DOM lib
 * (Node, Deno, Workers); the platform's own objects fit them.
 */
export type WasmSource = ArrayBuffer | ArrayBufferView | WasmModule | string | UrlLike | RequestLike | ResponseLike;

/**
 * A compiled `WebAssembly.Module` (in workerd: `import wasm from 'tabbit/tabbit_bg.wasm'`). The
 * platform's type has no members (lib.dom.d.ts: `interface Module {}`), so any object fits it.
 */
export type WasmModule = object;

/** A `URL`: what the loader fetches. */
export interface UrlLike {
  readonly href: string;
}

/** A `Request` for the wasm: what the loader fetches. */
export interface RequestLike {
  readonly url: string;
  readonly method: string;
}

/** A `Response` holding the wasm (`fetch(…)`'s). */
export interface ResponseLike {
  readonly ok: boolean;
  readonly status: number;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/**
 * An `AbortSignal` (the DOM's, Node's, Deno's or workerd's): what `consume` and `messages` read
 * of it. Structural, so that the types need no DOM lib.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: any;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

// ---- replies ---------------------------------------------------------------------------------

export declare namespace Replies {
  /** Nothing, as amqplib's: `{}`. */
  // eslint-disable-next-line @typescript-eslint/no-empty-interface
  interface Empty {}

  interface AssertQueue {
    /** The queue's name: the generated `amq.gen-…` one when declared with `''`. */
    queue: string;
    /** Its ready messages. */
    messageCount: number;
    consumerCount: number;
  }

  interface PurgeQueue {
    /** The ready messages purged. */
    messageCount: number;
  }

  interface DeleteQueue {
    /** The ready messages deleted with the queue. */
    messageCount: number;
  }

  interface AssertExchange {
    exchange: string;
  }

  interface Consume {
    consumerTag: string;
  }
}

// ---- messages --------------------------------------------------------------------------------

/** `x-death`: one entry per (queue, reason) a message was dead-lettered from, most recent first. */
export interface XDeath {
  /** How many times for this (queue, reason). */
  count: number;
  reason: 'rejected' | 'expired' | 'maxlen' | 'delivery_limit';
  queue: string;
  /** When, in seconds since the epoch. */
  time: number;
  exchange: string;
  'routing-keys': string[];
  'original-expiration'?: string;
}

/** The headers of a message handed to the app. Values come back as numbers, strings, booleans, `null`, `Uint8Array`s, arrays and objects (a `Date` as seconds). */
export interface MessagePropertyHeaders {
  /** On a message that was delivered before and came back (nack, a closed channel, a restart): how many times. */
  'x-delivery-count'?: number;
  'x-death'?: XDeath[];
  'x-first-death-reason'?: XDeath['reason'];
  'x-first-death-queue'?: string;
  'x-first-death-exchange'?: string;
  'x-last-death-reason'?: XDeath['reason'];
  'x-last-death-queue'?: string;
  'x-last-death-exchange'?: string;
  [key: string]: any;
}

/** A message's properties, as published (`Options.Publish`); those not set are `undefined`. */
export interface MessageProperties {
  contentType: string | undefined;
  contentEncoding: string | undefined;
  /** Always an object (empty when none were set). */
  headers: MessagePropertyHeaders;
  /** 2 persistent, 1 not: always set. */
  deliveryMode: 1 | 2;
  priority: number | undefined;
  correlationId: string | undefined;
  replyTo: string | undefined;
  /** Milliseconds, as a decimal string (a number given to publish comes back as a string). */
  expiration: string | undefined;
  messageId: string | undefined;
  timestamp: number | undefined;
  type: string | undefined;
  userId: string | undefined;
  appId: string | undefined;
}

export interface CommonMessageFields {
  /** What `ack`/`nack`/`reject` name the message by, on this channel. */
  deliveryTag: number;
  /** It was delivered before (and not acked). */
  redelivered: boolean;
  /** The exchange it was published to (`''` the default exchange). */
  exchange: string;
  routingKey: string;
  /**
   * Beyond amqplib: the message's position in its queue. It rises with every message the queue
   * takes and is kept across restarts and failovers while the queue exists, so that it names the
   * message (with the queue) for deduplication; the bridge builds its message ids from it.
   */
  sequence: number;
}

export interface MessageFields extends CommonMessageFields {
  consumerTag?: string;
  messageCount?: number;
}

export interface ConsumeMessageFields extends CommonMessageFields {
  consumerTag: string;
}

export interface GetMessageFields extends CommonMessageFields {
  /** Ready messages left in the queue. */
  messageCount: number;
}

/**
 * A message delivered to this channel (by `consume`, `messages` or `get`): ack it unless `noAck`.
 * `T`: the type of `value`, what a `structured` publish sent (unchecked: the bytes are decoded
 * as they came; default `unknown`).
 */
export interface Message<T = unknown> {
  /** The body, as bytes (a string published comes back as its UTF-8): `content.toString()` is the text. */
  content: MessageContent;
  fields: MessageFields;
  properties: MessageProperties;
  /**
   * With the `structured` option of consume/get/messages: the value a `structured` publish sent
   * (undefined for a message published without `structured`).
   */
  value?: T;
}

/** A message from `consume` or `messages`. */
export interface ConsumeMessage<T = unknown> extends Message<T> {
  fields: ConsumeMessageFields;
}

/** A message from `get`. */
export interface GetMessage<T = unknown> extends Message<T> {
  fields: GetMessageFields;
}

export interface ReturnMessageFields {
  /** 312 NO_ROUTE. */
  replyCode: number;
  /** `'NO_ROUTE'`. */
  replyText: string;
  exchange: string;
  routingKey: string;
}

/** A `mandatory` message no queue took, given back by the channel's 'return' event. It was not delivered: nothing to ack. */
export interface ReturnMessage {
  content: MessageContent;
  fields: ReturnMessageFields;
  properties: MessageProperties;
}

/** An encoding `MessageContent.toString` takes, as Buffer's does. */
export type ContentEncoding =
  | 'utf8' | 'utf-8' | 'hex' | 'base64' | 'base64url' | 'latin1' | 'binary' | 'ascii' | 'utf16le' | 'utf-16le' | 'ucs2' | 'ucs-2';

/**
 * A message's body, as amqplib gives it: in Node, Deno and Bun a `Buffer`; elsewhere a
 * `Uint8Array` whose `toString` decodes as Buffer's does, so that `msg.content.toString()`,
 * `` `${msg.content}` `` and `JSON.parse(msg.content)` read the text.
 */
export interface MessageContent extends Uint8Array {
  /** The bytes from `start` to `end` as text (`'utf8'` by default); an unknown encoding throws a TypeError. */
  toString(encoding?: ContentEncoding, start?: number, end?: number): string;
  /** `{ type: 'Buffer', data: [...bytes] }`, as Buffer's. */
  toJSON(): { type: 'Buffer'; data: number[] };
}

/** Message content given to `publish`: bytes (Node's `Buffer` is a `Uint8Array`), or a string, sent as UTF-8. Anything else throws 406. */
export type Content = Uint8Array | string;

// ---- storage ---------------------------------------------------------------------------------

/** A stored record: `[store, key, value]`. */
export type StorageRecord = [store: string, key: string | number, value: Uint8Array];

/** One write of a batch: `value` `undefined` deletes the record. */
export interface StorageWrite {
  /** One of `'segments'`, `'acks'`, `'queues'`, `'exchanges'`, `'bindings'`, `'meta'`. */
  store: string;
  /** A string or a non-negative whole number. */
  key: string | number;
  value: Uint8Array | undefined;
}

/**
 * Storage for runtimes without IndexedDB (workerd, Deno, Node): any object with these two
 * methods, passed as `connect({storage})`. Records are opaque bytes: keep them as they are.
 * The broker never awaits two writes at once. Queues do not page out to an adapter.
 */
export interface StorageAdapter {
  /**
   * Every record written so far (after all completed writes). Entries that are not
   * `[string, key, Uint8Array]` are skipped and listed in `Connection.problems`.
   */
  load(): Iterable<StorageRecord> | Promise<Iterable<StorageRecord>>;
  /**
   * Applies one batch atomically, resolving only once it is durable. Reject to fail the
   * batch: its publishes are nacked (506) and withdrawn, and nothing of it may have been applied.
   */
  write(writes: StorageWrite[]): Promise<void> | void;
}

// ---- stats -----------------------------------------------------------------------------------

/** One queue in `BrokerStats`. Counters count since the broker opened. */
export interface QueueStats {
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  arguments: { [key: string]: any };
  /**
   * The most ready messages it takes: its `x-max-length`, else the hosting context's
   * `limits.maxQueueLength` (not written into `arguments`); `null` when neither applies.
   */
  effectiveMaxLength: number | null;
  /** Messages waiting to be delivered. */
  ready: number;
  /** Bytes of their bodies. */
  readyBytes: number;
  /** Of the ready ones, those whose body is in storage only (deep durable queues). */
  pagedOut: number;
  /** Delivered, not yet acked. */
  unacked: number;
  consumers: number;
  published: number;
  delivered: number;
  redelivered: number;
  /** Acked, by the app or at delivery (`noAck`). */
  acked: number;
  deadLettered: number;
  /** Dropped without dead-lettering, or purged. */
  discarded: number;
}

/** `Connection.stats()`: the broker's queues, for a management view. */
export interface BrokerStats {
  /** When the host took these figures (ms since the epoch). */
  at: number;
  queues: QueueStats[];
  /** Every exchange, the default one (`''`) and the `amq.*` ones included. */
  exchanges: ExchangeStats[];
  /** Every explicit binding (not the default exchange's implicit ones). */
  bindings: BindingStats[];
  /** The contexts (tabs, workers) with connections to the broker, and their load. */
  contexts: ContextStats[];
  /** Sums of the queues' counters. */
  totals: Counts;
  /** Per second, over the last 5 seconds of stats() calls (0 at the first call). */
  rates: Counts;
  storage: StorageKind;
  /** The id of the context that hosts the broker. */
  host: string;
  /** Whether that is this context. */
  hosting: boolean;
  /** Posts from other contexts the host dropped: not tabbit's, another protocol version, malformed or too large. */
  droppedPosts: number;
  /**
   * The hosting context found the broker's IndexedDB database deleted (`null`: never): `at`
   * when (ms since the epoch), `lost` the messages lost with it, `null` if not known. Deleted
   * under a running broker (the site's data cleared), the broker writes everything it holds
   * in memory again, and only messages paged out to the database are lost; found deleted when
   * the broker opens it (a mark in localStorage, kept by a page, says it existed), what it
   * held is lost. See docs/storage.md.
   */
  storageEmptied: { at: number; lost: number | null } | null;
  /** The broker's bridges to RabbitMQ (`Connection.bridge()`), as the hosting context last told. */
  bridges: BridgeStatus[];
}

export interface ExchangeStats {
  name: string;
  type: 'direct' | 'fanout' | 'topic' | 'headers';
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  arguments: { [key: string]: any };
}

export interface BindingStats {
  source: string;
  destination: string;
  destinationType: 'queue' | 'exchange';
  routingKey: string;
  arguments: { [key: string]: any };
}

export interface ContextStats {
  id: string;
  /** `connect({label})`, or the page's title or the worker's name. */
  label: string;
  hosting: boolean;
  /** Whether it is the context that called stats(). */
  self: boolean;
  connections: number;
  channels: number;
  consumers: number;
  unacked: number;
}

export interface Counts {
  published: number;
  delivered: number;
  redelivered: number;
  acked: number;
  deadLettered: number;
  discarded: number;
}

/** A message `peek()` shows: not delivered, so no delivery tag. */
export interface PeekedMessage {
  content: MessageContent;
  fields: { exchange: string; routingKey: string };
  properties: MessageProperties;
}

/** What a `'failover'` event carries. */
export interface FailoverInfo {
  /** Whether this context is the new host. */
  hosting: boolean;
  /**
   * Consumers of this context the new host could not restore (their queue died with the old
   * host and was not declared again); their callbacks got `null`.
   */
  cancelled: string[];
  /**
   * What this context declared that died with the old host (transient exchanges, transient and
   * exclusive queues, bindings) and the new host could not declare again, each with why: for
   * example a binding to a transient exchange that only the dead host's tab had declared.
   * Empty when everything was restored.
   */
  notRestored: { what: string; error: Error & { code: number } }[];
}

/** The storage a broker uses. */
export type StorageKind = 'indexeddb' | 'memory' | 'adapter';

/**
 * `Connection.storageInfo()`, and the 'storage' event: what the browser says of the origin's
 * storage that holds the broker (`navigator.storage.persisted()` and `estimate()`). `null` where
 * the platform cannot say (no `navigator.storage`, as in WebKitGTK) or the storage is not the
 * origin's (`'memory'`, an adapter).
 */
export interface StorageInfo {
  kind: StorageKind;
  /** Whether the browser keeps the origin's storage until the user deletes it (not evicted under pressure). */
  persisted: boolean | null;
  /** Bytes the origin uses (every storage of the origin, not only tabbit's). */
  usage: number | null;
  /** Bytes the origin may use. */
  quota: number | null;
  /**
   * This context's request for persistence (`connect({ persist: true })`, `conn.persist()`):
   * null if not asked, 'pending' until the browser answers, 'granted', 'denied', or
   * 'unavailable' where it cannot be asked (workers; browsers without `persist()`).
   */
  persist: null | 'pending' | 'granted' | 'denied' | 'unavailable';
  /** `BrokerStats.storageEmptied`: when the broker's database was found deleted (not in the 'storage' event). */
  emptied?: { at: number; lost: number | null } | null;
}

// ---- events ----------------------------------------------------------------------------------

/** An event listener. */
export type Listener = (...args: any[]) => void;

/**
 * The on/once/off of amqplib's EventEmitters: the base of `Connection` and `Channel`, exported
 * for apps that type their own listeners or extend it (`class Jobs extends Emitter<JobEvents>`).
 */
export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  on<K extends keyof Events>(event: K, listener: Events[K]): this;
  addListener<K extends keyof Events>(event: K, listener: Events[K]): this;
  /** Runs `listener` on the next `event` only. */
  once<K extends keyof Events>(event: K, listener: Events[K]): this;
  /** Removes `listener` (also one added with `once`). */
  off<K extends keyof Events>(event: K, listener: Events[K]): this;
  removeListener<K extends keyof Events>(event: K, listener: Events[K]): this;
  listenerCount<K extends keyof Events>(event: K): number;
  /** Calls the listeners (tabbit emits its events itself); an 'error' with none is reported as uncaught. */
  emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): boolean;
}

export interface ConnectionEvents {
  /** The connection closed (`close()`). */
  close: () => void;
  error: (err: TabbitError) => void;
  /**
   * Beyond amqplib: the context hosting the broker went away and another took over; this
   * context's channels, consumers and unacked deliveries were carried over. Calls the old
   * host never answered rejected with 320, and publishes it never confirmed got a 320 error
   * in their callback (they may or may not have been stored).
   */
  failover: (info: FailoverInfo) => void;
  /**
   * Beyond amqplib, a warning, at most once per connection: this connection published a
   * persistent message that can land in a durable queue (by name, or through an exchange's
   * bindings) while the origin's storage is not known to be persisted (`persisted` false, or
   * null where the browser cannot say), so the browser may evict it with the rest of the
   * origin's data. Not for `'memory'` or adapter storage. See docs/storage.md, "Eviction".
   */
  storage: (info: StorageInfo) => void;
}

export interface ChannelEvents {
  /** A `mandatory` message no queue took. */
  return: (message: ReturnMessage) => void;
  /** A channel error closed the channel ('close' follows). */
  error: (err: TabbitError) => void;
  /** The channel closed: by `close()`, its connection closing, or a channel error. */
  close: () => void;
  /** A confirm channel's publish was confirmed (after its callback). `deliveryTag`: its sequence number, from 1. */
  ack: (fields: ConfirmFields) => void;
  /** A confirm channel's publish was refused (after its callback). */
  nack: (fields: ConfirmFields) => void;
}

/** A confirm channel's 'ack' or 'nack', as amqplib gives it; tabbit confirms one publish at a time (`multiple` false). */
export interface ConfirmFields {
  deliveryTag: number;
  multiple: boolean;
}

// ---- the API ---------------------------------------------------------------------------------

/**
 * Connects to broker `name` of this context (opening it, and loading the wasm, on first use).
 * Rejects with 406 for options that are not an object (tabbit takes no URL: it runs in this
 * page, not on a server) or a broker open already with other storage, and with 506 when
 * storage cannot be opened.
 */
export function connect(options?: Options.Connect): Promise<Connection>;

/** The package version (loads the wasm if needed). */
export function version(): Promise<string>;

/** The contentType of a message published with `structured`. */
export const STRUCTURED: 'application/x-tabbit-structured';

/**
 * The bytes a `structured` publish sends: what `structuredClone()` copies, for undefined, null,
 * booleans, numbers, bigints, strings, Date, RegExp, Array, plain objects (other objects as
 * their own enumerable properties, as structuredClone does), Map, Set, ArrayBuffer, typed
 * arrays, DataView and Error, with shared references and cycles kept. Anything else (a
 * function, a symbol, a Blob, a DOM node) throws 406.
 */
export function encodeValue(value: unknown): Uint8Array;

/** The value `encodeValue` encoded (`T`: its type, unchecked; default `unknown`); other bytes throw 406. */
export function decodeValue<T = unknown>(bytes: Uint8Array): T;

/** A connection to a broker: amqplib's Connection. Events: 'close', 'error', 'failover', 'storage'. */
export class Connection extends Emitter<ConnectionEvents> {
  private constructor();

  /** Whether this context hosts the broker now (the other contexts send it their commands). */
  readonly hosting: boolean;

  /** Which storage the broker uses. */
  readonly storage: StorageKind;

  /** Stored records that recovery skipped (corrupt or foreign), each with why. */
  readonly problems: string[];

  /** A new channel. Rejects with 504 once the connection is closed, 530 at the channel limit. */
  createChannel(): Promise<Channel>;

  /** A new channel in confirm mode: each publish is confirmed (stored, for a persistent message to a durable queue) or refused. */
  createConfirmChannel(): Promise<ConfirmChannel>;

  /**
   * Closes the connection: its channels close (their unacked messages go back to their
   * queues), its exclusive queues are deleted. The last connection to a broker waits for
   * pending writes and closes its storage. Closing again does nothing.
   */
  close(): Promise<void>;

  /** Resolves when every write made so far is stored (acks are stored with the next commit). */
  flush(): Promise<void>;

  /**
   * Beyond amqplib: when the broker next has something due (a message's TTL, a delayed message,
   * an `x-expires` lease, a retry after a failed write), in ms since the epoch; null if nothing
   * is, or if another context hosts the broker. The broker runs it on its own timer; a host that
   * can be evicted sets an alarm for it (as `tabbit/durable-object` does).
   */
  nextWakeup(): number | null;

  /** The broker's exchanges, queues (counts and counters), bindings, contexts, totals and rates. */
  stats(): Promise<BrokerStats>;

  /**
   * Beyond amqplib: the storage kind, whether the browser persists it, its usage and quota,
   * and this context's persist request. Waits first for the storage checks under way, so that
   * a 'storage' event they lead to has come.
   */
  storageInfo(): Promise<StorageInfo>;

  /**
   * Beyond amqplib: asks the browser to persist the origin's storage and resolves with its
   * answer: true, false, or null where it cannot be asked (workers, browsers without
   * `navigator.storage.persist`). Asks once per context (`connect({ persist: true })` included),
   * and again if the last answer was false. Firefox shows the user a prompt and answers only
   * when the user does: ask from a user action there.
   */
  persist(): Promise<boolean | null>;

  /**
   * Beyond amqplib, for a management view: up to `count` (default 10, at most 1,000) ready
   * messages at the head of `queue`, in delivery order, without consuming them. `[]` for a
   * queue that does not exist or whose head is paged out to storage.
   */
  peek(queue: string, count?: number): Promise<PeekedMessage[]>;

  /**
   * Beyond amqplib: bridges the broker to a RabbitMQ server over Web-STOMP (docs/bridge.md in the repository).
   * Declares and binds the outbox queues first, then resolves once the context hosting the
   * broker runs the bridge; it connects (and reconnects, with backoff) in the background:
   * watch `status`. Rejects with 406 on bad options (the message says which and what to write),
   * 540 where there is no WebSocket (Node).
   */
  bridge(options: BridgeOptions): Promise<Bridge>;

  /**
   * Beyond amqplib: a Web-STOMP endpoint of this broker, with the semantics of RabbitMQ's STOMP
   * plugin (docs/edge-deno.md in the repository; in Deno, `serveStomp()` of 'tabbit/deno' does
   * the HTTP part). Only the context hosting the broker can serve: elsewhere this throws (406).
   * Throws 406 on bad options, and unless `authenticate` or `allowAnonymous: true` is given.
   */
  stompEndpoint(options: StompEndpointOptions): StompEndpoint;
}

/** `Connection.stompEndpoint()`'s options. */
export interface StompEndpointOptions {
  /**
   * Whether the credentials of a CONNECT are good (`host`: the virtual host asked for, `'/'` if
   * none; `request`: what was given to `accept()` / `open()`, e.g. the HTTP upgrade request).
   * Called for each CONNECT that has a `login`; false, or a throw, refuses it with an ERROR frame.
   */
  authenticate?: (login: string, passcode: string | null, host: string, request: unknown) => boolean | Promise<boolean>;
  /** Let a CONNECT without `login` in, without asking `authenticate` (default false). */
  allowAnonymous?: boolean;
  /**
   * For sockets that outlive the broker's memory (a Durable Object's hibernatable WebSockets, as
   * TabbitBroker serves them): sessions say their state to `open()`'s `save` so that they can be
   * made again, heart-beats are answered by the transport (one end-of-line for each the client
   * sends), and connected sessions run no timer. Default false.
   */
  hibernatable?: boolean;
  limits?: StompLimits;
}

/** A Web-STOMP endpoint's limits: each over it gets an ERROR frame, and the socket closes. */
export interface StompLimits {
  /** The largest frame, headers and body (default 4 MiB, RabbitMQ's default). */
  maxFrameBytes?: number;
  /** Sockets served at once (default 1,000). */
  maxConnections?: number;
  /** Subscriptions per socket (default 128). */
  maxSubscriptions?: number;
  /** How long a socket may take to send CONNECT and be let in (default 10,000 ms). */
  connectTimeoutMs?: number;
}

/** What `Connection.stompEndpoint()` returns. */
export class StompEndpoint {
  private constructor();
  /** Sockets served now. */
  readonly connections: number;
  /**
   * Serves a socket of yours: tabbit calls `send(bytes)` for each frame (or heart-beat) to send
   * and `close()` to close it. Hand what the socket receives to `receive`, and call `closed()`
   * when it closes (the session's unacked messages go back to their queues).
   */
  open(socket: {
    send(bytes: Uint8Array): void;
    close(): void;
    request?: unknown;
    /** A hibernatable endpoint's: called with the session's state whenever it changes; keep the last one beside the socket. */
    save?(state: string): void;
    /** A state `save` got: the session is made again (connected, subscribed) on this socket, which stayed open. */
    state?: string;
  }): {
    receive(data: Uint8Array | ArrayBuffer | string): void;
    closed(): void;
  };
  /** Serves a standard WebSocket (as `Deno.upgradeWebSocket` gives) from when it is open. */
  accept(ws: StompWebSocket, request?: unknown): void;
}

/** What `StompEndpoint.accept()` uses of a WebSocket (the standard API). */
export interface StompWebSocket {
  binaryType: string;
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(): void;
  addEventListener(type: 'open' | 'message' | 'close', listener: (event: { data?: unknown }) => void): void;
}

/** `Connection.bridge()`'s options. */
export interface BridgeOptions {
  /** Names the bridge among the broker's (default `'default'`); also in the outbox names. */
  name?: string;
  /** RabbitMQ's Web-STOMP endpoint, e.g. `'ws://127.0.0.1:15674/ws'` (ws:// or wss://, no credentials in it). */
  url: string;
  /** Default `'guest'` (which RabbitMQ accepts from localhost only). */
  login?: string;
  /** Default `'guest'`. Kept in memory only, and sent to the hosting context over the origin's BroadcastChannel. */
  passcode?: string;
  /** RabbitMQ virtual host (default `'/'`). */
  vhost?: string;
  /** STOMP heart-beats both ways, in ms (default 10,000; 0: none). */
  heartbeatMs?: number;
  /** Messages in flight each way per rule: unconfirmed SENDs, unacked MESSAGEs (default 100). */
  prefetch?: number;
  /** Backoff between connection attempts: doubles from `initialMs` (default 500) to `maxMs` (default 30,000), ±20%. */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** Local to RabbitMQ. */
  outbound?: BridgeOutbound[];
  /** RabbitMQ to local. */
  inbound?: BridgeInbound[];
}

/**
 * Local → RabbitMQ. `{ exchange, pattern?, to }`: messages routed by the local `exchange` with
 * a key matching `pattern` (a binding key: default `'#'` — for a direct exchange give the routing
 * key; a fanout exchange ignores it) wait in a durable outbox queue (`outbox`, default
 * `bridge.<name>.<exchange>[.<pattern>]`) until RabbitMQ confirms them. `{ queue, to }` sends
 * an existing local queue's messages instead. `to` is a STOMP destination: `/amq/queue/<q>` (a
 * queue that exists, e.g. declared by pika), `/queue/<q>` (RabbitMQ declares it durable if
 * missing, and refuses if it exists non-durable), `/exchange/<x>/<key>`, `/exchange/<x>` (the
 * message's own routing key) or `/topic/<key>`.
 */
export type BridgeOutbound =
  | { exchange: string; pattern?: string; outbox?: string; to: string }
  | { queue: string; to: string };

/**
 * RabbitMQ → local. `from`: a STOMP destination to subscribe to (`/amq/queue/<q>`, `/queue/<q>`,
 * `/exchange/<x>/<binding key>`, `/topic/<binding key>`). `to`: a local queue (by the default
 * exchange), or a local exchange with `routingKey` (default: the one the message came with).
 * Messages are stored as persistent and acked to RabbitMQ once the local broker confirmed them.
 */
export interface BridgeInbound {
  from: string;
  to: { queue: string } | { exchange: string; routingKey?: string };
  /** Unacked messages RabbitMQ may send ahead (default: the bridge's `prefetch`). */
  prefetch?: number;
}

/** What `Connection.bridge()` resolves to. */
export interface Bridge {
  readonly name: string;
  /** As the hosting context last told it; undefined until it has. */
  readonly status: BridgeStatus | undefined;
  /** This context no longer wants the bridge; it stops once no context does. Its outboxes stay. */
  close(): void;
}

/** A bridge's state, in `BrokerStats.bridges` and `Bridge.status`. */
export interface BridgeStatus {
  name: string;
  url: string;
  vhost: string;
  login: string;
  /** The id of the context that runs it (the host). */
  host: string;
  /** `'waiting'`: between attempts, until `retryAt`; `error` says why the last one ended. */
  state: 'connecting' | 'connected' | 'waiting' | 'stopped';
  error: string | null;
  /** When `state` last changed (ms since the epoch). */
  since: number;
  retryAt: number | null;
  /** Sessions that reached CONNECTED. */
  connects: number;
  /** `pending`: sent, not yet confirmed. `skippedHeaders`: custom headers with no text form, or a reserved name, left out. */
  outbound: { sent: number; confirmed: number; pending: number; skippedHeaders: number };
  /** `refused`: messages the local broker refused (a limit, full storage): RabbitMQ gets them back to offer again. */
  inbound: { received: number; acked: number; refused: number };
  outboxes: string[];
  /** The options, without the passcode. */
  rules: Omit<BridgeOptions, 'passcode'>;
}

/**
 * amqplib's Channel. Events: 'return' (mandatory messages no queue took), 'error' (a
 * channel error; 'close' follows), 'close'. Once closed, calls that return a promise reject
 * with 504; `ack`, `nack` and `reject` do nothing.
 */
export class Channel extends Emitter<ChannelEvents> {
  protected constructor();

  /**
   * Declares a queue, or checks that an existing one is declared alike (else 406; 405 if it
   * is another connection's exclusive queue). `queue` `''` or omitted: the broker names it
   * (`amq.gen-…`). Names starting with `amq.` are reserved (403).
   */
  assertQueue(queue?: string, options?: Options.AssertQueue): Promise<Replies.AssertQueue>;

  /** The queue's counts, if it exists (else 404, closing the channel). */
  checkQueue(queue: string): Promise<Replies.AssertQueue>;

  /**
   * Deletes a queue: its consumers are cancelled (their callbacks get `null`), its ready
   * messages dropped. A queue that does not exist: `{messageCount: 0}`.
   */
  deleteQueue(queue: string, options?: Options.DeleteQueue): Promise<Replies.DeleteQueue>;

  /** Drops the queue's ready messages (not the unacked ones). No such queue: 404. */
  purgeQueue(queue: string): Promise<Replies.PurgeQueue>;

  /**
   * Routes messages from exchange `source` to `queue` by `pattern` (a routing key, a topic
   * pattern with `*` and `#`, ignored by fanout; headers exchanges match `args`).
   * No such queue or exchange: 404; the default exchange: 403.
   */
  bindQueue(queue: string, source: string, pattern?: string, args?: BindingArguments): Promise<Replies.Empty>;

  /** Removes a binding (one that does not exist: succeeds). */
  unbindQueue(queue: string, source: string, pattern?: string, args?: BindingArguments): Promise<Replies.Empty>;

  /**
   * Declares an exchange of `type` `'direct'`, `'fanout'`, `'topic'` or `'headers'` (any
   * other: 503), or checks that an existing one is declared alike (else 406).
   */
  assertExchange(
    exchange: string,
    type: 'direct' | 'fanout' | 'topic' | 'headers',
    options?: Options.AssertExchange,
  ): Promise<Replies.AssertExchange>;

  /** Succeeds if the exchange exists (else 404, closing the channel). */
  checkExchange(exchange: string): Promise<Replies.Empty>;

  /** Deletes an exchange and its bindings (one that does not exist: succeeds). Built-in ones: 403. */
  deleteExchange(exchange: string, options?: Options.DeleteExchange): Promise<Replies.Empty>;

  /** Messages routed by `source` also go through `destination`. */
  bindExchange(destination: string, source: string, pattern?: string, args?: BindingArguments): Promise<Replies.Empty>;

  unbindExchange(destination: string, source: string, pattern?: string, args?: BindingArguments): Promise<Replies.Empty>;

  /**
   * Publishes a message to `exchange` (`''`: the default exchange, which routes to the queue
   * named `routingKey`). Returns `true` (there is no write buffer to fill). A bad argument
   * (content neither bytes nor a string, an unknown option) throws 406 and the channel stays
   * open; a refusal (no such exchange 404, an internal one 403, a bad `expiration` 406)
   * closes the channel with an 'error' event. On a closed channel, throws 504.
   */
  publish(exchange: string, routingKey: string, content: Content, options?: Options.Publish): boolean;
  /** With `structured: true`, the content is any structured-cloneable value. */
  publish(exchange: string, routingKey: string, content: unknown, options: Options.Publish & { structured: true }): boolean;

  /** `publish('', queue, content, options)`. */
  sendToQueue(queue: string, content: Content, options?: Options.Publish): boolean;
  sendToQueue(queue: string, content: unknown, options: Options.Publish & { structured: true }): boolean;

  /**
   * Starts a consumer: `onMessage` runs for each message, and with `null` if the broker
   * cancels the consumer (its queue was deleted). Ack each message unless `noAck`. An
   * exception in `onMessage` is reported as uncaught and does not stop the consumer.
   * No such queue: 404; another connection's exclusive queue: 405.
   */
  consume<T = unknown>(
    queue: string,
    onMessage: (message: ConsumeMessage<T> | null) => void,
    options?: Options.Consume,
  ): Promise<Replies.Consume>;

  /** Stops a consumer; its unacked messages stay with the channel. An unknown tag: succeeds. */
  cancel(consumerTag: string): Promise<Replies.Consume>;

  /** Takes one ready message from the queue, or `false` when there is none. No such queue: 404. */
  get<T = unknown>(queue: string, options?: Options.Get): Promise<GetMessage<T> | false>;

  /**
   * Acknowledges a message this channel delivered (or its `fields.deliveryTag`); with
   * `allUpTo`, every one up to it. Not a message: throws 406. A tag unknown to the channel
   * (acked already, from another channel): 406 closes the channel ('error' event).
   */
  ack(message: Message | number, allUpTo?: boolean): void;

  /** Acknowledges every outstanding message of the channel. */
  ackAll(): void;

  /**
   * Rejects a message (with `allUpTo`, every one up to it): `requeue` (default `true`) puts it
   * back in its queue, else it is dead-lettered (reason `rejected`) or dropped. Errors as `ack`.
   */
  nack(message: Message | number, allUpTo?: boolean, requeue?: boolean): void;

  /** `nack` of every outstanding message. */
  nackAll(requeue?: boolean): void;

  /** `nack` of one message; `requeue` defaults to `true`. */
  reject(message: Message | number, requeue?: boolean): void;

  /**
   * At most `count` (0 to 65535, 0 unlimited; else 406) unacked messages per consumer started
   * after this call, or with `global` for the channel's consumers together.
   */
  prefetch(count: number, global?: boolean): Promise<Replies.Empty>;

  /** Every unacked message of the channel goes back to its queue, to be delivered again. */
  recover(): Promise<Replies.Empty>;

  /**
   * Closes the channel: its consumers stop, its unacked messages go back to their queues,
   * and on a confirm channel pending publishes fail (504). Closing again does nothing.
   */
  close(): Promise<void>;

  /**
   * Beyond amqplib: the queue's messages as an async iterator over a consumer (started on
   * the first `next()`, where a consume error such as 404 is thrown). Ack each message
   * unless `noAck`. Ends when `options.signal` aborts, the consumer is cancelled by the
   * broker, the channel closes, or the loop exits (which cancels the consumer).
   */
  messages<T = unknown>(queue: string, options?: Options.Consume): AsyncGenerator<ConsumeMessage<T>, void, undefined>;
}

/** amqplib's ConfirmChannel: each publish is confirmed or refused, by its callback and `waitForConfirms`. */
export class ConfirmChannel extends Channel {
  /**
   * As `Channel.publish`; then `callback(null, {})` once the broker confirmed the message
   * (stored, for a persistent message to a durable queue), or `callback(err)` if it was
   * refused: 506 (not stored, a full queue with `reject-publish`), 504 (the channel closed
   * first) or the channel error that closed the channel. Throws 504 on a closed channel.
   */
  publish(
    exchange: string,
    routingKey: string,
    content: Content,
    options?: Options.Publish,
    callback?: (err: TabbitError | null, ok?: Replies.Empty) => void,
  ): boolean;
  publish(
    exchange: string,
    routingKey: string,
    content: unknown,
    options: Options.Publish & { structured: true },
    callback?: (err: TabbitError | null, ok?: Replies.Empty) => void,
  ): boolean;

  /** `publish('', queue, content, options, callback)`. */
  sendToQueue(
    queue: string,
    content: Content,
    options?: Options.Publish,
    callback?: (err: TabbitError | null, ok?: Replies.Empty) => void,
  ): boolean;
  sendToQueue(
    queue: string,
    content: unknown,
    options: Options.Publish & { structured: true },
    callback?: (err: TabbitError | null, ok?: Replies.Empty) => void,
  ): boolean;

  /** Resolves once every message published so far is confirmed; rejects if one was refused or the channel closed first. */
  waitForConfirms(): Promise<void>;
}

/** For `import amqp from 'tabbit'; amqp.connect(…)`, as with amqplib. */
declare const tabbit: {
  connect: typeof connect;
  version: typeof version;
  encodeValue: typeof encodeValue;
  decodeValue: typeof decodeValue;
  STRUCTURED: typeof STRUCTURED;
  Connection: typeof Connection;
  Channel: typeof Channel;
  ConfirmChannel: typeof ConfirmChannel;
  Emitter: typeof Emitter;
};
export default tabbit;
