// The publish form, one for the queue's and the exchange's views (app.js moves it between them).
import { $, encoder, parseTable, publishConfirmed } from './shared.js';
import { notify, publisher, returned } from './console.js';
import { exchangeLabel, onSubmit, optNumber } from './ui.js';

export const publishForm = $('form-publish');
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
