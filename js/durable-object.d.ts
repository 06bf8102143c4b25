// Types of 'tabbit/durable-object' (js/durable-object.js): a Durable Object class hosting one
// tabbit broker per object. Declared without `@cloudflare/workers-types`; at run time the class
// extends `DurableObject` from 'cloudflare:workers', so its methods are callable on a stub (RPC).
import type { Connection, GetMessageFields, MessageProperties, Options, StompEndpointOptions, StompLimits } from './index.js';
import type { DurableObjectStorageOptions } from './storage/durable-object.js';

/** A message as get() answers it over RPC: plain data, and the handle to ack or nack it by. */
export interface BrokerMessage {
  /** For ack() / nack(); null with `noAck`. Valid while the object stays in memory. */
  handle: string | null;
  content: Uint8Array;
  fields: GetMessageFields;
  properties: MessageProperties;
  /** With `{ structured: true }`: the structured value the message carries. */
  value?: unknown;
}

export interface TabbitBrokerOptions {
  /** connect()'s `limits` for the object's broker. */
  limits?: Options.Limits;
  /** connect()'s `label`. */
  label?: string;
  /** durableObjectStorage()'s options (`backend`, `prefix`). */
  storage?: DurableObjectStorageOptions;
  /**
   * Serves Web-STOMP on this path (e.g. `'/ws'`): fetch() upgrades WebSocket requests to it, as
   * hibernatable WebSockets whose sessions outlive the object's eviction. Unset: no STOMP.
   */
  stompPath?: string;
  /** Whether a CONNECT's credentials are good (`request`: the upgrade request). Needed unless `allowAnonymous`. */
  authenticate?: StompEndpointOptions['authenticate'];
  /** Let a CONNECT without `login` in (default false). */
  allowAnonymous?: boolean;
  /** The STOMP endpoint's limits (frames, connections, subscriptions, connect timeout). */
  stompLimits?: StompLimits;
  /**
   * Default true: while deliveries are unacked (a STOMP consumer's, a get() not acked yet), the
   * object keeps itself in memory (a timer, and an alarm at least every 50 s), so that a consumer
   * slower than the runtime's idle window keeps its deliveries and its ack ids. False: the object
   * may hibernate meanwhile; its unacked messages then come again, redelivered, with new ack ids.
   */
  keepAliveWhileUnacked?: boolean;
}

export declare class TabbitBroker {
  /** Set by a subclass to configure the broker: `static options = { limits: { maxQueueLength: 10000 } }`. */
  static options: TabbitBrokerOptions;

  constructor(ctx: unknown, env: unknown);

  /** The Connection to this object's broker, opened on the first call (for subclass methods; not callable over RPC). */
  connection(): Promise<Connection>;

  /** Sets the object's alarm to the broker's next deadline; a subclass method that changes deadlines through connection() calls it before it returns. */
  syncAlarm(): Promise<void>;

  /** Opens the broker (which runs what is due: TTLs, delayed messages, x-expires), waits until that is stored, and sets the next alarm. A subclass's alarm() calls it. */
  alarm(): Promise<void>;

  /** Resolves `true` once confirmed (a persistent message to a durable queue: stored); rejects if refused. `body`: a string (UTF-8), bytes, or any value with `{ structured: true }`. */
  publish(exchange: string, routingKey: string, body: string | ArrayBuffer | ArrayBufferView | unknown, options?: Options.Publish & { structured?: boolean }): Promise<true>;
  sendToQueue(queue: string, body: string | ArrayBuffer | ArrayBufferView | unknown, options?: Options.Publish & { structured?: boolean }): Promise<true>;

  /** The next message of `queue`, or null if it is empty. */
  get(queue: string, options?: { noAck?: boolean; structured?: boolean }): Promise<BrokerMessage | null>;
  /** Resolves `true` once the ack is stored; rejects (406) for a handle that is not held (acked already, or the object restarted). */
  ack(handle: string): Promise<true>;
  /** Back to the queue (`requeue`, default true) or dead-lettered / dropped; resolves `true` once stored. */
  nack(handle: string, options?: { requeue?: boolean }): Promise<true>;

  assertQueue(queue: string, options?: Options.AssertQueue): Promise<{ queue: string; messageCount: number; consumerCount: number }>;
  checkQueue(queue: string): Promise<{ queue: string; messageCount: number; consumerCount: number }>;
  deleteQueue(queue: string, options?: Options.DeleteQueue): Promise<{ messageCount: number }>;
  purgeQueue(queue: string): Promise<{ messageCount: number }>;
  assertExchange(exchange: string, type: string, options?: Options.AssertExchange): Promise<{ exchange: string }>;
  bindQueue(queue: string, source: string, pattern: string, args?: Record<string, unknown>): Promise<true>;
  unbindQueue(queue: string, source: string, pattern: string, args?: Record<string, unknown>): Promise<true>;

  /** Connection.stats(). */
  stats(): ReturnType<Connection['stats']>;
  /** Resolves `true` once every write made so far is stored. */
  flush(): Promise<true>;

  /** Web-STOMP on `options.stompPath` (a WebSocket upgrade: 101, or 426 without one); a 404 for anything else. */
  fetch(request: Request): Promise<Response>;

  /** The hibernatable WebSocket API's handlers, for the STOMP sockets (a subclass that overrides one calls super). */
  webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void>;
  webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): Promise<void>;
  webSocketError(ws: WebSocket, error: unknown): Promise<void>;
}
