// Page-side half of tests/node/regressions.test.mjs: one tab's part in the two regression
// tests (publisher confirms the same in a hosting and a client tab; a cross-tab feed on
// server-named exclusive queues that survives failover). Node imports it into a blank test
// page, joins a broker, then calls the functions on `globalThis.reg` and reads `__reg`
// (plain data):
//
//   await page.evaluate((name) => import('/tests/node/regressions-page.js').then((m) => m.join(name)), name);
//   const record = await page.evaluate((tag) => reg.confirmProgram(tag), 'host');
//
// Only amqplib's API plus the mesh's additions (`conn.hosting`, the 'failover' event).
import { connect } from '/pkg/index.js';

/** What Node reads; plain data only. */
export const state = {
  name: null,
  /** Each 'failover' event: {hosting, cancelled, notRestored (as 'what: why' lines)}. */
  failovers: [],
  /** The feed consumer (feed()): its queue, tag, the message texts it got, and how often it got null. */
  feed: null,
  /** What should not happen: connection errors, unexpected channel errors. */
  errors: [],
};
globalThis.__reg = state;

let conn = null;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (s) => encoder.encode(s);
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
/** An error as the records keep it: its AMQP code, 'err' for an error without one, null for none. */
const code = (err) => (err ? (err.code ?? 'err') : null);
const text = (e) => String(e?.message ?? e) + (e?.code !== undefined ? ` (code ${e.code})` : '');

/** 'resolved' or 'rejected', once `p` settles. */
async function outcome(p) {
  try {
    await p;
    return 'resolved';
  } catch {
    return 'rejected';
  }
}

/** Waits until fn() is truthy, for at most `timeout` ms (then goes on: the record shows what is missing). */
async function until(fn, timeout = 5000) {
  const deadline = Date.now() + timeout;
  while (!fn() && Date.now() < deadline) await sleep(5);
}

/** Connects to broker `name` (IndexedDB storage). → {hosting}. */
export async function join(name) {
  if (conn) throw new Error(`regressions-page: joined '${state.name}' already`);
  state.name = name;
  conn = await connect({ name });
  conn.on('failover', (info) =>
    state.failovers.push({
      hosting: info?.hosting,
      cancelled: Array.from(info?.cancelled ?? []),
      notRestored: Array.from(info?.notRestored ?? [], (n) => `${n.what}: ${n.error?.message}`),
    }),
  );
  conn.on('error', (e) => state.errors.push(`connection error: ${text(e)}`));
  return { hosting: conn.hosting };
}

export function hosting() {
  return conn.hosting;
}

/** The amqplib program (tests/runtimes/amqplib-program.mjs, promise API) on this tab's broker. */
export async function amqplibProgram() {
  const { default: amqp } = await import('/pkg/index.js');
  const { run } = await import('/tests/runtimes/amqplib-program.mjs');
  return run(amqp, state.name, {});
}

/** The amqplib/callback_api program (tests/runtimes/callback-program.mjs) on this tab's broker. */
export async function callbackProgram() {
  const { default: amqp } = await import('/pkg/callback_api.js');
  const { run } = await import('/tests/runtimes/callback-program.mjs');
  return new Promise((ok, fail) => run(amqp, state.name, {}, (err, out) => (err ? fail(err) : ok(out))));
}

// ---- bug 1: publisher confirms, host = client ------------------------------------------------

/**
 * The same program in any tab; `tag` keeps its queues apart from another tab's run on the same
 * broker. → a record of what happened, which must be the same in a hosting and a client tab:
 *
 * - rejectPublish: two publishes to a queue with x-max-length 1 and x-overflow reject-publish;
 *   `results` is the order in which the two confirm callbacks and the line after the publishes
 *   ran, `waited` how waitForConfirms() settled, `messageCount` the queue's count afterwards.
 * - missingExchange: a publish to an exchange that does not exist, then at once
 *   waitForConfirms(): whether publish threw, the callback's error code(s), the channel's
 *   events, how waitForConfirms() settled.
 * - closeOutstanding: a persistent publish to a durable queue (its confirm waits for storage),
 *   then close() at once: whether the confirm was still outstanding at close(), the callback's
 *   error code(s), and how waitForConfirms() settled, called right after close() (the confirm
 *   still outstanding) and after close() resolved (the callback already has its error).
 * - closeSettled: a publish confirmed (waitForConfirms resolved) before close(); then
 *   waitForConfirms() after close().
 */
