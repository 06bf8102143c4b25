// Dedicated module worker for the browser tests (tests/node/webkit.test.mjs, storage.test.mjs):
// a consumer in a worker, and what a worker is told about its storage. Started with
// `new Worker('/tests/node/worker-consumer.js', { type: 'module' })`, then driven by postMessage:
//   {op: 'consume', name, queue, count}  joins broker `name` (a page hosts it), consumes `queue`
//       (durable) and acks; posts {type: 'joined', hosting}, then {type: 'received', id,
//       redelivered, text} per message, then {type: 'done', count} after `count` messages.
//   {op: 'storageInfo', name, persist?}  connects (no mesh) and posts {type: 'storageInfo', info,
//       answer, features}: conn.storageInfo(), conn.persist()'s answer if `persist`, and what
//       navigator.storage offers in this worker.
// Anything that goes wrong: {type: 'error', message}.
import { connect } from '/pkg/index.js';

const fail = (e) => postMessage({ type: 'error', message: String(e?.stack ?? e?.message ?? e) + (e?.code !== undefined ? ` (code ${e.code})` : '') });
self.addEventListener('error', (event) => fail(event.error ?? event.message));
self.addEventListener('unhandledrejection', (event) => fail(event.reason));

const ops = {
  async consume({ name, queue, count }) {
    const conn = await connect({ name });
    conn.on('error', fail);
    postMessage({ type: 'joined', hosting: conn.hosting });
    const ch = await conn.createChannel();
    ch.on('error', fail);
    await ch.assertQueue(queue, { durable: true });
    const decoder = new TextDecoder();
    let n = 0;
    await ch.consume(queue, (msg) => {
      if (msg === null) return fail(new Error('consumer cancelled'));
      postMessage({ type: 'received', id: msg.properties.messageId, redelivered: msg.fields.redelivered, text: decoder.decode(msg.content) });
      ch.ack(msg);
      if (++n === count) postMessage({ type: 'done', count: n });
    });
  },

  async storageInfo({ name, persist }) {
    const conn = await connect({ name, persist, mesh: false });
    const answer = persist ? await conn.persist() : undefined;
    const info = await conn.storageInfo();
    const s = self.navigator.storage;
    const features = { storage: !!s, persist: typeof s?.persist, persisted: typeof s?.persisted, estimate: typeof s?.estimate };
    await conn.close();
    postMessage({ type: 'storageInfo', info, answer, features });
  },
};

self.onmessage = ({ data }) => {
  const op = ops[data?.op];
  if (!op) return fail(new Error(`worker-consumer.js: unknown op ${JSON.stringify(data?.op)}`));
  op(data).catch(fail);
};
