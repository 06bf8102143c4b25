// The overview view: the broker's totals, the rate chart, the queues at a glance.
import { $, el, fmtNum, fmtRate, setText } from './shared.js';
import { RateChart, totalsOf } from './chart.js';
import { hostName, points, qrates, sum } from './stats.js';
import { link, numCell, queueHref, syncRows } from './ui.js';

const overviewChart = new RateChart($('chart-overview'), $('legend-overview'));

export function renderOverview(s) {
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
