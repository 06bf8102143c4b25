// conn.stats(), polled every 500 ms: the latest stats, the rates of the last minute, and what
// the views read from them (the host, this tab among the contexts).
import { DASH, errorText, sleep } from './shared.js';
import { QueueRates, RateMeter } from './chart.js';
import { conn, LABEL, showStatus } from './console.js';

const POLL_MS = 500;

export let latest = null;
const meter = new RateMeter();
const queueRates = new QueueRates();
export let qrates = new Map();
/** [{now, rates}] of the last minute and a bit. */
export const points = [];

export const sum = (list, key) =>
  Array.isArray(list) ? list.reduce((n, x) => n + (typeof x[key] === 'number' ? x[key] : 0), 0) : undefined;
export const same = (a, b) => String(a) === String(b);

function contextOf(s, id) {
  return Array.isArray(s.contexts) ? s.contexts.find((c) => same(c.id, id)) : undefined;
}
/**
 * Whether context `c` is this tab. stats() does not name the calling context, so: the host
 * when this tab hosts, else the only context with this tab's label.
 */
export function isSelf(s, c) {
  if (typeof c.self === 'boolean') return c.self;
  if (s.hosting) return same(c.id, s.host);
  return c.label === LABEL && s.contexts.filter((x) => x.label === LABEL).length === 1;
}
export function hostName(s) {
  const c = contextOf(s, s.host);
  const name = c?.label ? `${c.label}` : `context ${s.host ?? DASH}`;
  return s.hosting ? `${name} (this tab)` : name;
}

/** Polls conn.stats(), handing each to `onStats(stats)`. */
export async function poll(onStats) {
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

/** Takes in a poll's stats: the latest, the rates, the chart points. */
export function record(s) {
  latest = s;
  const now = performance.now();
  points.push({ now, rates: meter.push(s, now) });
  while (points.length && points[0].now < now - 65_000) points.shift();
  qrates = queueRates.push(s, now);
}
