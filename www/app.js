// The management console (index.html): polls conn.stats() every 500 ms and shows the broker
// every tab of this origin shares (overview, connections, exchanges, queues, one queue, one
// exchange), with forms for what amqplib's channel can do; and the demo (worker tabs, a
// producer, a feed). Plain ES modules, no bundler: scripts/demo builds ../pkg/ and serves the
// repository. Fields stats() lacks in an older tabbit show as "—".
import {
  $, BROKER, ChannelSource, DASH, FEED_EXCHANGE, Feed, WORKER_PREFETCH, WORK_QUEUE, bodyText, chatOptions, declareDemo,
  el, encoder, errorText, fmtBytes, fmtNum, fmtRate, loadTabbitInto, params, parseTable, publishConfirmed, setText, sleep,
  valueText,
} from './shared.js';
import { QueueRates, RateChart, RateMeter, totalsOf } from './chart.js';

const LABEL = params.get('label') || 'console';
const POLL_MS = 500;
const status = $('status');
const notice = $('notice');

function showStatus(text, isError = false) {
  setText(status, text);
  status.classList.toggle('error', isError);
}
/** The outcome of the last action, for everyone (role=status). */
function notify(text, kind = 'ok') {
  notice.textContent = text;
  notice.className = kind;
}
const fail = (e) => notify(errorText(e), 'error');

for (const node of document.querySelectorAll('.broker-name')) node.textContent = BROKER;
setText($('broker-name'), BROKER);

// ---- connecting ------------------------------------------------------------------------------

const tabbit = await loadTabbitInto(showStatus);

let conn;
try {
  showStatus(`Connecting to broker '${BROKER}'…`);
  conn = await tabbit.connect({ name: BROKER, label: LABEL });
} catch (e) {
  showStatus(`Could not open broker '${BROKER}': ${errorText(e)}`, true);
  throw e;
}
conn.on('error', fail);
conn.on('failover', (info) =>
  notify(`The tab hosting the broker went away; ${info?.hosting ? 'this tab hosts it now' : 'another tab hosts it now'}.`),
);
// Back from the back/forward cache, the channels are closed (320): start again.
addEventListener('pageshow', (ev) => ev.persisted && location.reload());

/** A channel for management commands, and a confirm channel for publishing (mandatory: returns tell "not routed"). */
const commands = new ChannelSource(conn);
let returned = 0;
const publisher = new ChannelSource(conn, { confirm: true, setup: (ch) => ch.on('return', () => returned++) });

try {
  await declareDemo(await commands.get());
} catch (e) {
  fail(e);
}

// ---- stats -----------------------------------------------------------------------------------

let latest = null;
const meter = new RateMeter();
const queueRates = new QueueRates();
let qrates = new Map();
/** [{now, rates}] of the last minute and a bit. */
const points = [];
const overviewChart = new RateChart($('chart-overview'), $('legend-overview'));
const demoChart = new RateChart($('chart-demo'), $('legend-demo'));

const sum = (list, key) =>
  Array.isArray(list) ? list.reduce((n, x) => n + (typeof x[key] === 'number' ? x[key] : 0), 0) : undefined;
const same = (a, b) => String(a) === String(b);

function contextOf(s, id) {
  return Array.isArray(s.contexts) ? s.contexts.find((c) => same(c.id, id)) : undefined;
}
/**
 * Whether context `c` is this tab. stats() does not name the calling context, so: the host
 * when this tab hosts, else the only context with this tab's label.
 */
function isSelf(s, c) {
  if (typeof c.self === 'boolean') return c.self;
  if (s.hosting) return same(c.id, s.host);
  return c.label === LABEL && s.contexts.filter((x) => x.label === LABEL).length === 1;
}
function hostName(s) {
  const c = contextOf(s, s.host);
  const name = c?.label ? `${c.label}` : `context ${s.host ?? DASH}`;
  return s.hosting ? `${name} (this tab)` : name;
}

