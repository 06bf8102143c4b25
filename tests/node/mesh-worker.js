// Dedicated module worker for tests/node/mesh.test.mjs: joins broker `name` (the page that
// started it hosts) and publishes `count` persistent messages to `queue` on a confirm channel,
// ids `${prefix}${i}`, contents `${id} …`. Started with postMessage({name, queue, count, prefix});
// posts back {type: 'joined', hosting}, then {type: 'published', confirmed, failed, hosting},
// or {type: 'error', message} for anything that went wrong.
import { connect } from '/pkg/index.js';

const fail = (e) => postMessage({ type: 'error', message: String(e?.stack ?? e?.message ?? e) });
self.addEventListener('error', (event) => fail(event.error ?? event.message));
self.addEventListener('unhandledrejection', (event) => fail(event.reason));

self.onmessage = async ({ data: { name, queue, count, prefix } }) => {
  try {
    const conn = await connect({ name });
    conn.on('error', fail);
    postMessage({ type: 'joined', hosting: conn.hosting });
    const ch = await conn.createConfirmChannel();
    ch.on('error', fail);
    await ch.assertQueue(queue, { durable: true });
    const encoder = new TextEncoder();
    const confirmed = [];
    const failed = [];
    await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const id = `${prefix}${i}`;
        return new Promise((ok) =>
          ch.sendToQueue(queue, encoder.encode(`${id} from a dedicated worker`), { persistent: true, messageId: id }, (err) => {
            if (err) failed.push({ id, error: String(err?.message ?? err) });
            else confirmed.push(id);
            ok();
          }),
        );
      }),
    );
    postMessage({ type: 'published', confirmed, failed, hosting: conn.hosting });
  } catch (e) {
    fail(e);
  }
};
