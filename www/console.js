// The console's connection and what every view shares: the status line and notices, the
// connection to the broker (connected at load, top-level await) with a channel for commands and
// a confirm channel for publishing.
import {
  $, BROKER, ChannelSource, declareDemo, errorText, loadTabbitInto, params, setText,
} from './shared.js';

export const LABEL = params.get('label') || 'console';

const status = $('status');
const notice = $('notice');

export function showStatus(text, isError = false) {
  setText(status, text);
  status.classList.toggle('error', isError);
}
/** The outcome of the last action, for everyone (role=status). */
export function notify(text, kind = 'ok') {
  notice.textContent = text;
  notice.className = kind;
}
export const fail = (e) => notify(errorText(e), 'error');

for (const node of document.querySelectorAll('.broker-name')) node.textContent = BROKER;
setText($('broker-name'), BROKER);

// ---- connecting ------------------------------------------------------------------------------

const tabbit = await loadTabbitInto(showStatus);

export let conn;
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
export const commands = new ChannelSource(conn);
export let returned = 0;
export const publisher = new ChannelSource(conn, { confirm: true, setup: (ch) => ch.on('return', () => returned++) });

try {
  await declareDemo(await commands.get());
} catch (e) {
  fail(e);
}
