// An amqplib program (promise API), written as amqplib's documentation and tutorials write
// them, run on tabbit with only the import changed (and connect()'s URL made options). The
// tests run it in Node and in a browser tab that hosts the broker and one that does not, and
// compare the summary with PROMISE_EXPECTED. Standard JavaScript only.

/** What run() answers, wherever it runs. */
export const PROMISE_EXPECTED = {
  exchangeToExchange: ['audit: user.login', 'audit: user.logout'],
  fanout: [2, 2],
  nackReject: {
    redelivered: [false, true],
    deadLettered: ['rejected'],
    requeuedThenAcked: 'again',
  },
  cancel: { beforeCancel: 1, afterCancel: 0, nullOnDelete: true },
  prefetch: { maxUnacked: 2 },
  confirms: { acked: 3, waited: 'resolved', nacked: 1, waitedAfterNack: 'rejected' },
  errors: {
    exchangeType: [503, 40, 10],
    inequivalent: [406, 50, 10],
    unknownTag: [406, 60, 80],
    channelClosedByServer: true,
  },
  content: { json: { n: 42 }, text: 'plain', bytes: 5 },
};

// Where there is no Buffer (a browser), the one function of it the program uses.
const Buffer = globalThis.Buffer ?? { from: (s) => new TextEncoder().encode(s) };
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const outcome = (p) => p.then(() => 'resolved', () => 'rejected');

