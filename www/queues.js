// The queues view and one queue's view: the tables, the declare form, get / peek, purge and
// delete.
import {
  $, bodyText, DASH, el, fmtBytes, fmtNum, fmtRate, parseTable, setText, valueText,
} from './shared.js';
import { commands, conn, fail, notify } from './console.js';
import { latest, qrates } from './stats.js';
import { route } from './route.js';
import {
  argsText, confirmAction, exchangeLabel, link, numCell, onSubmit, optNumber, QUEUE_FEATURES,
  queueHref, setFeatures, syncRows,
} from './ui.js';
import { syncBindings } from './bindings.js';

export function renderQueues(s) {
  syncRows(
    $('queue-rows'),
    s.queues ?? [],
    (q) => q.name,
    (q) => {
      const row = { tr: el('tr'), cells: {} };
      row.tr.append(el('th', { scope: 'row' }, link(queueHref(q.name), q.name)), (row.cells.features = el('td', { class: 'features' })));
      for (const col of ['consumers', 'ready', 'unacked', 'total', 'bytes', 'in', 'deliver', 'ack', 'redelivered']) {
        row.tr.append((row.cells[col] = numCell(col)));
      }
      return row;
    },
    (row, q) => {
      const r = qrates.get(q.name) ?? {};
      setFeatures(row.cells.features, q, QUEUE_FEATURES);
      setText(row.cells.consumers, fmtNum(q.consumers));
      setText(row.cells.ready, fmtNum(q.ready));
      setText(row.cells.unacked, fmtNum(q.unacked));
      setText(row.cells.total, fmtNum(q.ready + q.unacked));
      setText(row.cells.bytes, fmtBytes(q.readyBytes));
      setText(row.cells.in, fmtRate(r.published));
      setText(row.cells.deliver, fmtRate(r.delivered));
      setText(row.cells.ack, fmtRate(r.acked));
      setText(row.cells.redelivered, fmtNum(q.redelivered));
    },
    'No queues yet',
  );
}

export function renderQueue(s) {
  const name = route.name;
  const q = s.queues?.find((x) => x.name === name);
  $('qd-missing').hidden = !!q;
  for (const dd of document.querySelectorAll('#qd-tiles [data-q]')) {
    const k = dd.dataset.q;
    const v = !q ? undefined : k === 'total' ? q.ready + q.unacked : q[k];
    setText(dd, k === 'readyBytes' ? fmtBytes(v) : fmtNum(v));
  }
  if (q) {
    const flags = [q.durable ? 'durable' : 'transient', q.exclusive && 'exclusive', q.autoDelete && 'auto-delete'].filter(Boolean);
    const args = argsText(q.arguments);
    setText($('qd-features'), flags.join(', ') + (args ? `; ${args}` : '; no arguments'));
  } else {
    setText($('qd-features'), DASH);
  }
  const to = Array.isArray(s.bindings)
    ? s.bindings.filter((b) => (b.destinationType ?? 'queue') === 'queue' && b.destination === name)
    : [];
  syncBindings($('qd-binding-rows'), to, ['source'], Array.isArray(s.bindings) ? 'No bindings' : `${DASH} (this tabbit version does not list bindings)`);
}

onSubmit($('form-queue'), async (f) => {
  const name = f.name.value.trim();
  const args = parseTable(f.args.value);
  const limit = optNumber(f.deliveryLimit);
  if (limit !== undefined) args['x-delivery-limit'] = limit;
  const options = {
    durable: f.durable.checked,
    autoDelete: f.autoDelete.checked,
    exclusive: f.exclusive.checked,
    arguments: args,
    messageTtl: optNumber(f.ttl),
    maxLength: optNumber(f.maxLength),
    expires: optNumber(f.expires),
    deadLetterExchange: f.dlx.value.trim() || undefined,
    deadLetterRoutingKey: f.dlk.value.trim() || undefined,
    maxPriority: optNumber(f.maxPriority),
  };
  for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
  const ch = await commands.get();
  const ok = await ch.assertQueue(name, options);
  notify(`Queue '${ok.queue}' declared (${ok.messageCount} ready, ${ok.consumerCount} consumers).`);
  f.name.value = '';
});

