// An amqplib/callback_api program, written as amqplib's tutorials write them (nested
// callbacks, content read with toString(), JSON.parse on content, errors with code, classId
// and methodId), run on tabbit's 'tabbit/callback_api' with only the import changed. The tests
// run it in Node and in a browser tab that hosts the broker and one that does not, and
// compare the summary with CALLBACK_EXPECTED. Standard JavaScript only.

/** What run() answers, wherever it runs. */
export const CALLBACK_EXPECTED = {
  hello: 'Hello World!',
  work: { received: ['task 1', 'task 2', 'task 3'], acked: 3, left: 0 },
  topic: ['kern.critical: {"level":"critical"}', 'kern.info: {"level":"info"}'],
  get: ['first', false],
  confirms: { callbacks: [null, null], waited: null, acks: 2 },
  errors: {
    check: [404, 50, 10, 'Operation failed: QueueDeclare; 404 (NOT-FOUND) with message "NOT_FOUND - no queue \'cb-nope\': declare it first with assertQueue"'],
    channelError: [404, 60, 40, 'Channel closed by server'],
    closed: true,
  },
  callbackInsideCall: false,
};

/**
 * Runs the program against `amqp` (the callback API module's default export) on broker
 * `name`; `options` go to connect(). Calls back `done(err, summary)`.
 */
export function run(amqp, name, options, done) {
  const out = { callbackInsideCall: false };
  const finish = (err) => (err ? done(err) : done(null, out));
  amqp.connect({ name, ...options }, (err, conn) => {
    if (err) return finish(err);
    const fail = (e) => conn.close(() => finish(e));
    conn.createChannel((err, ch) => {
      if (err) return fail(err);
      // Hello world: a queue, a message, its content as text.
      ch.assertQueue('cb-hello', { durable: false }, (err) => {
        if (err) return fail(err);
        ch.sendToQueue('cb-hello', 'Hello World!');
        ch.consume('cb-hello', (msg) => {
          out.hello = msg.content.toString();
          ch.cancel(msg.fields.consumerTag, (err) => (err ? fail(err) : work(conn, ch)));
        }, { noAck: true });
      });
    });

    function work(conn, ch) {
      // Work queue: prefetch 1, ack each.
      ch.assertQueue('cb-tasks', { durable: true }, (err) => {
        if (err) return fail(err);
        for (const t of ['task 1', 'task 2', 'task 3']) ch.sendToQueue('cb-tasks', t, { persistent: true });
        let inside = true;
        ch.prefetch(1, false, () => {
          if (inside) out.callbackInsideCall = true;
        });
        inside = false;
        const received = [];
        ch.consume('cb-tasks', (msg) => {
          received.push(`${msg.content}`);
          ch.ack(msg);
          if (received.length === 3) {
            ch.checkQueue('cb-tasks', (err, ok) => {
              if (err) return fail(err);
              out.work = { received, acked: received.length, left: ok.messageCount };
              topic(conn, ch);
            });
          }
        }, { noAck: false }, (err) => err && fail(err));
      });
    }

    function topic(conn, ch) {
      ch.assertExchange('cb-logs', 'topic', { durable: false }, (err, ok) => {
        if (err) return fail(err);
        ch.assertQueue('', { exclusive: true }, (err, q) => {
          if (err) return fail(err);
          ch.bindQueue(q.queue, ok.exchange, 'kern.*', {}, (err) => {
            if (err) return fail(err);
            const got = [];
            ch.consume(q.queue, (msg) => {
              got.push(`${msg.fields.routingKey}: ${JSON.stringify(JSON.parse(msg.content))}`);
              if (got.length === 2) {
                out.topic = got.sort();
                get(conn, ch);
              }
            }, { noAck: true });
            ch.publish('cb-logs', 'kern.critical', JSON.stringify({ level: 'critical' }));
            ch.publish('cb-logs', 'user.info', JSON.stringify({ level: 'ignored' }));
            ch.publish('cb-logs', 'kern.info', JSON.stringify({ level: 'info' }));
          });
        });
      });
    }

    function get(conn, ch) {
      ch.assertQueue('cb-get', { durable: false }, (err) => {
        if (err) return fail(err);
        ch.sendToQueue('cb-get', 'first');
        const poll = (tries) =>
          ch.get('cb-get', { noAck: true }, (err, msg) => {
            if (err) return fail(err);
            if (!msg && tries > 0) return setTimeout(() => poll(tries - 1), 5);
            ch.get('cb-get', {}, (err, none) => {
              if (err) return fail(err);
              out.get = [msg && msg.content.toString(), none];
              confirms(conn, ch);
            });
          });
        poll(100);
      });
    }

    function confirms(conn, ch) {
      conn.createConfirmChannel((err, cch) => {
        if (err) return fail(err);
        const callbacks = [];
        let acks = 0;
        cch.on('ack', () => (acks += 1));
        cch.assertQueue('cb-confirmed', { durable: true }, (err) => {
          if (err) return fail(err);
          cch.sendToQueue('cb-confirmed', 'one', { persistent: true }, (err) => callbacks.push(err));
          cch.sendToQueue('cb-confirmed', 'two', { persistent: true }, (err) => callbacks.push(err));
          cch.waitForConfirms((err) => {
            out.confirms = { callbacks, waited: err ?? null, acks };
            cch.close(() => errors(conn, ch));
          });
        });
      });
    }

    function errors(conn, ch) {
      // A refused call, then a channel error, as amqplib reports them.
      ch.on('error', () => {});
      ch.checkQueue('cb-nope', (err) => {
        const check = err && [err.code, err.classId, err.methodId, err.message];
        conn.createChannel((e2, ch2) => {
          if (e2) return fail(e2);
          ch2.on('error', (err) => {
            const channelError = [err.code, err.classId, err.methodId, err.message.split(':')[0]];
            ch2.on('close', () => {
              out.errors = { check, channelError, closed: true };
              conn.close((err) => finish(err));
            });
          });
          ch2.publish('cb-no-such-exchange', 'k', 'lost');
        });
      });
    }
  });
}
