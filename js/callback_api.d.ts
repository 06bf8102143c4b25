// amqplib's callback API over tabbit (`import amqp from 'tabbit/callback_api'`): the same
// broker, channels and events as the promise API ('tabbit'), with node-style callbacks
// `(err, result)` where amqplib/callback_api takes them. A callback runs after the call
// returns, never inside it. Without a callback, a failure is not reported (listen to the
// channel's 'error' event), as with amqplib.

/**
 * amqplib's callback API over tabbit, `import amqp from 'tabbit/callback_api'`: node-style
 * callbacks `(err, result)` on the same broker, channels and events as the promise API.
 * @module tabbit/callback_api
 */

import type {
  BindingArguments,
  ChannelEvents,
  ConfirmChannel as PromiseConfirmChannel,
  Channel as PromiseChannel,
  Connection as PromiseConnection,
  ConnectionEvents,
  ConsumeMessage,
  Content,
  GetMessage,
  Options,
  Replies,
  TabbitError,
} from './index.js';

export type { ConsumeMessage, GetMessage, Message, Options, Replies, TabbitError } from './index.js';

/** A node-style callback: `err` null on success. */
export type Callback<T> = (err: TabbitError | null, result?: T) => void;

/** The events of the promise API's object underneath, listened to here. */
interface Emitting<Events> {
  on<K extends keyof Events>(event: K, listener: Events[K]): this;
  once<K extends keyof Events>(event: K, listener: Events[K]): this;
  off<K extends keyof Events>(event: K, listener: Events[K]): this;
  addListener<K extends keyof Events>(event: K, listener: Events[K]): this;
  removeListener<K extends keyof Events>(event: K, listener: Events[K]): this;
  listenerCount(event: keyof Events): number;
}

export interface Channel extends Emitting<ChannelEvents> {
  assertQueue(queue?: string, options?: Options.AssertQueue, callback?: Callback<Replies.AssertQueue>): this;
  checkQueue(queue: string, callback?: Callback<Replies.AssertQueue>): this;
  deleteQueue(queue: string, options?: Options.DeleteQueue, callback?: Callback<Replies.DeleteQueue>): this;
  purgeQueue(queue: string, callback?: Callback<Replies.PurgeQueue>): this;
  bindQueue(queue: string, source: string, pattern: string, args?: BindingArguments, callback?: Callback<Replies.Empty>): this;
  unbindQueue(queue: string, source: string, pattern: string, args?: BindingArguments, callback?: Callback<Replies.Empty>): this;
  assertExchange(
    exchange: string,
    type: string,
    options?: Options.AssertExchange,
    callback?: Callback<Replies.AssertExchange>,
  ): this;
  checkExchange(exchange: string, callback?: Callback<Replies.Empty>): this;
  deleteExchange(exchange: string, options?: Options.DeleteExchange, callback?: Callback<Replies.Empty>): this;
  bindExchange(destination: string, source: string, pattern: string, args?: BindingArguments, callback?: Callback<Replies.Empty>): this;
  unbindExchange(destination: string, source: string, pattern: string, args?: BindingArguments, callback?: Callback<Replies.Empty>): this;
  publish(exchange: string, routingKey: string, content: Content, options?: Options.Publish): boolean;
  sendToQueue(queue: string, content: Content, options?: Options.Publish): boolean;
  consume<T = unknown>(
    queue: string,
    onMessage: (message: ConsumeMessage<T> | null) => void,
    options?: Options.Consume,
    callback?: Callback<Replies.Consume>,
  ): this;
  cancel(consumerTag: string, callback?: Callback<Replies.Consume>): this;
  get<T = unknown>(queue: string, options?: Options.Get, callback?: Callback<GetMessage<T> | false>): this;
  ack(message: ConsumeMessage | GetMessage | number, allUpTo?: boolean): void;
  ackAll(): void;
  nack(message: ConsumeMessage | GetMessage | number, allUpTo?: boolean, requeue?: boolean): void;
  nackAll(requeue?: boolean): void;
  reject(message: ConsumeMessage | GetMessage | number, requeue?: boolean): void;
  prefetch(count: number, global?: boolean, callback?: Callback<Replies.Empty>): this;
  recover(callback?: Callback<Replies.Empty>): this;
  close(callback?: Callback<void>): this;
  /** The promise API's channel underneath. */
  readonly promise: PromiseChannel;
}

export interface ConfirmChannel extends Channel {
  /** `callback(null, {})` once confirmed, `callback(err)` if refused (as the promise API's). */
  publish(exchange: string, routingKey: string, content: Content, options?: Options.Publish, callback?: Callback<Replies.Empty>): boolean;
  sendToQueue(queue: string, content: Content, options?: Options.Publish, callback?: Callback<Replies.Empty>): boolean;
  waitForConfirms(callback?: Callback<void>): void;
  readonly promise: PromiseConfirmChannel;
}

export interface Connection extends Emitting<ConnectionEvents> {
  createChannel(callback: Callback<Channel>): this;
  createConfirmChannel(callback: Callback<ConfirmChannel>): this;
  close(callback?: Callback<void>): void;
  /** The promise API's connection underneath (stats(), bridge(), peek(), flush(), …). */
  readonly promise: PromiseConnection;
}

/** amqplib/callback_api's connect, with tabbit's options where amqplib takes a URL. */
export function connect(callback: Callback<Connection>): void;
export function connect(options: Options.Connect | undefined, callback: Callback<Connection>): void;

declare const amqp: { connect: typeof connect };
export default amqp;
