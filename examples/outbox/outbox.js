// @ts-check
// Orders go to the local exchange 'to-server'; the bridge's outbox (a durable local queue bound
// to it) keeps them in IndexedDB until RabbitMQ confirms each with a STOMP receipt, across
// reloads and browser restarts. Only the hosting tab holds the WebSocket, whichever tab bridges.
import { connect } from 'tabbit';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const conn = await connect({ name: 'example-outbox' });
const ch = await conn.createConfirmChannel();
await ch.assertExchange('to-server', 'direct', { durable: true });

/** @type {import('tabbit').Bridge | undefined} */
let bridge;
$('start').addEventListener('click', async () => {
  try {
    bridge = await conn.bridge({
      url: /** @type {HTMLInputElement} */ ($('url')).value,
      login: 'guest', // RabbitMQ lets guest in from localhost only
      passcode: 'guest',
      outbound: [{ exchange: 'to-server', pattern: 'order', to: '/amq/queue/orders' }],
    });
    /** @type {HTMLButtonElement} */ ($('order')).disabled = false;
  } catch (e) {
    $('status').textContent = String(e); // a bad option: 406 with what to write
  }
});

let n = 0;
$('order').addEventListener('click', async () => {
  ch.publish('to-server', 'order', JSON.stringify({ order: ++n, at: new Date().toISOString() }), { persistent: true });
  await ch.waitForConfirms(); // stored in the outbox: it waits there for RabbitMQ
});

setInterval(() => {
  const s = bridge?.status;
  if (!s) return;
  $('status').textContent =
    `${s.state}${s.error ? ` (${s.error})` : ''}\n` +
    `sent ${s.outbound.sent}, confirmed by RabbitMQ ${s.outbound.confirmed}, pending ${s.outbound.pending}`;
}, 500);