/** Runs the program against `amqp` (the package's default export) on broker `name`. */
export async function run(amqp, name, options = {}) {
  const conn = await amqp.connect({ name, ...options });
  try {
    const out = {};
    const ch = await conn.createChannel();

    // Exchange-to-exchange: 'events' (topic) feeds 'audit' (fanout), which feeds a queue.
    await ch.assertExchange('p-events', 'topic', { durable: false });
    await ch.assertExchange('p-audit', 'fanout', { durable: false });
    await ch.bindExchange('p-audit', 'p-events', 'user.*');
    const { queue: auditQ } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(auditQ, 'p-audit', '');
    const audit = [];
    await ch.consume(auditQ, (m) => audit.push(`audit: ${m.fields.routingKey}`), { noAck: true });
    for (const key of ['user.login', 'system.boot', 'user.logout']) ch.publish('p-events', key, Buffer.from(key));
    while (audit.length < 2) await sleep(5);
    out.exchangeToExchange = audit.sort();

    // Fanout to two queues.
    await ch.assertExchange('p-fan', 'fanout', { durable: false });
    const qs = [];
    for (let i = 0; i < 2; i++) {
      const { queue } = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(queue, 'p-fan', '');
      qs.push(queue);
    }
    ch.publish('p-fan', '', Buffer.from('a'));
    ch.publish('p-fan', '', Buffer.from('b'));
    await sleep(20);
    out.fanout = [];
    for (const q of qs) out.fanout.push((await ch.checkQueue(q)).messageCount);

    // nack with requeue comes back redelivered; reject without requeue dead-letters.
    await ch.assertExchange('p-dlx', 'fanout', { durable: false });
    const { queue: dead } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(dead, 'p-dlx', '');
    await ch.assertQueue('p-work', { durable: false, deadLetterExchange: 'p-dlx' });
    ch.sendToQueue('p-work', Buffer.from('again'));
    const first = await getOne(ch, 'p-work');
    ch.nack(first, false, true);
    const second = await getOne(ch, 'p-work');
    ch.ack(second);
    ch.sendToQueue('p-work', Buffer.from('rejected'));
    ch.reject(await getOne(ch, 'p-work'), false);
    const dl = await getOne(ch, dead);
    ch.ack(dl);
    out.nackReject = {
      redelivered: [first.fields.redelivered, second.fields.redelivered],
      deadLettered: [dl.content.toString()],
      requeuedThenAcked: second.content.toString(),
    };

    // cancel: a consumer stops; deleting its queue calls it back with null.
    await ch.assertQueue('p-cancel', { durable: false });
    let got = 0;
    let gotNull = false;
    const { consumerTag } = await ch.consume('p-cancel', (m) => (m === null ? (gotNull = true) : (got += 1, ch.ack(m))));
    ch.sendToQueue('p-cancel', Buffer.from('1'));
    while (got < 1) await sleep(5);
    await ch.cancel(consumerTag);
    ch.sendToQueue('p-cancel', Buffer.from('2'));
    await sleep(20);
    const before = got;
    await ch.consume('p-cancel', (m) => (m === null ? (gotNull = true) : null));
    await ch.purgeQueue('p-cancel');
    await ch.deleteQueue('p-cancel');
    while (!gotNull) await sleep(5);
    out.cancel = { beforeCancel: before, afterCancel: got - before, nullOnDelete: gotNull };

    // prefetch: never more than 2 unacked.
    const pch = await conn.createChannel();
    await pch.prefetch(2);
    await pch.assertQueue('p-prefetch', { durable: false });
    let unacked = 0;
    let maxUnacked = 0;
    let done = 0;
    await pch.consume('p-prefetch', (m) => {
      unacked += 1;
      maxUnacked = Math.max(maxUnacked, unacked);
      setTimeout(() => {
        unacked -= 1;
        done += 1;
        pch.ack(m);
      }, 2);
    });
    for (let i = 0; i < 8; i++) pch.sendToQueue('p-prefetch', Buffer.from(String(i)));
    while (done < 8) await sleep(5);
    out.prefetch = { maxUnacked };
    await pch.close();

    // Confirms.
    const cch = await conn.createConfirmChannel();
    await cch.assertQueue('p-confirm', { durable: true });
    let acked = 0;
    for (let i = 0; i < 3; i++) cch.sendToQueue('p-confirm', Buffer.from(`c${i}`), { persistent: true }, (err) => err || (acked += 1));
    const waited = await outcome(cch.waitForConfirms());
    await cch.assertQueue('p-capped', { durable: false, maxLength: 1, arguments: { 'x-overflow': 'reject-publish' } });
    await cch.purgeQueue('p-capped');
    let nacked = 0;
    cch.on('nack', () => (nacked += 1));
    cch.sendToQueue('p-capped', Buffer.from('fits'));
    cch.sendToQueue('p-capped', Buffer.from('does not'));
    const waitedAfterNack = await outcome(cch.waitForConfirms());
    out.confirms = { acked, waited, nacked, waitedAfterNack };
    await cch.close();

    // Errors: code, classId, methodId; the channel closes.
    const errors = {};
    const shape = (e) => [e.code, e.classId, e.methodId];
    let ech = await conn.createChannel();
    ech.on('error', () => {});
    errors.exchangeType = shape(await ech.assertExchange('p-bad', 'no-such-type').catch((e) => e));
    ech = await conn.createChannel();
    ech.on('error', () => {});
    errors.inequivalent = shape(await ech.assertQueue('p-work', { durable: true }).catch((e) => e));
    ech = await conn.createChannel();
    const closedBy = new Promise((ok) => ech.on('error', (e) => ok(e)));
    ech.ack({ fields: { deliveryTag: 99 } });
    const unknown = await closedBy;
    errors.unknownTag = shape(unknown);
    errors.channelClosedByServer = unknown.message.startsWith('Channel closed by server: 406 (PRECONDITION-FAILED)');
    out.errors = errors;

    // Content as amqplib's tutorials read it.
    await ch.assertQueue('p-content', { durable: false });
    ch.sendToQueue('p-content', Buffer.from(JSON.stringify({ n: 42 })));
    ch.sendToQueue('p-content', Buffer.from('plain'));
    const j = await getOne(ch, 'p-content');
    const t = await getOne(ch, 'p-content');
    ch.ack(t, true);
    out.content = { json: JSON.parse(j.content), text: `${t.content}`, bytes: t.content.length };
    return out;
  } finally {
    await conn.close();
  }
}

/** The next message of `queue`, by polling `get` (unacked). */
async function getOne(ch, queue) {
  for (let i = 0; i < 400; i++) {
    const m = await ch.get(queue);
    if (m) return m;
    await sleep(5);
  }
  throw new Error(`amqplib program: nothing in ${queue}`);
}