export async function confirmProgram(tag) {
  const record = {};

  {
    const ch = await conn.createConfirmChannel();
    ch.on('error', (e) => state.errors.push(`rejectPublish channel error: ${text(e)}`));
    const queue = `capped-${tag}`;
    await ch.assertQueue(queue, { durable: false, arguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
    const results = [];
    // amqplib's confirm events, after each publish's callback.
    ch.on('ack', (f) => results.push(['ack', f.deliveryTag, f.multiple]));
    ch.on('nack', (f) => results.push(['nack', f.deliveryTag, f.multiple]));
    ch.sendToQueue(queue, bytes('a'), {}, (err) => results.push(['cb1', code(err)]));
    ch.sendToQueue(queue, bytes('b'), {}, (err) => results.push(['cb2', code(err)])); // refused: the queue is full
    results.push(['sync-after-publish']); // the confirm callbacks must not have run inside publish
    const waited = await outcome(ch.waitForConfirms());
    await until(() => results.length >= 5);
    await sleep(50); // a callback called twice would show now
    const { messageCount } = await ch.checkQueue(queue);
    record.rejectPublish = { results, waited, messageCount };
    await ch.close();
  }

  {
    const ch = await conn.createConfirmChannel();
    const events = [];
    // amqplib's error: code, classId and methodId (basic.publish), and its wording.
    ch.on('error', (e) => events.push(['error', code(e), e.classId, e.methodId, e.message.replaceAll(tag, '<tag>')]));
    ch.on('close', () => events.push(['close']));
    const cbs = [];
    let threw = null;
    try {
      ch.publish(`no-such-exchange-${tag}`, 'k', bytes('c'), {}, (err) => cbs.push(code(err)));
    } catch (e) {
      threw = code(e);
    }
    const waited = await outcome(ch.waitForConfirms()); // at once: the 404 has not come back yet in a client tab
    await until(() => events.some(([e]) => e === 'close') && cbs.length > 0);
    await sleep(50);
    record.missingExchange = { threw, cbs, events, waited };
  }

  {
    // A rejected call, as amqplib words it.
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    const e = await ch.checkQueue(`no-such-queue-${tag}`).then(() => null, (err) => err);
    record.rejectedCall = [e?.code, e?.classId, e?.methodId, e?.message.replaceAll(tag, '<tag>')];
  }

  {
    const ch = await conn.createConfirmChannel();
    ch.on('error', (e) => state.errors.push(`closeOutstanding channel error: ${text(e)}`));
    const queue = `durable-${tag}`;
    await ch.assertQueue(queue, { durable: true });
    const cbs = [];
    ch.sendToQueue(queue, bytes('d'), { persistent: true }, (err) => cbs.push(code(err)));
    const outstandingAtClose = cbs.length === 0;
    const closing = ch.close();
    const waitedAtClose = outcome(ch.waitForConfirms());
    await closing;
    const waitedAfterClose = await outcome(ch.waitForConfirms());
    await until(() => cbs.length > 0);
    await sleep(50);
    record.closeOutstanding = { outstandingAtClose, cbs, waitedAtClose: await waitedAtClose, waitedAfterClose };
  }

  {
    const ch = await conn.createConfirmChannel();
    ch.on('error', (e) => state.errors.push(`closeSettled channel error: ${text(e)}`));
    const queue = `plain-${tag}`;
    await ch.assertQueue(queue, { durable: false });
    const cbs = [];
    ch.sendToQueue(queue, bytes('e'), {}, (err) => cbs.push(code(err)));
    const before = await outcome(ch.waitForConfirms());
    await ch.close();
    const after = await outcome(ch.waitForConfirms());
    record.closeSettled = { cbs, before, after };
  }

  return record;
}

// ---- bug 2: a cross-tab feed across failover --------------------------------------------------

/**
 * Joins the feed: topic exchange 'feed' (transient), a server-named exclusive queue bound with
 * 'news.#', and a noAck consumer that records each message's text (and each null).
 * → {queue, consumerTag}.
 */
export async function feed() {
  const ch = await conn.createChannel();
  ch.on('error', (e) => state.errors.push(`feed channel error: ${text(e)}`));
  await ch.assertExchange('feed', 'topic', { durable: false });
  const q = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(q.queue, 'feed', 'news.#');
  const f = (state.feed = { queue: q.queue, tag: null, received: [], nulls: 0 });
  const { consumerTag } = await ch.consume(
    q.queue,
    (msg) => {
      if (msg === null) f.nulls++;
      else f.received.push(decoder.decode(msg.content));
    },
    { noAck: true },
  );
  f.tag = consumerTag;
  return { queue: q.queue, consumerTag };
}

/**
 * Publishes `count` messages `${prefix}${i}` to 'feed' with `routingKey` on a new confirm
 * channel, then waits for the confirms and closes the channel.
 * → {sent: [texts], errors: [strings], waited: 'resolved' | 'rejected'}.
 */
export async function publishFeed(prefix, count, routingKey = 'news.x') {
  const errors = [];
  const sent = [];
  let ch;
  try {
    ch = await conn.createConfirmChannel();
  } catch (e) {
    return { sent, errors: [`createConfirmChannel: ${text(e)}`], waited: null };
  }
  ch.on('error', (e) => errors.push(`channel error: ${text(e)}`));
  for (let i = 0; i < count; i++) {
    const body = `${prefix}${i}`;
    try {
      ch.publish('feed', routingKey, bytes(body), {}, (err) => err && errors.push(`confirm of ${body}: ${text(err)}`));
      sent.push(body);
    } catch (e) {
      errors.push(`publish of ${body}: ${text(e)}`);
      break;
    }
  }
  let waited;
  try {
    await ch.waitForConfirms();
    waited = 'resolved';
  } catch (e) {
    waited = 'rejected';
    errors.push(`waitForConfirms: ${text(e)}`);
  }
  await ch.close().catch(() => {});
  return { sent, errors, waited };
}

/**
 * What stats() shows of the feed: exchange 'feed' (its type), and of the queues named in
 * `queues`, those that exist ({name, exclusive, consumers}) and their bindings
 * ({source, destination, routingKey}), sorted by name.
 */
export async function feedStats(queues) {
  const s = await conn.stats();
  const byName = (x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0);
  return {
    exchange: s.exchanges.find((e) => e.name === 'feed')?.type ?? null,
    queues: s.queues
      .filter((q) => queues.includes(q.name))
      .map((q) => ({ name: q.name, exclusive: q.exclusive, consumers: q.consumers }))
      .sort(byName),
    bindings: s.bindings
      .filter((b) => queues.includes(b.destination))
      .map((b) => ({ source: b.source, destination: b.destination, routingKey: b.routingKey }))
      .sort((x, y) => (x.destination < y.destination ? -1 : x.destination > y.destination ? 1 : 0)),
  };
}

globalThis.reg = { join, hosting, confirmProgram, callbackProgram, amqplibProgram, feed, publishFeed, feedStats, state };