// Get / peek.
const canPeek = typeof conn.peek === 'function';
if (!canPeek) {
  $('get-mode').querySelector('option[value=peek]').disabled = true;
  $('get-mode').value = 'requeue';
  $('peek-note').hidden = false;
}

function messageItem(msg, i) {
  const { text, binary } = bodyText(msg.content);
  const props = Object.entries(msg.properties ?? {}).filter(([k, v]) => k !== 'headers' && v !== undefined);
  const headers = Object.entries(msg.properties?.headers ?? {});
  const row = (k, v) => [el('dt', { text: k }), el('dd', { text: v })];
  return el(
    'li',
    {},
    el('strong', { text: `Message ${i + 1}` }),
    msg.fields?.redelivered ? el('span', { class: 'tag redelivered', text: ' redelivered' }) : null,
    el(
      'dl',
      {},
      row('Exchange', exchangeLabel(msg.fields?.exchange ?? '')),
      row('Routing key', msg.fields?.routingKey ?? DASH),
      props.map(([k, v]) => row(k, valueText(v))),
      headers.length ? row('Headers', headers.map(([k, v]) => `${k} = ${valueText(v)}`).join(', ')) : [],
      row('Payload', `${msg.content.length} bytes${binary ? ', not UTF-8 (hex)' : ''}`),
    ),
    el('pre', { class: 'payload', text }),
  );
}

onSubmit($('form-get'), async (f) => {
  const queue = route.name;
  const count = Math.min(100, Math.max(1, Number(f.count.value) || 1));
  const mode = f.mode.value;
  let msgs;
  if (mode === 'peek') {
    msgs = await conn.peek(queue, count);
  } else {
    const ch = await commands.get();
    msgs = [];
    for (let i = 0; i < count; i++) {
      const m = await ch.get(queue);
      if (!m) break;
      msgs.push(m);
    }
    for (const m of msgs) {
      if (mode === 'ack') ch.ack(m);
      else ch.nack(m, false, mode === 'requeue');
    }
  }
  $('get-results').replaceChildren(...msgs.map(messageItem));
  const what = { peek: 'peeked at', requeue: 'got and requeued', ack: 'got and acked', reject: 'got and rejected' }[mode];
  const pagedOut = latest?.queues?.find((q) => q.name === queue)?.pagedOut > 0;
  notify(
    msgs.length
      ? `${msgs.length} message${msgs.length === 1 ? '' : 's'} ${what} from '${queue}'.`
      : mode === 'peek' && pagedOut
        ? `Nothing to peek at in '${queue}': the head of the queue is paged out to storage (Get can read it).`
        : `Queue '${queue}' has no ready message.`,
  );
});

$('qd-purge').addEventListener('click', async () => {
  const name = route.name;
  if (!(await confirmAction(`Purge the ready messages of queue '${name}'? Unacked ones stay.`, 'Purge'))) return;
  try {
    const { messageCount } = await (await commands.get()).purgeQueue(name);
    notify(`Purged ${messageCount} message${messageCount === 1 ? '' : 's'} from '${name}'.`);
  } catch (e) {
    fail(e);
  }
});
$('qd-delete').addEventListener('click', async () => {
  const name = route.name;
  if (!(await confirmAction(`Delete queue '${name}', its messages and bindings? Its consumers are cancelled.`, 'Delete queue'))) return;
  try {
    const { messageCount } = await (await commands.get()).deleteQueue(name);
    notify(`Deleted queue '${name}' (${messageCount} ready message${messageCount === 1 ? '' : 's'} dropped).`);
    location.hash = '#/queues';
  } catch (e) {
    fail(e);
  }
});
