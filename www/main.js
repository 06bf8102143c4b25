// The demo page: declares queue 'demo', publishes the textarea's text, gets it back and acks it.
// Plain ES module, no bundler: run `scripts/demo`, which builds ../pkg/ and serves the repository.
const $ = (id) => document.getElementById(id);
const status = $('status');
const form = $('publish');
const input = $('message');
const button = $('send');
const out = $('out');

function show(text, isError = false) {
  status.textContent = text;
  status.classList.toggle('error', isError);
}

let tabbit;
try {
  tabbit = await import('../pkg/tabbit.js');
  await tabbit.default(); // init(): fetches and instantiates tabbit_bg.wasm
} catch (e) {
  $('version').textContent = 'unavailable';
  show(`Could not load ../pkg/tabbit.js (build it with scripts/demo): ${e}`, true);
  throw e;
}
$('version').textContent = tabbit.version();

if (typeof tabbit.Broker !== 'function') {
  show('core binding not built yet');
} else {
  const QUEUE = 'demo';
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const broker = await tabbit.Broker.open('demo');
  broker.assertQueue(QUEUE);

  const publish = async () => {
    try {
      await broker.sendToQueue(QUEUE, encoder.encode(input.value), { persistent: true });
      const msg = await broker.get(QUEUE);
      if (!msg) return show(`Queue '${QUEUE}' was empty.`, true);
      broker.ack(msg);
      const li = document.createElement('li');
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = ` (delivery tag ${msg.fields.deliveryTag})`;
      li.append(decoder.decode(msg.content), tag);
      out.append(li);
      show(`Published, got and acked ${msg.content.length} bytes on queue '${QUEUE}'.`);
    } catch (e) {
      show(`Error${e.code ? ` ${e.code}` : ''}: ${e.message ?? e}`, true);
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    publish();
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      publish();
    }
  });
  button.disabled = false;
  show(`Ready: queue '${QUEUE}' declared (storage: ${broker.storage}).`);
}
