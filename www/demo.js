// The demo view: the work queue and its worker tabs (open, crash), publishing jobs, the feed
// and the chat.
import {
  $, BROKER, chatOptions, el, encoder, Feed, FEED_EXCHANGE, fmtNum, fmtRate, params,
  publishConfirmed, setText, WORK_QUEUE, WORKER_PREFETCH,
} from './shared.js';
import { RateChart } from './chart.js';
import { conn, fail, LABEL, notify, publisher } from './console.js';
import { latest, points, same } from './stats.js';
import { syncRows } from './ui.js';

const demoChart = new RateChart($('chart-demo'), $('legend-demo'));

/** Worker tabs this console opened: n → {win, closedAt}. */
const workers = new Map();
let lastRedelivered;

export function renderDemo(s) {
  const q = s.queues?.find((x) => x.name === WORK_QUEUE);
  setText($('work-ready'), fmtNum(q?.ready));
  setText($('work-unacked'), fmtNum(q?.unacked));
  setText($('work-consumers'), fmtNum(q?.consumers));
  setText($('work-acked'), fmtNum(q?.acked));
  const red = $('work-redelivered');
  setText(red, fmtNum(q?.redelivered));
  if (q && lastRedelivered !== undefined && q.redelivered > lastRedelivered) {
    red.classList.remove('flash');
    void red.offsetWidth; // restart the animation
    red.classList.add('flash');
  }
  lastRedelivered = q?.redelivered;
  demoChart.draw(points, fmtRate);
  renderWorkers(s);
}

function workerNumbers(s) {
  const ns = new Set(workers.keys());
  for (const c of s?.contexts ?? []) {
    const m = /^worker (\d+)$/.exec(c.label ?? '');
    if (m) ns.add(Number(m[1]));
  }
  return [...ns].sort((a, b) => a - b);
}

function renderWorkers(s = latest) {
  const now = Date.now();
  for (const [n, w] of workers) {
    if (w.win.closed && w.closedAt === null) w.closedAt = now;
    if (w.closedAt !== null && now - w.closedAt > 60_000) workers.delete(n);
  }
  const list = $('workers');
  const items = workerNumbers(s);
  syncRows(
    list,
    items,
    (n) => String(n),
    (n) => {
      const li = el('li', { dataset: { worker: String(n) } });
      const row = { tr: li, name: el('span', { class: 'name', text: `worker ${n}` }), info: el('span', { class: 'info' }) };
      row.crash = el('button', {
        type: 'button',
        class: 'danger small crash',
        text: 'Crash',
        'aria-label': `Crash worker ${n}: close its tab abruptly`,
        onclick: () => crashWorker(n),
      });
      li.append(row.name, row.info, row.crash);
      return row;
    },
    (row, n) => {
      const w = workers.get(n);
      const ctx = s?.contexts?.find((c) => c.label === `worker ${n}`);
      const closed = w ? w.win.closed : !ctx;
      const parts = [];
      if (closed) parts.push('closed');
      else if (ctx) {
        parts.push(ctx.hosting || same(ctx.id, s.host) ? 'open, hosts the broker' : 'open');
        parts.push(`holds ${fmtNum(ctx.unacked)} unacked job${ctx.unacked === 1 ? '' : 's'}`);
      } else parts.push(w ? 'opening…' : 'open');
      if (!w && !closed) parts.push('not opened from this tab');
      setText(row.info, parts.join(' · '));
      row.tr.classList.toggle('gone', closed);
      row.crash.hidden = !w || closed;
    },
    'No worker tabs yet',
  );
}

function openWorker() {
  const n = Math.max(0, ...workerNumbers(latest)) + 1;
  const query = new URLSearchParams({ n: String(n) });
  if (params.get('broker')) query.set('broker', params.get('broker'));
  const win = window.open(`worker.html?${query}`, `tabbit-worker-${n}`);
  if (!win) {
    notify('The browser blocked the new tab: allow pop-ups for this page, or open worker.html?n=1 yourself.', 'error');
    return;
  }
  workers.set(n, { win, closedAt: null });
  notify(`Opened worker ${n} in a new tab: it consumes '${WORK_QUEUE}' with prefetch ${WORKER_PREFETCH}.`);
  renderWorkers();
}

function crashWorker(n) {
  const w = workers.get(n);
  if (!w || w.win.closed) return;
  const held = latest?.contexts?.find((c) => c.label === `worker ${n}`)?.unacked;
  w.win.close(); // no goodbye: the broker learns of it when the tab's Web Lock is released
  notify(
    `Crashed worker ${n}: its tab is gone${typeof held === 'number' ? ` with ${held} unacked job${held === 1 ? '' : 's'}` : ''}; the broker puts them back in '${WORK_QUEUE}' for the other consumers, flagged redelivered.`,
  );
  renderWorkers();
  $('open-worker').focus();
}

function nextJobNumber() {
  const key = `tabbit-demo:${BROKER}:job`;
  try {
    const n = Number(localStorage.getItem(key) || 0) + 1;
    localStorage.setItem(key, String(n));
    return n;
  } catch {
    return Math.floor(Date.now() / 1000) % 100000;
  }
}

async function publishJobs(count, ms) {
  const ch = await publisher.get();
  const sent = [];
  for (let i = 0; i < count; i++) {
    const job = nextJobNumber();
    sent.push(
      publishConfirmed(ch, '', WORK_QUEUE, encoder.encode(JSON.stringify({ job, ms })), {
        persistent: true,
        messageId: `job-${job}`,
        contentType: 'application/json',
        timestamp: Date.now(),
        appId: LABEL,
      }),
    );
  }
  await Promise.all(sent);
}

$('form-jobs').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const count = Math.min(1000, Math.max(1, Number($('jobs-count').value) || 1));
  const ms = Math.min(60_000, Math.max(0, Number($('jobs-ms').value) || 0));
  const button = $('publish-jobs');
  button.disabled = true;
  try {
    await publishJobs(count, ms);
    notify(`Published ${count} job${count === 1 ? '' : 's'} of ${ms} ms to '${WORK_QUEUE}': confirmed, so stored.`);
  } catch (e) {
    fail(e);
  } finally {
    button.disabled = false;
  }
});

let autoTimer = null;
$('jobs-auto').addEventListener('change', (ev) => {
  clearInterval(autoTimer);
  autoTimer = null;
  if (ev.target.checked) {
    autoTimer = setInterval(() => {
      const ms = Math.min(60_000, Math.max(0, Number($('jobs-ms').value) || 0));
      publishJobs(1, ms).catch((e) => {
        fail(e);
        ev.target.checked = false;
        clearInterval(autoTimer);
      });
    }, 1000);
  }
});
$('open-worker').addEventListener('click', openWorker);

// The feed: this tab's exclusive queue on the topic exchange, and the chat form.
const feed = new Feed(conn, $('feed'), { pattern: $('feed-pattern').value, onError: fail });
feed.start().catch(fail);
$('feed-pattern').addEventListener('change', (ev) => feed.setPattern(ev.target.value).catch(fail));
$('form-chat').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = $('chat-text').value.trim();
  if (!text) return;
  const room = $('chat-room').value;
  try {
    const ch = await publisher.get();
    await publishConfirmed(ch, FEED_EXCHANGE, `chat.${room}`, encoder.encode(JSON.stringify({ from: LABEL, text })), chatOptions(LABEL));
    $('chat-text').value = '';
  } catch (e) {
    fail(e);
  }
});
