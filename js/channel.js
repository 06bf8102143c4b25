// amqplib's Channel and ConfirmChannel: each call goes to the channel's binding and comes back as
// a promise or an event.
import { failed } from './errors.js';
import { guard, promise, DEAD } from './loader.js';
import { Emitter } from './emitter.js';
import { outgoing, incoming } from './structured.js';
import { notePersistent } from './persistence.js';

/**
 * A message's delivery tag, read here rather than by the binding (two property reads across
 * the boundary per ack); anything else goes as it is, for the binding to accept or refuse.
 */
const tagOf = (m) => (typeof m?.fields?.deliveryTag === 'number' ? m.fields.deliveryTag : m);

/** The binding under a channel: for this module's classes only. */
const RAW = Symbol('tabbit.raw');

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
