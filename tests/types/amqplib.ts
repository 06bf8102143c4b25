// Typed code as it is written for amqplib with @types/amqplib, type-checked (never run)
// against tabbit's types by tests/node/types.test.mjs. Against amqplib it differs in two
// places only: the import ('amqplib' → 'tabbit') and connect()'s argument (a URL → options).
import * as amqp from 'tabbit';
import type { Channel, ConfirmChannel, Connection, ConsumeMessage, GetMessage, Message, Options, Replies } from 'tabbit';

const QUEUE_OPTIONS: Options.AssertQueue = { durable: true, arguments: { 'x-queue-type': 'classic' } };
const PUBLISH_OPTIONS: Options.Publish = { persistent: true, contentType: 'application/json', headers: { attempt: 1 } };

async function worker(ch: Channel): Promise<Replies.Consume> {
  const q: Replies.AssertQueue = await ch.assertQueue('tasks', QUEUE_OPTIONS);
  await ch.prefetch(1);
  return ch.consume(
    q.queue,
    (msg: ConsumeMessage | null) => {
      if (msg === null) return;
      const job: { id: number } = JSON.parse(msg.content.toString());
      console.log(job.id, msg.fields.deliveryTag, msg.properties.headers?.attempt);
      ch.ack(msg);
    },
    { noAck: false } satisfies Options.Consume,
  );
}

async function rpcReply(ch: Channel, msg: Message): Promise<void> {
  const { replyTo, correlationId } = msg.properties;
  if (replyTo) ch.sendToQueue(replyTo, JSON.stringify({ ok: true }), { correlationId });
}

async function poll(ch: Channel): Promise<void> {
  const m: GetMessage | false = await ch.get('tasks', { noAck: false });
  if (m) {
    console.log(m.fields.messageCount, m.content.toString('utf8'));
    await rpcReply(ch, m);
    ch.nack(m, false, true);
  }
}

async function publisher(conn: Connection): Promise<void> {
  const ch: ConfirmChannel = await conn.createConfirmChannel();
  const ex: Replies.AssertExchange = await ch.assertExchange('jobs', 'direct', { durable: true });
  await ch.bindQueue('tasks', ex.exchange, 'task');
  ch.publish(ex.exchange, 'task', JSON.stringify({ id: 1 }), PUBLISH_OPTIONS, (err) => {
    if (err) console.error('nacked', err.code);
  });
  ch.on('ack', ({ deliveryTag }) => console.log('acked', deliveryTag));
  await ch.waitForConfirms();
  const purged: Replies.PurgeQueue = await ch.purgeQueue('tasks');
  const deleted: Replies.DeleteQueue = await ch.deleteQueue('tasks', { ifUnused: false, ifEmpty: false });
  console.log(purged.messageCount, deleted.messageCount);
  await ch.close();
}

async function main(): Promise<void> {
  const conn: Connection = await amqp.connect({ name: 'jobs' });
  conn.on('error', (err) => console.error(err.message));
  const ch = await conn.createChannel();
  ch.on('error', (err) => console.error(err.code, err.classId, err.methodId));
  await worker(ch);
  await poll(ch);
  await publisher(conn);
  await conn.close();
}

void main();
