// amqplib's callback API over tabbit's promise API: `import amqp from 'tabbit/callback_api'`,
// then `amqp.connect(options, (err, conn) => …)` and node-style callbacks `(err, result)` on
// every call that answers, as amqplib/callback_api has them. The objects are the promise
// API's (the same broker, the same events); each method here takes the callback where
// amqplib's does, and calls it after the current task, never inside the call.

import { connect as connectPromise } from './index.js';

/**
 * Calls `cb(err, value)` once `promise` settles; with no `cb`, a failure goes unseen, as in
 * amqplib. An exception the callback throws is uncaught, as one thrown by an event listener.
 */
function settle(promise, cb) {
  const call = (...args) => {
    try {
      cb?.(...args);
    } catch (e) {
      setTimeout(() => {
        throw e;
      });
    }
  };
  promise.then(
    (value) => call(null, value),
    (err) => call(err),
  );
}

/** The trailing callback of `args`, if its last argument is a function, and the rest. */
function split(args) {
  const last = args[args.length - 1];
  return typeof last === 'function' ? [args.slice(0, -1), last] : [args, undefined];
}

const CALLS = [
  'assertQueue',
  'checkQueue',
  'deleteQueue',
  'purgeQueue',
  'bindQueue',
  'unbindQueue',
  'assertExchange',
  'checkExchange',
  'deleteExchange',
  'bindExchange',
  'unbindExchange',
  'cancel',
  'prefetch',
  'recover',
  'close',
];

/** Events pass through to the promise API's object underneath (`promise`). */
class Forwarding {
  #target;

  constructor(target) {
    this.#target = target;
  }

  /** The promise API's object underneath. */
  get promise() {
    return this.#target;
  }

  on(name, fn) {
    this.#target.on(name, fn);
    return this;
  }
  once(name, fn) {
    this.#target.once(name, fn);
    return this;
  }
  off(name, fn) {
    this.#target.off(name, fn);
    return this;
  }
  listenerCount(name) {
    return this.#target.listenerCount(name);
  }
}
Forwarding.prototype.addListener = Forwarding.prototype.on;
Forwarding.prototype.removeListener = Forwarding.prototype.off;

/** amqplib's callback Channel: the promise channel `ch`, its answering calls taking callbacks. */
class CallbackChannel extends Forwarding {
  #ch;

  constructor(ch) {
    super(ch);
    this.#ch = ch;
    for (const name of CALLS) {
      this[name] = (...args) => {
        const [rest, cb] = split(args);
        settle(ch[name](...rest), cb);
        return this;
      };
    }
  }

  /** consume(queue, onMessage, options?, callback?(err, {consumerTag})). */
  consume(queue, onMessage, options, cb) {
    if (typeof options === 'function') [options, cb] = [undefined, options];
    settle(this.#ch.consume(queue, onMessage, options), cb);
    return this;
  }

  /** get(queue, options?, callback(err, message | false)). */
  get(queue, options, cb) {
    if (typeof options === 'function') [options, cb] = [undefined, options];
    settle(this.#ch.get(queue, options), cb);
    return this;
  }

  publish(exchange, routingKey, content, options) {
    return this.#ch.publish(exchange, routingKey, content, options);
  }

  sendToQueue(queue, content, options) {
    return this.#ch.sendToQueue(queue, content, options);
  }

  ack(message, allUpTo) {
    this.#ch.ack(message, allUpTo);
  }
  ackAll() {
    this.#ch.ackAll();
  }
  nack(message, allUpTo, requeue) {
    this.#ch.nack(message, allUpTo, requeue);
  }
  nackAll(requeue) {
    this.#ch.nackAll(requeue);
  }
  reject(message, requeue) {
    this.#ch.reject(message, requeue);
  }

}

/** amqplib's callback ConfirmChannel: publish takes `callback(err, ok)`; waitForConfirms(callback). */
class CallbackConfirmChannel extends CallbackChannel {
  publish(exchange, routingKey, content, options, cb) {
    return this.promise.publish(exchange, routingKey, content, options, cb);
  }

  sendToQueue(queue, content, options, cb) {
    return this.promise.sendToQueue(queue, content, options, cb);
  }

  waitForConfirms(cb) {
    settle(this.promise.waitForConfirms(), cb);
  }
}

/** amqplib's callback Connection over the promise API's connection `conn`. */
class CallbackConnection extends Forwarding {
  #conn;

  constructor(conn) {
    super(conn);
    this.#conn = conn;
  }

  createChannel(cb) {
    settle(
      this.#conn.createChannel().then((ch) => new CallbackChannel(ch)),
      cb,
    );
    return this;
  }

  createConfirmChannel(cb) {
    settle(
      this.#conn.createConfirmChannel().then((ch) => new CallbackConfirmChannel(ch)),
      cb,
    );
    return this;
  }

  close(cb) {
    settle(this.#conn.close(), cb);
  }
}

/**
 * connect(options?, callback(err, connection)): as amqplib/callback_api's connect, with
 * tabbit's options ({ name, storage, … }) where amqplib takes a URL.
 */
export function connect(options, cb) {
  if (typeof options === 'function') [options, cb] = [undefined, options];
  settle(
    Promise.resolve()
      .then(() => connectPromise(options))
      .then((conn) => new CallbackConnection(conn)),
    cb,
  );
}

export default { connect };
