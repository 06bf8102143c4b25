// A program using the whole of tabbit's API as an amqplib user would, type-checked (never run)
// against js/index.d.ts by tests/node/types.test.mjs. The `@ts-expect-error` lines prove
// that wrong usage is rejected: tsc fails if one of them compiles.
import {
  Emitter,
  connect,
  version,
  decodeValue,
  encodeValue,
  STRUCTURED,
  Channel,
  ConfirmChannel,
  Connection,
  type Bridge,
  type BridgeStatus,
  type BrokerStats,
  type ConsumeMessage,
  type GetMessage,
  type Message,
  type Options,
  type Replies,
  type ReturnMessage,
  type StorageAdapter,
  type StorageRecord,
  type TabbitError,
} from 'tabbit';

/** The package's emitter, extended by an app for its own typed events. */
class Jobs extends Emitter<{ done: (id: number) => void }> {}
new Jobs().on('done', (id) => console.log(id.toFixed()));
// @ts-expect-error: the listener's argument is a number
new Jobs().on('done', (id: string) => console.log(id));
// @ts-expect-error: an event the emitter does not have
new Jobs().emit('started', 1);

const text = new TextDecoder();
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A storage adapter over a Map, as a worker without IndexedDB would pass one. */
function mapStorage(): StorageAdapter {
  const records = new Map<string, StorageRecord>();
  return {
    async load() {
      return [...records.values()];
    },
    async write(writes) {
      for (const { store, key, value } of writes) {
        const k = `${store}/${typeof key}/${key}`;
        if (value === undefined) records.delete(k);
        else records.set(k, [store, key, value.slice()]);
      }
    },
  };
}

function isTabbitError(e: unknown): e is TabbitError {
  return e instanceof Error && typeof (e as Partial<TabbitError>).code === 'number';
}

/** A work queue: prefetch 1, ack when done, nack (dead-letter) on failure. */
async function worker(ch: Channel): Promise<Replies.Consume> {
  await ch.assertExchange('jobs.dlx', 'fanout');
  const failed = await ch.assertQueue('jobs.failed');
  await ch.bindQueue(failed.queue, 'jobs.dlx', '');
  const q: Replies.AssertQueue = await ch.assertQueue('jobs', {
    durable: true,
    deadLetterExchange: 'jobs.dlx',
    messageTtl: 60_000,
    maxLength: 10_000,
    arguments: { 'x-overflow': 'reject-publish', 'x-delivery-limit': 5 },
  });
  console.log(`${q.queue}: ${q.messageCount} waiting, ${q.consumerCount} consumers`);
  await ch.prefetch(1);
  return ch.consume(
    'jobs',
    async (msg) => {
      if (msg === null) return console.log('the broker cancelled the consumer');
      const { consumerTag, deliveryTag, redelivered } = msg.fields;
      const tries: number = msg.properties.headers['x-delivery-count'] ?? 0;
      console.log(consumerTag, deliveryTag, redelivered, tries, text.decode(msg.content));
      try {
        await new Promise((ok) => setTimeout(ok, 10));
        ch.ack(msg);
      } catch {
        ch.nack(msg, false, false);
      }
    },
    { noAck: false, consumerTag: 'worker-1', priority: 5, arguments: { 'x-priority': 5 } },
  );
}

/** A topic exchange and a server-named exclusive queue. */
async function logs(ch: Channel): Promise<void> {
  const { exchange } = await ch.assertExchange('logs', 'topic', { durable: false, autoDelete: false });
  const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
  await ch.bindQueue(queue, exchange, 'app.*.error');
  await ch.bindQueue(queue, exchange, '#.audit');
  await ch.consume(queue, (msg) => msg && console.log(msg.fields.routingKey, text.decode(msg.content)), { noAck: true });
  // Content reads as text as amqplib's Buffer does.
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    const hex: string = msg.content.toString('hex', 0, 4);
    const parsed: unknown = JSON.parse(msg.content.toString());
    const bytes: Uint8Array = msg.content;
    console.log(hex, parsed, bytes.length, `${msg.content}`, msg.content.toJSON().data.length);
    // @ts-expect-error: not an encoding
    msg.content.toString('klingon');
  }, { noAck: true });
  ch.publish(exchange, 'app.db.error', 'disk full', { contentType: 'text/plain', timestamp: Date.now() });
  ch.publish(exchange, 'user.audit', bytes('{"login":"ann"}'), { contentType: 'application/json', expiration: 5000 });
  await ch.unbindQueue(queue, exchange, '#.audit');

  // Headers exchange, exchange-to-exchange bindings.
  await ch.assertExchange('reports', 'headers', { alternateExchange: 'logs', internal: false });
  await ch.bindQueue(queue, 'reports', '', { 'x-match': 'any', format: 'pdf', year: 2024 });
  await ch.assertExchange('all', 'fanout', { arguments: { 'alternate-exchange': 'logs' } });
  await ch.bindExchange('reports', 'all', '');
  await ch.unbindExchange('reports', 'all', '');
  await ch.checkExchange('reports');
  await ch.deleteExchange('all', { ifUnused: true });
}

