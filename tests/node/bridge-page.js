// Page-side half of tests/node/bridge.test.mjs: one tab of an app that bridges its broker to
// RabbitMQ. Node drives it with page.evaluate and reads `__bridge.state` (plain data).
//
//   await page.evaluate((a) => import('/tests/node/bridge-page.js').then((m) => m.join(a)), { name, bridge });
//   await page.evaluate(() => __bridge.publish('to-rabbit', 'k', 50, 'm-'));   // confirmed ids
//   await page.evaluate(() => __bridge.consume('inbox'));
import { connect } from '/pkg/index.js';

export const state = { received: [], confirmed: [], failed: [], failovers: 0, error: null };
let conn;
let bridge;

/** Connects to broker `name`, declares the local side (exchange 'to-rabbit', queue 'inbox'), and the bridge if given. */
export async function join({ name, bridge: options }) {
  conn = await connect({ name });
  conn.on('failover', () => (state.failovers += 1));
  const ch = await conn.createChannel();
  await ch.assertExchange('to-rabbit', 'topic', { durable: true });
  await ch.assertQueue('inbox', { durable: true });
  await ch.close();
  if (options) bridge = await conn.bridge(options);
  globalThis.__bridge = api;
  return conn.hosting;
}

export const api = {
  state,
  hosting: () => conn.hosting,
  status: () => bridge?.status ?? null,
  async stats() {
    const s = await conn.stats();
    return { host: s.host, bridges: s.bridges, queues: s.queues.map((q) => ({ name: q.name, ready: q.ready, unacked: q.unacked })) };
  },
  /** Publishes `count` persistent messages with confirms; resolves with the confirmed ids. */
  async publish(exchange, routingKey, count, prefix, properties = {}) {
    const ch = await conn.createConfirmChannel();
    const ids = [];
    for (let i = 0; i < count; i++) {
      const id = `${prefix}${i}`;
      ch.publish(exchange, routingKey, new TextEncoder().encode(id), { persistent: true, messageId: id, ...properties }, (err) => {
        if (err) state.failed.push(id);
        else {
          state.confirmed.push(id);
          ids.push(id);
        }
      });
    }
    await ch.waitForConfirms().catch(() => {});
    await ch.close().catch(() => {});
    return ids;
  },
  /** Publishes `count` messages, `perTick` at a time every `everyMs` ms (a stream a crash can cut into). */
  async stream(exchange, routingKey, count, prefix, perTick = 10, everyMs = 20) {
    const ch = await conn.createConfirmChannel();
    for (let i = 0; i < count; i++) {
      const id = `${prefix}${i}`;
      ch.publish(exchange, routingKey, new TextEncoder().encode(id), { persistent: true, messageId: id }, (err) => {
        if (err) state.failed.push(id);
        else state.confirmed.push(id);
      });
      if (i % perTick === perTick - 1) await new Promise((r) => setTimeout(r, everyMs));
    }
    await ch.waitForConfirms().catch(() => {});
  },
  /** Consumes `queue`, recording every message with its properties, acking each. */
  async consume(queue) {
    const ch = await conn.createChannel();
    await ch.consume(queue, (msg) => {
      if (!msg) return;
      const p = msg.properties;
      state.received.push({
        body: new TextDecoder().decode(msg.content),
        redelivered: msg.fields.redelivered,
        routingKey: msg.fields.routingKey,
        messageId: p.messageId,
        contentType: p.contentType,
        correlationId: p.correlationId,
        replyTo: p.replyTo,
        deliveryMode: p.deliveryMode,
        headers: p.headers,
      });
      ch.ack(msg);
    });
  },
  closeBridge: () => bridge?.close(),
  close: () => conn.close(),
};
