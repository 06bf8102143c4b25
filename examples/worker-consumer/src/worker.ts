// The dedicated worker: joins the page's broker (one broker per name across the origin's tabs
// and workers) and consumes 'thumbnails' one at a time; a job it has not acked when the worker
// dies goes back to the queue.
import { connect } from 'tabbit';
import { BROKER, type Done, type Thumbnail } from './job';

const conn = await connect({ name: BROKER, label: 'thumbnailer' });
const ch = await conn.createChannel();
await ch.assertQueue('thumbnails', { durable: true });
await ch.prefetch(1);
for await (const msg of ch.messages<Thumbnail>('thumbnails', { structured: true })) {
  const job = msg.value;
  if (job) {
    const pixels = [...job.sizes].reduce((sum, side) => sum + side * side, 0);
    const done: Done = { photo: job.photo, pixels, tookMs: Date.now() - job.at.getTime() };
    ch.sendToQueue('done', done, { structured: true });
  }
  ch.ack(msg);
}