async function poll() {
  for (;;) {
    const started = performance.now();
    try {
      onStats(await conn.stats());
    } catch (e) {
      // A failover under way answers 320: the next poll will do.
      if (e?.code !== 320) showStatus(`stats() failed: ${errorText(e)}`, true);
    }
    await sleep(Math.max(50, POLL_MS - (performance.now() - started)));
  }
}

function onStats(s) {
  latest = s;
  const now = performance.now();
  points.push({ now, rates: meter.push(s, now) });
  while (points.length && points[0].now < now - 65_000) points.shift();
  qrates = queueRates.push(s, now);
  if (!storage) setText($('storage'), s.storage ?? conn.storage ?? DASH);
  setText($('role'), s.hosting ? 'hosts the broker' : 'client');
  showStatus(
    `Ready: connected to broker '${BROKER}' as “${LABEL}” (storage: ${s.storage ?? conn.storage}); ${
      s.hosting ? 'this tab hosts it' : `hosted by ${hostName(s)}`
    }.`,
  );
  updateDatalists(s);
  renderView(s);
}

// ---- storage: its kind, whether the browser keeps it (persisted), usage against quota ----------

const STORAGE_POLL_MS = 5000;
/** The last conn.storageInfo() (null before the first, or in an older tabbit without it). */
let storage = null;

async function pollStorage() {
  if (typeof conn.storageInfo !== 'function') return;
  for (;;) {
    try {
      storage = await conn.storageInfo();
      renderStorage();
    } catch (e) {
      if (e?.code !== 320) showStatus(`storageInfo() failed: ${errorText(e)}`, true);
    }
    await sleep(STORAGE_POLL_MS);
  }
}

function renderStorage() {
  const s = storage;
  if (!s) return;
  const kept = { true: 'persisted', false: 'best-effort: the browser may evict it', null: 'eviction policy unknown' }[String(s.persisted)];
  const used = typeof s.usage === 'number' && typeof s.quota === 'number' ? `; the origin uses ${fmtBytes(s.usage)} of ${fmtBytes(s.quota)}` : '';
  setText($('storage'), s.kind === 'indexeddb' ? `${s.kind} (${kept}${used})` : s.kind);
  // Asking makes sense only where it can be asked and has not been granted (Firefox prompts).
  $('persist').hidden = !(s.kind === 'indexeddb' && s.persisted !== true && s.persist !== 'unavailable');
}

$('persist').addEventListener('click', async () => {
  try {
    const granted = await conn.persist();
    notify(
      granted === true
        ? 'The browser persists this origin’s storage now: it is not evicted under storage pressure.'
        : granted === false
          ? 'The browser refused to persist this origin’s storage (it decides by heuristics, e.g. an installed app or a bookmark): durable queues may be evicted under storage pressure.'
          : 'This browser cannot be asked to persist storage.',
      granted === true ? 'ok' : 'error',
    );
    storage = await conn.storageInfo();
    renderStorage();
  } catch (e) {
    fail(e);
  }
});
conn.on('storage', (info) => {
  storage = info;
  renderStorage();
  notify('Persistent messages are going to durable queues in storage the browser may evict (not persisted): ask to keep it (Storage, above), or bridge them to RabbitMQ.', 'error');
});
pollStorage();

function renderView(s) {
  if (!s) return;
  switch (route.view) {
    case 'overview': return renderOverview(s);
    case 'connections':
      renderBridges(s);
      return renderConnections(s);
    case 'exchanges': return renderExchanges(s);
    case 'exchange': return renderExchange(s);
    case 'queues': return renderQueues(s);
    case 'queue': return renderQueue(s);
    case 'demo': return renderDemo(s);
  }
}

// ---- tables ----------------------------------------------------------------------------------

/**
 * Keeps `tbody`'s rows in step with `items` without rebuilding them (focus and selection
 * survive the 500 ms refresh): `build(item)` → {tr, …cells}, `update(row, item)` fills it.
 */
