// The management console (index.html): polls conn.stats() every 500 ms and shows the broker
// every tab of this origin shares (overview, connections, exchanges, queues, one queue, one
// exchange), with forms for what amqplib's channel can do; and the demo (worker tabs, a
// producer, a feed). Plain ES modules, no bundler: scripts/demo builds ../pkg/ and serves the
// repository. Fields stats() lacks in an older tabbit show as "—".
// This module is the entry: it routes (route.js) between the views, one module each
// (overview.js, connections.js, exchanges.js, queues.js, demo.js, with the panels bindings.js,
// publish.js, storage-panel.js), and renders the current one on each poll (stats.js); console.js
// connects, ui.js holds the pieces the views share.
import { $, BROKER, DASH, el, FEED_EXCHANGE, setText } from './shared.js';
import { conn, LABEL, showStatus } from './console.js';
import { hostName, latest, poll, record } from './stats.js';
import { NAV, navigate, route } from './route.js';
import { exchangeLabel } from './ui.js';
import { storage } from './storage-panel.js';
import { publishForm } from './publish.js';
import { renderOverview } from './overview.js';
import { renderBridges, renderConnections } from './connections.js';
import { renderExchange, renderExchanges } from './exchanges.js';
import { renderQueue, renderQueues } from './queues.js';
import { renderDemo } from './demo.js';
import './bindings.js';

function onStats(s) {
  record(s);
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

function show(focus) {
  const prev = navigate();
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
poll(onStats);
