// One publish/consume scenario that every runtime test runs through the npm package (pkg/):
// Node, Deno, Cloudflare workerd and a Vite-built page. It takes the package's `connect` as an
// argument (each runtime imports the package its own way) and answers a plain JSON-able summary
// that the tests compare with EXPECTED, so a difference shows as a readable diff.
//
//   import { connect } from 'tabbit';
//   import { scenario, EXPECTED } from './scenario.mjs';
//   const result = await scenario(connect, { wasm });   // options go to connect()
//
// Standard JavaScript only (no Node or DOM API): it must run unchanged in every runtime.

/** What scenario() answers in every runtime (storage aside: it depends on the runtime). */
export const EXPECTED = {
  workQueue: {
    jobs: 20,
    handledOnce: true,
    fifoPerWorker: true,
    workersUsed: 2,
    maxUnackedPerWorker: 2,
    left: 0,
  },
  topic: {
    errors: ['auth.error', 'db.error'],
    auth: ['auth.error', 'auth.login.ok'],
    all: ['auth.error', 'auth.login.ok', 'db.error', 'db.info'],
  },
  confirms: {
    callbacks: 10,
    errors: 0,
    queued: 10,
    returned: ['no.such.queue'],
    returnedBody: 'lost',
    rejected: { ok: 1, nacked: 1 },
    events: [...Array.from({ length: 12 }, (_, i) => `ack ${i + 1}`), 'nack 13'],
    callbackFirst: true,
  },
  content: {
    toString: 'héllo {"n":1}',
    template: 'héllo {"n":1}',
    json: { n: 1, s: 'é' },
    hex: '68c3a96c6c6f',
    base64: 'aMOpbGxv',
    base64url: 'aMOpbGxv',
    latin1: 'hÃ©llo',
    ascii: 'hC)llo',
    slice: 'éll',
    toJSON: { type: 'Buffer', data: [104, 105] },
    unknownEncoding: 'TypeError',
    isUint8Array: true,
    isBufferWhereThereIsOne: true,
  },
};

const text = (m) => new TextDecoder().decode(m.content);

/** `promise`, or a rejection naming `what` after `ms`: a stuck step fails instead of hanging. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`scenario: ${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs the scenario on a new broker (name unique per run, memory or whatever `options.storage`
 * says) and closes it. `options` are passed to connect(): e.g. `{ wasm }` in workerd.
 */