/** Confirms: per-message callbacks (both styles) and waitForConfirms. */
async function confirmed(conn: Connection): Promise<void> {
  const ch: ConfirmChannel = await conn.createConfirmChannel();
  const sent: boolean = ch.sendToQueue('jobs', 'resize photo 42', { persistent: true, messageId: 'p42' }, (err) => {
    if (err) console.error(`not stored (${err.code}): ${err.message}`);
  });
  console.log(sent);
  // `ok` is `{}` once confirmed, undefined with an error.
  ch.publish('', 'jobs', bytes('x'), { deliveryMode: 2, priority: 1 }, (err, ok?: Replies.Empty) => {
    console.log(err?.code, ok);
  });
  ch.publish('', 'jobs', 'no callback', { headers: { 'x-delay': 1000, attempt: 1, sent: new Date(), tags: ['a', 'b'] } });
  try {
    await ch.waitForConfirms();
  } catch (e) {
    if (isTabbitError(e) && e.code === 506) console.error('storage is full');
    else throw e;
  }
  await ch.close();
}

/** mandatory + 'return', get() with its false, and the events. */
async function returns(ch: Channel): Promise<GetMessage | undefined> {
  const onReturn = (msg: ReturnMessage) => {
    const { replyCode, replyText, exchange, routingKey } = msg.fields;
    console.log(replyCode, replyText, exchange, routingKey, text.decode(msg.content));
  };
  ch.on('return', onReturn);
  ch.once('error', (err) => console.error(err.code, err.message)).on('close', () => console.log('closed'));
  ch.publish('', 'nobody-listens', 'lost?', { mandatory: true, replyTo: 'answers', correlationId: 'c1' });
  ch.off('return', onReturn);
  console.log(ch.listenerCount('error'));

  const msg = await ch.get('jobs', { noAck: false });
  if (msg === false) return undefined;
  const left: number = msg.fields.messageCount;
  const p = msg.properties;
  const persistent: boolean = p.deliveryMode === 2;
  const ttl: string | undefined = p.expiration;
  console.log(left, persistent, ttl, p.contentType?.toUpperCase(), p.headers['x-death']?.[0]?.reason);
  ch.reject(msg, true);
  return msg;
}

/** for await over a consumer, stopped by an AbortController. */
async function stream(ch: Channel): Promise<number> {
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 1000);
  let n = 0;
  for await (const msg of ch.messages('jobs', { signal: stop.signal, exclusive: false })) {
    const m: ConsumeMessage = msg;
    ch.ack(m.fields.deliveryTag);
    if (++n === 100) break;
  }
  const it: AsyncIterableIterator<ConsumeMessage> = ch.messages('jobs', { noAck: true });
  await it.return?.();
  // consume() with a signal too.
  const c = new AbortController();
  const { consumerTag } = await ch.consume('jobs', (m) => m && ch.ack(m), { signal: c.signal });
  c.abort();
  await ch.cancel(consumerTag);
  return n;
}

/** Acknowledgement helpers typed as amqplib code types them. */
function settle(ch: Channel, msg: Message, ok: boolean): void {
  if (ok) ch.ack(msg, false);
  else ch.nack(msg, false, true);
}

