// The connections view: the contexts (tabs and workers) of the broker, and its bridges.
import { $, DASH, el, fmtNum, setText } from './shared.js';
import { LABEL } from './console.js';
import { isSelf, same } from './stats.js';
import { link, numCell, queueHref, syncRows } from './ui.js';

export function renderConnections(s) {
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

export function renderBridges(s) {
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