function syncRows(tbody, items, keyOf, build, update, emptyText = 'None') {
  const rows = (tbody._rows ??= new Map());
  const seen = new Set();
  let prev = null;
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let row = rows.get(key);
    if (!row) {
      row = build(item);
      row.tr.dataset.key = key;
      rows.set(key, row);
    }
    update(row, item);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== row.tr) tbody.insertBefore(row.tr, want);
    prev = row.tr;
  }
  for (const [key, row] of rows) {
    if (!seen.has(key)) {
      row.tr.remove();
      rows.delete(key);
    }
  }
  if (items.length === 0) {
    tbody._empty ??=
      tbody.tagName === 'TBODY'
        ? el('tr', { class: 'empty-row' }, el('td', { class: 'empty', colSpan: 20 }))
        : el('li', { class: 'empty-row' }, el('span', { class: 'muted' }));
    setText(tbody._empty.firstChild, emptyText);
    if (!tbody._empty.isConnected) tbody.append(tbody._empty);
  } else {
    tbody._empty?.remove();
  }
}

const numCell = (col) => el('td', { class: 'num', dataset: { col } });
const link = (href, text, code = true) => el('a', { href }, code ? el('code', { text }) : text);
const queueHref = (name) => `#/queues/${encodeURIComponent(name)}`;
const exchangeHref = (name) => `#/exchanges/${encodeURIComponent(name)}`;
const exchangeLabel = (name) => (name === '' ? '(AMQP default)' : name);

const QUEUE_FEATURES = {
  'x-message-ttl': ['TTL', 'message TTL (ms)'],
  'x-expires': ['Exp', 'expires after (ms unused)'],
  'x-max-length': ['Lim', 'max length'],
  'x-max-length-bytes': ['Lim B', 'max length (bytes)'],
  'x-overflow': ['Ovfl', 'overflow'],
  'x-dead-letter-exchange': ['DLX', 'dead-letter exchange'],
  'x-dead-letter-routing-key': ['DLK', 'dead-letter routing key'],
  'x-max-priority': ['Pri', 'max priority'],
  'x-single-active-consumer': ['SAC', 'single active consumer'],
  'x-delivery-limit': ['DL', 'delivery limit'],
};

/** Tags for a queue's or exchange's flags and arguments: <abbr class="tag" title="…">. */
function featureTags(item, known = {}) {
  const tags = [];
  const flag = (on, short, title) => on && tags.push(el('abbr', { class: 'tag feature', title, text: short }));
  flag(item.durable, 'D', 'durable');
  flag(item.autoDelete, 'AD', 'auto-delete');
  flag(item.exclusive, 'Excl', 'exclusive');
  flag(item.internal, 'I', 'internal');
  for (const [k, v] of Object.entries(item.arguments ?? {})) {
    const [short, title] = known[k] ?? [k, k];
    tags.push(el('abbr', { class: 'tag feature', title: `${title}: ${valueText(v)}`, text: short }));
  }
  return tags;
}
/** Sets the feature tags of a cell when they changed. */
function setFeatures(cell, item, known) {
  const sig = JSON.stringify([item.durable, item.autoDelete, item.exclusive, item.internal, item.arguments]);
  if (cell.dataset.sig === sig) return;
  cell.dataset.sig = sig;
  const tags = featureTags(item, known);
  cell.replaceChildren(...(tags.length ? tags : [DASH]));
}

function argsText(args) {
  const entries = Object.entries(args ?? {});
  return entries.length ? entries.map(([k, v]) => `${k} = ${valueText(v)}`).join(', ') : '';
}

// ---- overview --------------------------------------------------------------------------------

