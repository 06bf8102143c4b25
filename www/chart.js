// Message rates: a counter-delta meter and a small SVG line chart drawn by hand (no library).

export const SERIES = [
  { key: 'published', label: 'Published' },
  { key: 'delivered', label: 'Delivered' },
  { key: 'acked', label: 'Acked' },
  { key: 'redelivered', label: 'Redelivered' },
];
const KEYS = ['published', 'delivered', 'redelivered', 'acked', 'deadLettered', 'discarded'];
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The broker's totals: stats().totals, else the sum of the queues' counters. */
export function totalsOf(stats) {
  if (stats?.totals && typeof stats.totals === 'object') return stats.totals;
  const out = {};
  for (const k of KEYS) {
    let sum = 0;
    let any = false;
    for (const q of stats?.queues ?? []) {
      if (num(q[k]) !== undefined) (sum += q[k]), (any = true);
    }
    out[k] = any ? sum : undefined;
  }
  return out;
}

/**
 * Rates per second: stats().rates when the host computes them, else the counters' deltas
 * between two polls (over stats().at when present, else this page's clock). Counters that go
 * down (a queue deleted, another host took over and counts from 0) count as 0.
 */
export class RateMeter {
  #prev = null;

  /** → {published, delivered, redelivered, acked, deadLettered, discarded} per second (undefined when unknown). */
  push(stats, now = performance.now()) {
    const totals = totalsOf(stats);
    const at = num(stats?.at) ?? Date.now();
    const prev = this.#prev;
    this.#prev = { totals, at, now };
    if (stats?.rates && typeof stats.rates === 'object') return stats.rates;
    if (!prev) return Object.fromEntries(KEYS.map((k) => [k, totals[k] === undefined ? undefined : 0]));
    let dt = at - prev.at;
    if (!(dt > 0)) dt = now - prev.now;
    const out = {};
    for (const k of KEYS) {
      const a = num(totals[k]);
      const b = num(prev.totals[k]);
      out[k] = a === undefined || b === undefined || !(dt > 0) ? undefined : (Math.max(0, a - b) * 1000) / dt;
    }
    return out;
  }
}

/**
 * Per-queue rates from the queues' counters, over the last `windowMs` of polls (like the host's
 * rates, so that bursty acks do not read as 0 most of the time): name → {published, delivered, acked} per second.
 */
export class QueueRates {
  #history = []; // [{now, queues: Map(name → counters)}]

  constructor(windowMs = 5000) {
    this.windowMs = windowMs;
  }

  push(stats, now = performance.now()) {
    const queues = new Map((stats?.queues ?? []).map((q) => [q.name, q]));
    this.#history.push({ now, queues });
    while (this.#history.length > 2 && this.#history[1].now <= now - this.windowMs) this.#history.shift();
    const out = new Map();
    for (const [name, q] of queues) {
      // The oldest snapshot in the window that knows the queue.
      const base = this.#history.find((h) => h.queues.has(name) && h.now < now);
      const p = base?.queues.get(name);
      const dt = base ? now - base.now : 0;
      const rate = (k) =>
        p && num(q[k]) !== undefined && num(p[k]) !== undefined && dt > 0 ? (Math.max(0, q[k] - p[k]) * 1000) / dt : undefined;
      out.set(name, { published: rate('published'), delivered: rate('delivered'), acked: rate('acked') });
    }
    return out;
  }
}

const SVG = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs) => {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
};

/** A y-axis top: 1, 2 or 5 times a power of ten, at least `v` (and at least 1). */
function niceMax(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * The last `windowMs` of rates as lines in an <svg> (redrawn at its own pixel size, so the text
 * stays crisp), with a legend (<dl>) of the latest values that doubles as the text alternative.
 */
export class RateChart {
  constructor(svg, legend, { windowMs = 60_000, title = 'Message rates' } = {}) {
    this.svg = svg;
    this.legend = legend;
    this.windowMs = windowMs;
    this.title = title;
    this.cells = new Map();
    svg.setAttribute('role', 'img');
    for (const s of SERIES) {
      const dd = document.createElement('dd');
      dd.dataset.series = s.key;
      dd.textContent = '—';
      const dt = document.createElement('dt');
      dt.className = `s-${s.key}`;
      const name = document.createElement('span');
      name.textContent = s.label;
      dt.append(name);
      const row = document.createElement('div');
      row.append(dt, dd);
      legend.append(row);
      this.cells.set(s.key, dd);
    }
  }

  /** Draws `points` ([{now, rates}], oldest first) and shows the latest rates in the legend. */
  draw(points, fmt) {
    const last = points.at(-1)?.rates ?? {};
    for (const s of SERIES) {
      const text = fmt(last[s.key]);
      if (this.cells.get(s.key).textContent !== text) this.cells.get(s.key).textContent = text;
    }
    this.svg.setAttribute(
      'aria-label',
      `${this.title} over the last ${Math.round(this.windowMs / 1000)} seconds; now ${SERIES.map((s) => `${s.label.toLowerCase()} ${fmt(last[s.key])}`).join(', ')}`,
    );
    const w = Math.max(120, Math.round(this.svg.clientWidth || 600));
    const h = Math.max(60, Math.round(this.svg.clientHeight || 160));
    const left = 40;
    const right = 6;
    const top = 8;
    const bottom = 18;
    const end = points.at(-1)?.now ?? performance.now();
    const start = end - this.windowMs;
    const shown = points.filter((p) => p.now >= start - 1000);
    let max = 0;
    for (const p of shown) for (const s of SERIES) max = Math.max(max, p.rates[s.key] ?? 0);
    max = niceMax(max);
    const x = (t) => left + ((t - start) / this.windowMs) * (w - left - right);
    const y = (v) => top + (1 - Math.min(v, max) / max) * (h - top - bottom);

    const nodes = [];
    for (const f of [0, 0.5, 1]) {
      const yy = y(max * f).toFixed(1);
      nodes.push(svgEl('line', { class: 'grid-line', x1: left, x2: w - right, y1: yy, y2: yy }));
      const label = svgEl('text', { class: 'axis-label', x: left - 6, y: Number(yy) + 4, 'text-anchor': 'end' });
      const v = max * f;
      label.textContent = Number.isInteger(v) ? String(v) : v.toFixed(1);
      nodes.push(label);
    }
    const axis = svgEl('text', { class: 'axis-label', x: left, y: h - 4 });
    axis.textContent = `−${Math.round(this.windowMs / 1000)} s`;
    const nowLabel = svgEl('text', { class: 'axis-label', x: w - right, y: h - 4, 'text-anchor': 'end' });
    nowLabel.textContent = 'now · msg/s';
    nodes.push(axis, nowLabel);
    for (const s of [...SERIES].reverse()) {
      const pts = shown
        .filter((p) => typeof p.rates[s.key] === 'number')
        .map((p) => `${Math.max(left, x(p.now)).toFixed(1)},${y(p.rates[s.key]).toFixed(1)}`);
      if (pts.length >= 2) nodes.push(svgEl('polyline', { class: `s-${s.key}`, points: pts.join(' ') }));
    }
    this.svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    this.svg.replaceChildren(...nodes);
  }
}
