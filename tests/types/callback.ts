// amqplib/callback_api-style code, type-checked (never run) against js/callback_api.d.ts
// by tests/node/types.test.mjs: only the import differs from amqplib's.
import amqp from 'tabbit/callback_api';

amqp.connect({ name: 'app' }, (err, conn) => {
  if (err || !conn) throw err;
  conn.createChannel((err, ch) => {
    if (err || !ch) throw err;
    ch.assertQueue('tasks', { durable: true }, (err, ok) => {
      if (err || !ok) throw err;
      const left: number = ok.messageCount;
      ch.prefetch(1);
      ch.consume(ok.queue, (msg) => {
        if (!msg) return;
        console.log(left, msg.content.toString(), msg.fields.deliveryTag);
        ch.ack(msg);
      }, { noAck: false });
      ch.get('tasks', {}, (err, m) => console.log(err?.classId, m && m.fields.messageCount));
      ch.on('error', (e) => console.log(e.code, e.methodId));
    });
  });
  conn.createConfirmChannel((err, ch) => {
    if (err || !ch) throw err;
    ch.publish('', 'tasks', 'hi', { persistent: true }, (err) => console.log(err?.message));
    ch.waitForConfirms((err) => console.log(err === null));
    // @ts-expect-error: a callback takes (err, result), not a message
    ch.checkQueue('tasks', (msg: string) => msg);
  });
});