function renderOverview(s) {
  const ctx = s.contexts;
  setText($('ov-host'), hostName(s));
  setText($('ov-contexts'), fmtNum(ctx?.length));
  setText($('ov-connections'), fmtNum(sum(ctx, 'connections')));
  setText($('ov-channels'), fmtNum(sum(ctx, 'channels')));
  setText($('ov-consumers'), fmtNum(sum(s.queues, 'consumers')));
  setText($('ov-exchanges'), fmtNum(s.exchanges?.length));
  setText($('ov-queues'), fmtNum(s.queues?.length));
  const ready = sum(s.queues, 'ready');
  const unacked = sum(s.queues, 'unacked');
  setText($('ov-ready'), fmtNum(ready));
  setText($('ov-unacked'), fmtNum(unacked));
  setText($('ov-total'), fmtNum(ready + unacked));
  const totals = totalsOf(s);
  for (const dd of document.querySelectorAll('#ov-totals [data-total]')) setText(dd, fmtNum(totals[dd.dataset.total]));
  setText($('ov-dropped'), fmtNum(s.droppedPosts));
  overviewChart.draw(points, fmtRate);
  syncRows(
    $('ov-queue-rows'),
    s.queues ?? [],
    (q) => q.name,
    (q) => {
      const row = { tr: el('tr'), cells: {} };
      row.tr.append(el('th', { scope: 'row' }, link(queueHref(q.name), q.name)));
      for (const col of ['ready', 'unacked', 'consumers', 'in', 'deliver', 'ack']) row.tr.append((row.cells[col] = numCell(col)));
      return row;
    },
    (row, q) => {
      const r = qrates.get(q.name) ?? {};
      setText(row.cells.ready, fmtNum(q.ready));
      setText(row.cells.unacked, fmtNum(q.unacked));
      setText(row.cells.consumers, fmtNum(q.consumers));
      setText(row.cells.in, fmtRate(r.published));
      setText(row.cells.deliver, fmtRate(r.delivered));
      setText(row.cells.ack, fmtRate(r.acked));
    },
    'No queues yet',
  );
}

// ---- connections -----------------------------------------------------------------------------

function renderConnections(s) {
  const known = Array.isArray(s.contexts);
  $('contexts-note').hidden = known;
  const list = known ? s.contexts : [{ id: s.host, label: s.hosting ? LABEL : undefined, hosting: true }];
  syncRows(
    $('context-rows'),
    list,
    (c) => String(c.id),
    () => {
      const row = { tr: el('tr'), cells: {} };
      row.tr.append((row.cells.label = el('th', { scope: 'row' })), (row.cells.id = el('td', { class: 'mono' })), (row.cells.role = el('td')));
      for (const col of ['connections', 'channels', 'consumers', 'unacked']) row.tr.append((row.cells[col] = numCell(col)));
      return row;
    },
    (row, c) => {
      row.tr.classList.toggle('self', isSelf(s, c));
      setText(row.cells.label, c.label || DASH);
      setText(row.cells.id, c.id ?? DASH);
      const host = c.hosting ?? same(c.id, s.host);
      if (row.cells.role.dataset.host !== String(host)) {
        row.cells.role.dataset.host = String(host);
        row.cells.role.replaceChildren(host ? el('span', { class: 'tag host', text: 'host' }) : 'client');
      }
      for (const col of ['connections', 'channels', 'consumers', 'unacked']) setText(row.cells[col], fmtNum(c[col]));
    },
  );
}

function renderBridges(s) {
  const counts = { sent: ['outbound', 'sent'], confirmed: ['outbound', 'confirmed'], pending: ['outbound', 'pending'], received: ['inbound', 'received'], acked: ['inbound', 'acked'] };
  syncRows(
    $('bridge-rows'),
    Array.isArray(s.bridges) ? s.bridges : [],
    (b) => b.name,
    () => {
      const row = { tr: el('tr'), cells: {} };
      row.tr.append((row.cells.name = el('th', { scope: 'row' })), (row.cells.url = el('td', { class: 'mono' })), (row.cells.state = el('td')));
      for (const col of Object.keys(counts)) row.tr.append((row.cells[col] = numCell(col)));
      row.tr.append((row.cells.outboxes = el('td')));
      return row;
    },
    (row, b) => {
      setText(row.cells.name, b.name);
      setText(row.cells.url, `${b.login}@${b.url} ${b.vhost}`);
      const stateKey = `${b.state}|${b.error ?? ''}`;
      if (row.cells.state.dataset.key !== stateKey) {
        row.cells.state.dataset.key = stateKey;
        const tag = el('span', { class: `tag bridge-${b.state}`, text: b.state });
        row.cells.state.replaceChildren(tag, ...(b.error ? [' ', el('span', { class: 'muted', text: b.error })] : []));
      }
      for (const [col, [side, key]] of Object.entries(counts)) setText(row.cells[col], fmtNum(b[side]?.[key]));
      const boxes = (b.outboxes ?? []).join('\n');
      if (row.cells.outboxes.dataset.key !== boxes) {
        row.cells.outboxes.dataset.key = boxes;
        row.cells.outboxes.replaceChildren(...(b.outboxes ?? []).flatMap((q, i) => (i ? [' ', link(queueHref(q), q)] : [link(queueHref(q), q)])));
      }
    },
    'No bridge: conn.bridge({ url, outbound, inbound }) makes one',
  );
}

