// A worker tab of the demo (worker.html?n=1): consumes the durable queue 'work' with
// prefetch 2, "works" on each job for the milliseconds it names, then acks it, and posts
// job.done / job.redelivered to the topic exchange 'feed'. Also a chat box on that exchange.
// The console opens these tabs with window.open, so it can close them abruptly.
import {
  $, BROKER, ChannelSource, FEED_EXCHANGE, Feed, WORKER_PREFETCH, WORK_QUEUE, chatOptions, declareDemo, el, encoder,
  errorText, loadTabbitInto, params, publishConfirmed, setText,
} from './shared.js';

const n = params.get('n') || String(1 + Math.floor(Math.random() * 900));
const LABEL = `worker ${n}`;
const status = $('status');
const show = (text, isError = false) => {
  setText(status, text);
  status.classList.toggle('error', isError);
};
document.title = `tabbit ${LABEL}`;
setText($('worker-name'), LABEL);
setText($('broker-name'), BROKER);
setText($('prefetch'), WORKER_PREFETCH);

const tabbit = await loadTabbitInto(show);

const conn = await tabbit.connect({ name: BROKER, label: LABEL });
const updateRole = () => setText($('role'), conn.hosting ? 'hosts the broker' : 'client');
updateRole();
setInterval(updateRole, 500);
conn.on('error', (e) => show(errorText(e), true));
conn.on('failover', (info) => {
  updateRole();
  show(`The tab hosting the broker went away; ${info?.hosting ? 'this tab hosts it now' : 'another tab hosts it now'}. Consuming goes on.`);
});
addEventListener('pageshow', (ev) => ev.persisted && location.reload());

/** Non-persistent events (job.done, job.redelivered) for the feed. */
const events = new ChannelSource(conn);
const publisher = new ChannelSource(conn, { confirm: true });
function post(key, data) {
  events
    .get()
    .then((ch) => ch.publish(FEED_EXCHANGE, key, encoder.encode(JSON.stringify({ from: LABEL, ...data })), { timestamp: Date.now() }))
    .catch(() => {});
}

const counts = { hand: 0, received: 0, redelivered: 0, acked: 0 };
const showCounts = () => {
  for (const k of Object.keys(counts)) setText($(`count-${k}`), counts[k]);
};

// ---- consuming -------------------------------------------------------------------------------

let ch = null;
let tag = null;

async function start() {
  if (!ch) {
    ch = await conn.createChannel();
    ch.on('error', (e) => show(errorText(e), true));
    ch.on('close', () => {
      ch = null;
      tag = null;
      setToggle();
    });
    await declareDemo(ch);
    await ch.prefetch(WORKER_PREFETCH);
  }
  await ch.assertQueue(WORK_QUEUE, { durable: true });
  ({ consumerTag: tag } = await ch.consume(WORK_QUEUE, onJob));
  setToggle();
  show(`Ready: ${LABEL} consumes '${WORK_QUEUE}' (prefetch ${WORKER_PREFETCH}) on broker '${BROKER}'.`);
}

async function stop() {
  const t = tag;
  tag = null;
  await ch?.cancel(t);
  setToggle();
  show(`Paused: ${LABEL} takes no new jobs (the ones in hand are finished and acked).`);
}

function setToggle() {
  const button = $('toggle');
  button.disabled = false;
  button.setAttribute('aria-pressed', String(!tag));
  button.textContent = tag ? 'Pause consuming' : 'Resume consuming';
}

function onJob(msg) {
  if (msg === null) {
    tag = null;
    setToggle();
    show(`The queue '${WORK_QUEUE}' went away (deleted?): Resume consuming declares it again.`, true);
    return;
  }
  let job = {};
  try {
    job = JSON.parse(new TextDecoder().decode(msg.content));
  } catch {
    /* not a demo job: 0 ms of work */
  }
  const id = job.job ?? msg.properties.messageId ?? '?';
  const ms = Math.max(0, Math.min(60_000, Number(job.ms) || 0));
  const redelivered = msg.fields.redelivered;
  const deliveries = msg.properties.headers?.['x-delivery-count'];
  counts.hand++;
  counts.received++;
  if (redelivered) {
    counts.redelivered++;
    post('job.redelivered', { job: id, count: deliveries });
  }
  showCounts();
  const fill = el('div', { class: 'bar-fill' });
  fill.style.animationDuration = `${ms}ms`;
  const li = el(
    'li',
    { class: redelivered ? 'redelivered' : '', dataset: { job: String(id) } },
    el('strong', { text: `job ${id}` }),
    redelivered ? el('span', { class: 'tag redelivered', text: 'redelivered' }) : null,
    el('span', { class: 'bar-track', role: 'progressbar', 'aria-label': `job ${id}`, 'aria-valuetext': `${ms} ms of work` }, fill),
  );
  $('in-hand').append(li);
  setTimeout(() => {
    li.remove();
    counts.hand--;
    try {
      ch?.ack(msg);
    } catch (e) {
      show(`Could not ack job ${id}: ${errorText(e)}`, true);
      showCounts();
      return;
    }
    counts.acked++;
    showCounts();
    li.querySelector('.bar-track')?.remove();
    li.append(el('span', { class: 'muted', text: `acked after ${ms} ms` }));
    $('done').prepend(li);
    while ($('done').children.length > 30) $('done').lastElementChild.remove();
    post('job.done', { job: id, redelivered });
  }, ms);
}

$('toggle').addEventListener('click', () => (tag ? stop() : start()).catch((e) => show(errorText(e), true)));
$('crash').addEventListener('click', () => {
  window.close(); // works in a tab a script opened (the console's "Open a worker tab")
  setTimeout(() => ($('crash-hint').hidden = false), 300);
});

try {
  await start();
} catch (e) {
  show(errorText(e), true);
}

// ---- chat --------------------------------------------------------------------------------------

const feed = new Feed(conn, $('feed'), { pattern: 'chat.#', onError: (e) => show(errorText(e), true) });
feed.start().catch((e) => show(errorText(e), true));
$('form-chat').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = $('chat-text').value.trim();
  if (!text) return;
  try {
    const p = await publisher.get();
    await publishConfirmed(p, FEED_EXCHANGE, `chat.${$('chat-room').value}`, encoder.encode(JSON.stringify({ from: LABEL, text })), chatOptions(LABEL));
    $('chat-text').value = '';
  } catch (e) {
    show(errorText(e), true);
  }
});
