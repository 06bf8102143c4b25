// Shared module worker for tests/node/mesh.test.mjs: joins broker `name` (the page that started
// it hosts) and consumes `queue` (durable, prefetch `prefetch`), acking each message, and reports
// through the port it was started on. Started with port.postMessage({name, queue, prefetch});
// posts back {type: 'joined', hosting}, {type: 'consuming'}, then for each delivery
// {type: 'received', id, redelivered, text}; {type: 'cancelled'} if the consumer is cancelled,
// {type: 'error', message} for anything that went wrong.
import { connect } from '/pkg/index.js';

const ports = [];
const fail = (e) => {
  const message = String(e?.stack ?? e?.message ?? e);
  for (const port of ports) port.postMessage({ type: 'error', message });
};
self.addEventListener('error', (event) => fail(event.error ?? event.message));
self.addEventListener('unhandledrejection', (event) => fail(event.reason));

self.onconnect = (event) => {
  const port = event.ports[0];
  ports.push(port);
  port.onmessage = ({ data }) => start(port, data).catch(fail);
  port.start();
};

async function start(port, { name, queue, prefetch = 10 }) {
  const conn = await connect({ name });
  conn.on('error', fail);
  port.postMessage({ type: 'joined', hosting: conn.hosting });
  const ch = await conn.createChannel();
  ch.on('error', fail);
  await ch.assertQueue(queue, { durable: true });
  await ch.prefetch(prefetch);
  const decoder = new TextDecoder();
  await ch.consume(queue, (msg) => {
    if (msg === null) return port.postMessage({ type: 'cancelled' });
    port.postMessage({
      type: 'received',
      id: msg.properties.messageId,
      redelivered: msg.fields.redelivered,
      text: decoder.decode(msg.content),
    });
    ch.ack(msg);
  });
  port.postMessage({ type: 'consuming' });
}