// ---- exchanges and bindings ------------------------------------------------------------------

function bindingKey(b) {
  return JSON.stringify([b.source, b.destinationType ?? 'queue', b.destination, b.routingKey, b.arguments ?? {}]);
}

async function unbind(b) {
  try {
    const ch = await commands.get();
    if ((b.destinationType ?? 'queue') === 'exchange') await ch.unbindExchange(b.destination, b.source, b.routingKey, b.arguments);
    else await ch.unbindQueue(b.destination, b.source, b.routingKey, b.arguments);
    notify(`Unbound ${b.destinationType ?? 'queue'} '${b.destination}' from '${exchangeLabel(b.source)}' (key '${b.routingKey}').`);
  } catch (e) {
    fail(e);
  }
}

/** Binding rows; `cols` picks among source, destination, key, args. */
function syncBindings(tbody, list, cols, emptyText) {
  syncRows(
    tbody,
    list,
    bindingKey,
    (b) => {
      const tr = el('tr');
      const dest = (b.destinationType ?? 'queue') === 'exchange'
        ? [el('span', { class: 'tag', text: 'exchange' }), link(exchangeHref(b.destination), b.destination)]
        : link(queueHref(b.destination), b.destination);
      if (cols.includes('source')) tr.append(el('td', {}, link(exchangeHref(b.source), exchangeLabel(b.source))));
      if (cols.includes('destination')) tr.append(el('td', {}, dest));
      tr.append(el('td', {}, el('code', { text: b.routingKey ?? '' })));
      tr.append(el('td', { class: 'mono', text: argsText(b.arguments) }));
      const action = el('td');
      if (b.source !== '') {
        action.append(
          el('button', {
            type: 'button',
            class: 'small',
            text: 'Unbind',
            'aria-label': `Unbind ${b.destination} from ${exchangeLabel(b.source)} with key ${b.routingKey || '(empty)'}`,
            onclick: () => unbind(b),
          }),
        );
      }
      tr.append(action);
      return { tr };
    },
    () => {},
    emptyText,
  );
}

function renderExchanges(s) {
  const known = Array.isArray(s.exchanges);
  $('exchanges-note').hidden = known;
  const bindings = Array.isArray(s.bindings) ? s.bindings : [];
  syncRows(
    $('exchange-rows'),
    known ? s.exchanges : [],
    (x) => x.name,
    (x) => {
      const row = { tr: el('tr'), cells: {} };
      row.tr.append(el('th', { scope: 'row' }, link(exchangeHref(x.name), exchangeLabel(x.name))));
      row.tr.append((row.cells.type = el('td')), (row.cells.features = el('td')), (row.cells.bindings = numCell('bindings')));
      return row;
    },
    (row, x) => {
      setText(row.cells.type, x.type ?? DASH);
      setFeatures(row.cells.features, x, { 'alternate-exchange': ['AE', 'alternate exchange'] });
      setText(row.cells.bindings, Array.isArray(s.bindings) ? fmtNum(bindings.filter((b) => b.source === x.name).length) : DASH);
    },
    known ? 'No exchanges' : DASH,
  );
  syncBindings($('binding-rows'), bindings, ['source', 'destination'], Array.isArray(s.bindings) ? 'No bindings' : `${DASH} (this tabbit version does not list bindings)`);
}

