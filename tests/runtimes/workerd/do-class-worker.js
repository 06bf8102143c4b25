// A worker that hosts the package's Durable Object class, TabbitBroker ('tabbit/durable-object':
// pkg/durable-object.js, as scripts/build-pkg ships it from js/durable-object.js), and calls it
// through its stub (Workers RPC). tests/node/edge-do-class.test.mjs drives it over HTTP:
//
//   POST /<object>/<method>   body: JSON array of arguments   → 200 JSON result | 500 {error}
//
// A message's `content` (bytes) is answered as `text` (UTF-8). Any other request gets a 404
// without touching an object, so that the test's "is workerd up" probe wakes none.
//
// Broker is TabbitBroker with one addition: after each alarm it logs what its queues hold
// ("tabbit-test alarm {...}"), so that the test can see an alarm's work without calling the object.
import { TabbitBroker } from './pkg/durable-object.js';

export class Broker extends TabbitBroker {
  async alarm() {
    await super.alarm();
    const stats = await (await this.connection()).stats();
    const queues = Object.fromEntries(stats.queues.map((q) => [q.name, { ready: q.ready, deadLettered: q.deadLettered }]));
    console.log(`tabbit-test alarm ${JSON.stringify({ at: Date.now(), queues })}`);
  }
}

const METHODS = new Set(['publish', 'sendToQueue', 'get', 'ack', 'nack', 'assertQueue', 'assertExchange', 'bindQueue', 'purgeQueue', 'stats', 'fetchStatus']);
const text = new TextDecoder();

export default {
  async fetch(request, env) {
    const [, object, method] = new URL(request.url).pathname.split('/');
    if (!object || !METHODS.has(method) || request.method !== 'POST') {
      return new Response('POST /<object>/<method> with a JSON array of arguments\n', { status: 404 });
    }
    const stub = env.BROKER.get(env.BROKER.idFromName(object));
    try {
      if (method === 'fetchStatus') {
        const r = await stub.fetch('http://object/anything');
        return Response.json({ status: r.status, body: await r.json() });
      }
      const args = await request.json();
      const out = await stub[method](...args);
      if (out && out.content instanceof Uint8Array) {
        const { content, ...rest } = out;
        return Response.json({ ...rest, text: text.decode(content) });
      }
      return Response.json(out ?? null);
    } catch (e) {
      return Response.json({ error: String(e?.message ?? e), code: e?.code ?? null }, { status: 500 });
    }
  },
};
