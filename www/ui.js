// The pieces the views are made of: table rows kept in step with the stats, cells and links,
// feature tags, the forms' submit handling, the confirm dialog.
import { $, DASH, el, setText, valueText } from './shared.js';
import { fail } from './console.js';

/**
 * Keeps `tbody`'s rows in step with `items` without rebuilding them (focus and selection
 * survive the 500 ms refresh): `build(item)` → {tr, …cells}, `update(row, item)` fills it.
 */
export function syncRows(tbody, items, keyOf, build, update, emptyText = 'None') {
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

export const numCell = (col) => el('td', { class: 'num', dataset: { col } });
export const link = (href, text, code = true) => el('a', { href }, code ? el('code', { text }) : text);
export const queueHref = (name) => `#/queues/${encodeURIComponent(name)}`;
export const exchangeHref = (name) => `#/exchanges/${encodeURIComponent(name)}`;
export const exchangeLabel = (name) => (name === '' ? '(AMQP default)' : name);

export const QUEUE_FEATURES = {
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
export function setFeatures(cell, item, known) {
  const sig = JSON.stringify([item.durable, item.autoDelete, item.exclusive, item.internal, item.arguments]);
  if (cell.dataset.sig === sig) return;
  cell.dataset.sig = sig;
  const tags = featureTags(item, known);
  cell.replaceChildren(...(tags.length ? tags : [DASH]));
}

export function argsText(args) {
  const entries = Object.entries(args ?? {});
  return entries.length ? entries.map(([k, v]) => `${k} = ${valueText(v)}`).join(', ') : '';
}

/** Runs a form's action with its submit button disabled; reports errors. */
export function onSubmit(form, action) {
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

export const optNumber = (input) => (input.value.trim() === '' ? undefined : Number(input.value));

/** Asks in a modal <dialog>; resolves true if confirmed. */
export function confirmAction(text, okLabel) {
  const dialog = $('confirm');
  setText($('confirm-text'), text);
  setText($('confirm-ok'), okLabel);
  dialog.returnValue = '';
  return new Promise((ok) => {
    dialog.addEventListener('close', () => ok(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}