function renderExchange(s) {
  const name = route.name;
  const x = s.exchanges?.find((e) => e.name === name);
  $('x-missing').hidden = !Array.isArray(s.exchanges) || !!x;
  setText($('x-type'), x?.type ?? DASH);
  if (x) setFeatures($('x-features'), x, { 'alternate-exchange': ['AE', 'alternate exchange'] });
  else setText($('x-features'), DASH);
  const out = Array.isArray(s.bindings) ? s.bindings.filter((b) => b.source === name) : [];
  setText($('x-bindings-count'), Array.isArray(s.bindings) ? fmtNum(out.length) : DASH);
  syncBindings($('x-binding-rows'), out, ['destination'], Array.isArray(s.bindings) ? 'No bindings' : DASH);
}

// ---- queues ----------------------------------------------------------------------------------

function renderQueues(s) {
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

function renderQueue(s) {
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

function updateDatalists(s) {
  const fill = (list, names) => {
    const sig = JSON.stringify(names);
    if (list.dataset.sig === sig) return;
    list.dataset.sig = sig;
    list.replaceChildren(...names.map((n) => el('option', { value: n })));
  };
  const exchanges = Array.isArray(s.exchanges)
    ? s.exchanges.map((x) => x.name).filter((n) => n !== '')
    : ['amq.direct', 'amq.fanout', 'amq.headers', 'amq.topic', FEED_EXCHANGE];
  fill($('exchange-names'), exchanges);
  fill($('queue-names'), (s.queues ?? []).map((q) => q.name));
}

// ---- the demo --------------------------------------------------------------------------------

/** Worker tabs this console opened: n → {win, closedAt}. */
const workers = new Map();
let lastRedelivered;

function renderDemo(s) {
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

// ---- forms -----------------------------------------------------------------------------------

/** Runs a form's action with its submit button disabled; reports errors. */
function onSubmit(form, action) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = form.querySelector('button[type=submit]');
    if (button) button.disabled = true;
    try {
      await action(form.elements);
    } catch (e) {
      fail(e);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

const optNumber = (input) => (input.value.trim() === '' ? undefined : Number(input.value));

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

onSubmit($('form-exchange'), async (f) => {
  const name = f.name.value.trim();
  const options = {
    durable: f.durable.checked,
    autoDelete: f.autoDelete.checked,
    internal: f.internal.checked,
    arguments: parseTable(f.args.value),
  };
  if (f.alternate.value.trim()) options.alternateExchange = f.alternate.value.trim();
  const ch = await commands.get();
  await ch.assertExchange(name, f.type.value, options);
  notify(`Exchange '${name}' (${f.type.value}) declared.`);
  f.name.value = '';
});

async function bind(kind, source, destination, key, argsText) {
  const args = parseTable(argsText.includes('\n') ? argsText : argsText.split(/[,;](?=[^=]*=)/).join('\n'));
  const ch = await commands.get();
  if (kind === 'exchange') await ch.bindExchange(destination, source, key, args);
  else await ch.bindQueue(destination, source, key, args);
  notify(`Bound ${kind} '${destination}' to exchange '${source}' with key '${key}'.`);
}

onSubmit($('form-binding'), (f) => bind(f.kind.value, f.source.value.trim(), f.destination.value.trim(), f.key.value, f.args.value));
onSubmit($('form-x-binding'), (f) => bind(f.kind.value, route.name, f.destination.value.trim(), f.key.value, f.args.value));
onSubmit($('form-qd-binding'), (f) => bind('queue', f.source.value.trim(), route.name, f.key.value, f.args.value));
for (const [select, input] of [[$('b-kind'), $('b-destination')], [$('xb-kind'), $('xb-destination')]]) {
  select.addEventListener('change', () => input.setAttribute('list', select.value === 'exchange' ? 'exchange-names' : 'queue-names'));
}

// Publish (one form, shown on the queue's or the exchange's page).
const publishForm = $('form-publish');
onSubmit(publishForm, async (f) => {
  const exchange = f.exchange.value.trim();
  const key = f.key.value;
  const options = { persistent: f.persistent.checked, mandatory: true };
  const headers = parseTable(f.headers.value);
  if (Object.keys(headers).length) options.headers = headers;
  for (const k of ['contentType', 'messageId', 'correlationId', 'replyTo', 'type', 'appId']) {
    if (f[k].value.trim()) options[k] = f[k].value.trim();
  }
  if (optNumber(f.priority) !== undefined) options.priority = optNumber(f.priority);
  if (f.expiration.value.trim()) options.expiration = f.expiration.value.trim();
  const ch = await publisher.get();
  const before = returned;
  await publishConfirmed(ch, exchange, key, encoder.encode(f.body.value), options);
  const where = `exchange '${exchangeLabel(exchange)}' with routing key '${key}'`;
  if (returned > before) notify(`Message published to ${where}, but not routed: no queue took it.`, 'error');
  else notify(`Message published to ${where} and confirmed.`);
});
$('p-body').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    publishForm.requestSubmit();
  }
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

/** Asks in a modal <dialog>; resolves true if confirmed. */
function confirmAction(text, okLabel) {
  const dialog = $('confirm');
  setText($('confirm-text'), text);
  setText($('confirm-ok'), okLabel);
  dialog.returnValue = '';
  return new Promise((ok) => {
    dialog.addEventListener('close', () => ok(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

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
$('x-delete').addEventListener('click', async () => {
  const name = route.name;
  if (!(await confirmAction(`Delete exchange '${name}' and its bindings?`, 'Delete exchange'))) return;
  try {
    await (await commands.get()).deleteExchange(name);
    notify(`Deleted exchange '${name}'.`);
    location.hash = '#/exchanges';
  } catch (e) {
    fail(e);
  }
});

// ---- routing ---------------------------------------------------------------------------------

/** #/overview, #/connections, #/exchanges, #/exchanges/<name> ('' the default), #/queues, #/queues/<name>, #/demo. */
let route = { view: 'overview', name: '' };
const NAV = { exchange: 'exchanges', queue: 'queues' };

function parseRoute() {
  const [first, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const name = decodeURIComponent(rest.join('/'));
  if (first === 'queues' && rest.length && name) return { view: 'queue', name };
  if (first === 'exchanges' && rest.length) return { view: 'exchange', name };
  if (['overview', 'connections', 'exchanges', 'queues', 'demo'].includes(first)) return { view: first, name: '' };
  return { view: 'overview', name: '' };
}

function show(focus) {
  const prev = route;
  route = parseRoute();
  for (const section of document.querySelectorAll('main > section[data-view]')) section.hidden = section.dataset.view !== route.view;
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    if (a.dataset.nav === (NAV[route.view] ?? route.view)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const titles = { queue: `Queue ${route.name}`, exchange: `Exchange ${exchangeLabel(route.name)}` };
  document.title = `${titles[route.view] ?? route.view[0].toUpperCase() + route.view.slice(1)} · tabbit management`;
  if (route.view === 'queue' || route.view === 'exchange') {
    const changed = prev.view !== route.view || prev.name !== route.name;
    if (route.view === 'queue') {
      setText($('qd-name'), route.name);
      if (changed) {
        $('get-results').replaceChildren();
        $('p-exchange').value = '';
        $('p-key').value = route.name;
      }
    } else {
      setText($('x-name'), exchangeLabel(route.name));
      const builtin = route.name === '' || route.name.startsWith('amq.');
      $('x-danger').hidden = builtin;
      $('form-x-binding').hidden = route.name === '';
      $('x-default-note').hidden = route.name !== '';
      if (changed) {
        $('p-exchange').value = route.name;
        $('p-key').value = '';
      }
    }
    document.querySelector(`section[data-view=${route.view}] .publish-slot`).append(publishForm);
    publishForm.hidden = false;
  }
  renderView(latest);
  if (focus) document.querySelector(`section[data-view=${route.view}] h2`)?.focus();
}
addEventListener('hashchange', () => show(true));
show(false);
poll();