async function main(): Promise<void> {
  console.log(await version());
  const options: Options.Connect = { name: 'app', storage: mapStorage() };
  const conn = await connect(options);
  conn.on('close', () => console.log('connection closed')).on('error', (err) => console.error(err.code));
  console.log(conn.storage, conn.problems.length);
  const memory = await connect({ name: 'scratch', storage: 'memory' });
  const other = await connect();

  const ch = await conn.createChannel();
  console.log(ch instanceof Channel, ch instanceof ConfirmChannel);
  const { consumerTag } = await worker(ch);
  await logs(await memory.createChannel());
  await confirmed(conn);
  const got = await returns(await conn.createChannel());
  if (got) settle(ch, got, true);
  console.log(await stream(await conn.createChannel()));
  await ch.cancel(consumerTag);

  try {
    await ch.checkQueue('missing');
  } catch (e) {
    if (isTabbitError(e) && e.code === 404) console.log('no such queue');
  }
  const purged: Replies.PurgeQueue = await ch.purgeQueue('jobs');
  const deleted: Replies.DeleteQueue = await (await conn.createChannel()).deleteQueue('jobs.failed', {
    ifUnused: true,
    ifEmpty: false,
  });
  console.log(purged.messageCount, deleted.messageCount);
  await ch.recover();
  ch.ackAll();
  ch.nackAll(false);

  const stats: BrokerStats = await conn.stats();
  for (const q of stats.queues) console.log(q.name, q.ready, q.unacked, q.published, q.acked, q.deadLettered);
  for (const q of stats.queues) if (q.effectiveMaxLength !== null) console.log(q.ready / q.effectiveMaxLength);
  for (const x of stats.exchanges) console.log(x.name, x.type, x.durable);
  for (const b of stats.bindings) console.log(b.source, '->', b.destinationType, b.destination, b.routingKey);
  for (const c of stats.contexts) console.log(c.label, c.hosting ? 'hosts' : 'client', c.consumers, c.unacked);
  console.log(stats.at, stats.host, stats.hosting, stats.totals.published, stats.rates.acked.toFixed(1));
  // Structured values: any structured-cloneable value in, `value` out.
  ch.sendToQueue('jobs', { at: new Date(), tags: new Set(['a']) }, { structured: true, persistent: true });
  const job = await ch.get('jobs', { structured: true });
  if (job) console.log(job.value, job.properties.contentType === STRUCTURED);
  // The value's type, given by the app (unchecked, as JSON.parse's): `value` is `T | undefined`.
  type Job = { at: Date; tags: Set<string> };
  const typed = await ch.get<Job>('jobs', { structured: true });
  if (typed && typed.value) console.log(typed.value.at.getTime(), typed.value.tags.has('a'));
  await ch.consume<Job>('jobs', (m) => m?.value && console.log(m.value.tags.size), { structured: true });
  for await (const m of ch.messages<Job>('jobs', { structured: true })) console.log(m.value?.at.toISOString());
  const back: Job = decodeValue<Job>(encodeValue({ at: new Date(), tags: new Set<string>() }));
  console.log(back.tags.size);
  console.log(decodeValue(encodeValue(new Map([[1, 2]]))));
  const peeked = await conn.peek('jobs', 5);
  for (const m of peeked) console.log(m.fields.routingKey, m.properties.messageId, m.content.byteLength);
  console.log(conn.hosting);
  conn.on('failover', ({ hosting, cancelled }) => console.log(hosting, cancelled.join(',')));
  // Persistent storage on request, and what the app is told.
  const kept = await connect({ name: 'kept', persist: true });
  const granted: boolean | null = await kept.persist();
  const info = await kept.storageInfo();
  if (info.kind === 'indexeddb' && info.persisted === false && info.quota !== null) console.log(granted, info.usage ?? 0, info.quota, info.persist);
  kept.on('storage', ({ persisted, persist }) => console.log(persisted, persist === 'denied'));
  // @ts-expect-error: persist is true or false
  await connect({ name: 'kept', persist: 'yes' });
  await conn.flush();
  const bridge: Bridge = await conn.bridge({
    url: 'ws://127.0.0.1:15674/ws',
    login: 'app',
    passcode: 'secret',
    outbound: [{ exchange: 'events', pattern: 'order.*', to: '/exchange/amq.topic' }, { queue: 'outgoing', to: '/amq/queue/tasks' }],
    inbound: [{ from: '/amq/queue/hello', to: { queue: 'inbox' } }, { from: '/topic/news.#', to: { exchange: 'news' }, prefetch: 10 }],
    reconnect: { maxMs: 5000 },
  });
  const st: BridgeStatus | undefined = bridge.status;
  if (st && st.state === 'waiting') console.log(st.error, st.retryAt, st.outbound.pending, st.inbound.refused);
  for (const b of (await conn.stats()).bridges) console.log(b.name, b.state, b.rules.url);
  bridge.close();
  // @ts-expect-error: a bridge needs a url
  await conn.bridge({ outbound: [] });
  // @ts-expect-error: an inbound rule goes to a queue or an exchange
  await conn.bridge({ url: 'ws://h/ws', inbound: [{ from: '/amq/queue/q', to: 'inbox' }] });
  const d = await ch.get('jobs');
  if (d) console.log(d.fields.sequence + 1);
  await ch.close();
  await Promise.all([conn.close(), memory.close(), other.close()]);
}