export async function scenario(connect, options = {}) {
  const name = `runtime-scenario-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const conn = await connect({ name, ...options });
  try {
    return {
      storage: conn.storage,
      workQueue: await workQueue(conn),
      topic: await topic(conn),
      confirms: await confirms(conn),
      content: await content(conn),
    };
  } finally {
    await conn.close();
  }
}

/** Two workers with prefetch(2) share 20 jobs, acking each a little later. */
async function workQueue(conn) {
  const JOBS = 20;
  const pub = await conn.createConfirmChannel();
  await pub.assertQueue('jobs', { durable: false });
  let handled = 0;
  let allHandled;
  const finished = new Promise((ok) => (allHandled = ok));
  const workers = [];
  for (let w = 0; w < 2; w++) {
    const ch = await conn.createChannel();
    await ch.prefetch(2);
    const worker = { ch, unacked: 0, maxUnacked: 0, got: [] };
    workers.push(worker);
    await ch.consume('jobs', (m) => {
      worker.unacked += 1;
      worker.maxUnacked = Math.max(worker.maxUnacked, worker.unacked);
      worker.got.push(Number(text(m).split(' ')[1]));
      setTimeout(() => {
        worker.unacked -= 1;
        ch.ack(m);
        if (++handled === JOBS) allHandled();
      }, 2);
    });
  }
  for (let i = 0; i < JOBS; i++) pub.sendToQueue('jobs', `job ${i}`, { persistent: false });
  await within(10_000, 'publishing the jobs', pub.waitForConfirms());
  await within(10_000, 'handling the jobs', finished);
  const all = workers.flatMap((w) => w.got).sort((a, b) => a - b);
  const result = {
    jobs: all.length,
    handledOnce: all.every((n, i) => n === i),
    fifoPerWorker: workers.every((w) => w.got.every((n, i) => i === 0 || n > w.got[i - 1])),
    workersUsed: workers.filter((w) => w.got.length > 0).length,
    maxUnackedPerWorker: Math.max(...workers.map((w) => w.maxUnacked)),
    left: (await pub.checkQueue('jobs')).messageCount,
  };
  for (const w of workers) await w.ch.close();
  await pub.close();
  return result;
}

/** A topic exchange routes by pattern to two queues; get() drains them. */
async function topic(conn) {
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange('logs', 'topic', { durable: false });
  for (const [queue, pattern] of [['errors', '*.error'], ['auth', 'auth.#'], ['all', '#']]) {
    await ch.assertQueue(queue, { durable: false });
    await ch.bindQueue(queue, 'logs', pattern);
  }
  for (const key of ['auth.error', 'db.error', 'auth.login.ok', 'db.info']) {
    ch.publish('logs', key, key);
  }
  await within(10_000, 'publishing to the topic exchange', ch.waitForConfirms());
  const result = {};
  for (const queue of ['errors', 'auth', 'all']) {
    const keys = [];
    for (let m; (m = await ch.get(queue)); ) {
      if (text(m) !== m.fields.routingKey) throw new Error(`scenario: body ${text(m)} under key ${m.fields.routingKey}`);
      keys.push(m.fields.routingKey);
      ch.ack(m);
    }
    result[queue] = keys.sort();
  }
  await ch.close();
  return result;
}

/** Publisher confirms: callbacks, waitForConfirms, a mandatory return, a nack from a full queue. */
async function confirms(conn) {
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('confirmed', { durable: false });
  const outcomes = [];
  const returned = [];
  ch.on('return', (m) => returned.push({ key: m.fields.routingKey, body: text(m) }));
  // amqplib's confirm events, each after its publish's callback.
  const events = [];
  let callbackFirst = true;
  const seen = new Set();
  for (const name of ['ack', 'nack']) {
    ch.on(name, ({ deliveryTag, multiple }) => {
      events.push(`${name} ${deliveryTag}${multiple ? '+' : ''}`);
      if (deliveryTag <= 10 && !seen.has(deliveryTag)) callbackFirst = false;
    });
  }
  for (let i = 0; i < 10; i++) {
    ch.sendToQueue('confirmed', `m${i}`, { messageId: `m${i}` }, (err) => {
      outcomes.push(err ? err.message : null);
      seen.add(i + 1);
    });
  }
  ch.publish('', 'no.such.queue', 'lost', { mandatory: true });
  await within(10_000, 'waitForConfirms', ch.waitForConfirms());

  // A queue that refuses what does not fit: its confirm is a nack (the callback's err).
  await ch.assertQueue('bounded', { durable: false, maxLength: 1, arguments: { 'x-overflow': 'reject-publish' } });
  const bounded = [];
  ch.sendToQueue('bounded', 'fits', {}, (err) => bounded.push(err ? 'nacked' : 'ok'));
  ch.sendToQueue('bounded', 'does not fit', {}, (err) => bounded.push(err ? 'nacked' : 'ok'));
  // amqplib's waitForConfirms rejects only for a nack still pending when it is called: either way
  // both callbacks have run once it settles.
  await within(10_000, 'waitForConfirms after a nack', ch.waitForConfirms().catch(() => {}));
  const result = {
    callbacks: outcomes.length,
    errors: outcomes.filter((e) => e !== null).length,
    queued: (await ch.checkQueue('confirmed')).messageCount,
    returned: returned.map((r) => r.key),
    returnedBody: returned[0]?.body,
    rejected: {
      ok: bounded.filter((b) => b === 'ok').length,
      nacked: bounded.filter((b) => b === 'nacked').length,
    },
    events,
    callbackFirst,
  };
  await ch.close();
  return result;
}

/** Message content reads as text as amqplib's Buffer does: toString(encoding), a template, JSON.parse. */
async function content(conn) {
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  const get = async (body) => {
    ch.sendToQueue(queue, body);
    for (let i = 0; i < 200; i++) {
      const m = await ch.get(queue, { noAck: true });
      if (m) return m.content;
      await new Promise((ok) => setTimeout(ok, 5));
    }
    throw new Error('scenario: content: no message');
  };
  const a = await get('héllo {"n":1}');
  const json = await get('{"n":1,"s":"é"}');
  const hello = await get('héllo');
  const hi = await get('hi');
  let unknownEncoding = 'no error';
  try {
    hello.toString('klingon');
  } catch (e) {
    unknownEncoding = e?.name;
  }
  const NodeBuffer = globalThis.Buffer;
  const result = {
    toString: a.toString(),
    template: `${a}`,
    json: JSON.parse(json),
    hex: hello.toString('hex'),
    base64: hello.toString('base64'),
    base64url: hello.toString('base64url'),
    latin1: hello.toString('latin1'),
    ascii: hello.toString('ascii'),
    slice: hello.toString('utf8', 1, 5),
    toJSON: JSON.parse(JSON.stringify(hi)),
    unknownEncoding,
    isUint8Array: a instanceof Uint8Array,
    isBufferWhereThereIsOne: typeof NodeBuffer?.isBuffer !== 'function' || NodeBuffer.isBuffer(a),
  };
  await ch.close();
  return result;
}
