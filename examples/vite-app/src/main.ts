// A durable work queue shared by every tab of the origin: any tab adds jobs, each job goes to
// one tab, which acks it when done. Jobs are persistent in a durable queue: they survive a
// reload, and a tab that closes or crashes mid-job gives its job back to the others.
import { connect, type ConsumeMessage } from 'tabbit';

type Job = { id: number; work: number };

const $ = (id: string) => document.getElementById(id)!;
const conn = await connect({ name: 'example-work-queue' });
const ch = await conn.createConfirmChannel();
await ch.assertQueue('jobs', { durable: true });
await ch.prefetch(1);

const show = () => ($('status').textContent = conn.hosting ? 'this tab hosts the broker' : 'another tab hosts the broker');
show();
conn.on('failover', show);

await ch.consume<Job>(
  'jobs',
  async (msg: ConsumeMessage<Job> | null) => {
    if (!msg?.value) return;
    await new Promise((done) => setTimeout(done, msg.value!.work)); // the job's work
    const li = document.createElement('li');
    li.textContent = `job ${msg.value.id}${msg.fields.redelivered ? ' (redelivered)' : ''}`;
    $('done').append(li);
    ch.ack(msg);
  },
  { structured: true },
);

let next = Date.now();
$('add').addEventListener('click', async () => {
  for (let i = 0; i < 5; i++) {
    const job: Job = { id: next++, work: 500 + Math.round(Math.random() * 1500) };
    ch.sendToQueue('jobs', job, { structured: true, persistent: true });
  }
  await ch.waitForConfirms(); // stored: they survive a crash of every tab
});
($('add') as HTMLButtonElement).disabled = false; // connected