// ---- wrong usage, rejected ------------------------------------------------------------------

async function wrong(conn: Connection, ch: Channel, cch: ConfirmChannel, returned: ReturnMessage): Promise<void> {
  // @ts-expect-error: content is bytes or a string
  ch.publish('logs', 'a.b', 42);
  // @ts-expect-error: content is bytes or a string, not an object
  ch.sendToQueue('jobs', { id: 1 });
  // @ts-expect-error: an unknown publish option (a typo of persistent)
  ch.sendToQueue('jobs', 'x', { persistant: true });
  // @ts-expect-error: tabbit does not support CC
  ch.publish('', 'jobs', 'x', { CC: ['other'] });
  // @ts-expect-error: expiration is milliseconds, not a Date
  ch.publish('', 'jobs', 'x', { expiration: new Date() });
  // @ts-expect-error: an unknown consume option
  await ch.consume('jobs', () => {}, { noack: true });
  // @ts-expect-error: an unknown queue option
  await ch.assertQueue('jobs', { ttl: 1000 });
  // @ts-expect-error: x-overflow takes one of three strings
  await ch.assertQueue('jobs', { arguments: { 'x-overflow': 'drop-tail' } });
  // @ts-expect-error: a header value cannot be a function
  ch.publish('', 'jobs', 'x', { headers: { f: () => 1 } });
  // @ts-expect-error: an unknown exchange type
  await ch.assertExchange('delayed', 'x-delayed-message');

  const msg = await ch.get('jobs');
  // @ts-expect-error: get() answers false when the queue is empty: check it first
  console.log(msg.content);
  // @ts-expect-error: ack takes no promise
  ch.ack(ch.get('jobs'));
  // @ts-expect-error: a returned message was never delivered: there is nothing to ack
  ch.ack(returned);
  // @ts-expect-error: ack returns nothing to await on
  const acked: Promise<void> = ch.ack(1);

  // @ts-expect-error: no such event
  ch.on('message', () => {});
  // @ts-expect-error: 'return' gives a message, not an error
  ch.on('return', (err: TabbitError) => console.log(err.code));
  // @ts-expect-error: publish returns a boolean, not a promise
  await ch.publish('', 'jobs', 'x').then(() => {});
  // @ts-expect-error: only a confirm channel has waitForConfirms
  await ch.waitForConfirms();
  // @ts-expect-error: a plain channel's publish takes no callback
  ch.sendToQueue('jobs', 'x', {}, () => {});
  // @ts-expect-error: the callback's error is an error or null, not a string
  cch.sendToQueue('jobs', 'x', {}, (err: string) => console.log(err));
  // @ts-expect-error: channels come from createChannel
  new Channel();
  // @ts-expect-error: connections come from connect()
  new Connection();

  // @ts-expect-error: tabbit runs in this page: connect() takes options, not a URL
  await connect('amqp://localhost');
  // @ts-expect-error: unknown storage
  await connect({ storage: 'localStorage' });
  // @ts-expect-error: an adapter needs write() too
  await connect({ storage: { load: async () => [] } });
  // @ts-expect-error: storage is read-only
  conn.storage = 'memory';

  const stats = await conn.stats();
  // @ts-expect-error: stats are per queue
  console.log(stats.ready, acked);
  // @ts-expect-error: a peeked message was not delivered: it has no delivery tag
  console.log((await conn.peek('jobs'))[0].fields.deliveryTag);
  // @ts-expect-error: a value other than bytes or a string needs structured: true
  ch.sendToQueue('jobs', { a: 1 });
  const typedJob = await ch.get<{ id: number }>('jobs', { structured: true });
  // @ts-expect-error: the value may be missing (a message published without structured)
  if (typedJob) console.log(typedJob.value.id);
  // @ts-expect-error: the value's type has no such field
  if (typedJob && typedJob.value) console.log(typedJob.value.name);
  await connect({ name: 'limited', limits: { maxMessageBytes: 1 << 20, maxQueues: 100, maxQueueLength: Infinity } });
  // @ts-expect-error: the effective maximum may be null (no limit applies)
  Math.max(0, (await conn.stats()).queues[0].effectiveMaxLength);
  // @ts-expect-error: an unknown limit
  await connect({ name: 'limited', limits: { maxMesages: 5 } });
  await connect({ app: 'chat', name: 'app' });
  // @ts-expect-error: the app is a string
  await connect({ app: 7 });
  // @ts-expect-error: the label is a string
  await connect({ name: 'app', label: 7 });
  // @ts-expect-error: hosting is read-only
  conn.hosting = true;
}

void main;
void wrong;
