// Bindings, shown on the exchanges, exchange and queue views: their rows with an Unbind
// button, and the forms that bind.
import { $, el, parseTable } from './shared.js';
import { commands, fail, notify } from './console.js';
import { route } from './route.js';
import { argsText, exchangeHref, exchangeLabel, link, onSubmit, queueHref, syncRows } from './ui.js';

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
export function syncBindings(tbody, list, cols, emptyText) {
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
