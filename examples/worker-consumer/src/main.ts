// The page: starts the worker, publishes jobs to 'thumbnails', shows what comes back on 'done'.
import { connect } from 'tabbit';
import { BROKER, type Done, type Thumbnail } from './job';

new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'thumbnailer' });

const conn = await connect({ name: BROKER, label: 'page' });
const ch = await conn.createConfirmChannel();
await ch.assertQueue('thumbnails', { durable: true });
await ch.assertQueue('done', { durable: false });
await ch.consume<Done>(
  'done',
  (msg) => {
    if (!msg?.value) return;
    const li = document.createElement('li');
    li.textContent = `photo ${msg.value.photo}: ${msg.value.pixels} pixels in ${msg.value.tookMs} ms`;
    document.getElementById('results')!.append(li);
  },
  { structured: true, noAck: true },
);

let photo = 1;
const send = document.getElementById('send') as HTMLButtonElement;
send.addEventListener('click', () => {
  const job: Thumbnail = { photo: photo++, sizes: new Set([64, 256]), at: new Date() };
  ch.sendToQueue('thumbnails', job, { structured: true, persistent: true });
});
send.disabled = false; // connected
