// The exchanges view and one exchange's view: the tables, the declare form, delete.
import { $, DASH, el, fmtNum, parseTable, setText } from './shared.js';
import { commands, fail, notify } from './console.js';
import { route } from './route.js';
import {
  confirmAction, exchangeHref, exchangeLabel, link, numCell, onSubmit, setFeatures, syncRows,
} from './ui.js';
import { syncBindings } from './bindings.js';

export function renderExchanges(s) {
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

export function renderExchange(s) {
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
