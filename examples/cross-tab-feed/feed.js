// @ts-check
// Each tab declares a queue of its own (server-named, exclusive: it goes with the tab) and binds
// it to the topic exchange 'feed'; a post is published once and routed to every tab's queue.
import { connect } from 'tabbit';

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const conn = await connect({ name: 'example-feed' });
const ch = await conn.createChannel();
await ch.assertExchange('feed', 'topic', { durable: false });
const { queue } = await ch.assertQueue('', { exclusive: true, durable: false });
await ch.bindQueue(queue, 'feed', 'post.*');
await ch.consume(
  queue,
  (msg) => {
    if (!msg) return;
    const { from, text } = JSON.parse(msg.content.toString());
    const li = document.createElement('li');
    li.textContent = `${from}: ${text}`;
    $('feed').prepend(li);
  },
  { noAck: true },
);

const me = `tab ${Math.random().toString(36).slice(2, 6)}`;
const show = () => ($('status').textContent = `${me}, ${conn.hosting ? 'hosting the broker' : 'a client'}`);
show();
// After a failover each tab's queue and binding are declared again by themselves.
conn.on('failover', show);

$('post').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('text'));
  ch.publish('feed', 'post.text', JSON.stringify({ from: me, text: input.value }));
  input.value = '';
});
