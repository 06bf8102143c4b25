// The demo page: declares queue 'demo', publishes the textarea's text, gets it back and acks it.
// Plain ES module, no bundler: run `scripts/demo`, which builds ../pkg/ (the npm package, whose
// main module is ../pkg/index.js) and serves the repository.
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

const showError = (e) => show(`Error${e?.code ? ` ${e.code}` : ''}: ${e?.message ?? e}`, true);

let tabbit;
try {
  tabbit = await import('../pkg/index.js');
  $('version').textContent = await tabbit.version(); // loads tabbit_bg.wasm, as connect() does
} catch (e) {
  $('version').textContent = 'unavailable';
  show(`Could not load ../pkg/index.js (build it with scripts/demo): ${e}`, true);
  throw e;
}

const QUEUE = 'demo';
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let conn;
try {
  conn = await tabbit.connect({ name: 'demo' }); // IndexedDB where it exists, else memory
} catch (e) {
  showError(e);
  throw e;
}

// A confirm channel, opened again if a channel error closed the last one.
let channel = null;
function openChannel() {
  if (!channel) {
    channel = (async () => {
      const ch = await conn.createConfirmChannel();
      ch.on('error', showError);
      ch.on('close', () => (channel = null));
      await ch.assertQueue(QUEUE);
      return ch;
    })();
    channel.catch(() => (channel = null));
  }
  return channel;
}

/** Publishes on `ch` and resolves when the broker confirms (rejects with the nack's Error). */
const sent = (ch, queue, content, options) =>
  new Promise((ok, fail) => ch.sendToQueue(queue, content, options, (err) => (err ? fail(err) : ok())));

const publish = async () => {
  try {
    const ch = await openChannel();
    await sent(ch, QUEUE, encoder.encode(input.value), { persistent: true });
    const msg = await ch.get(QUEUE);
    if (!msg) return show(`Queue '${QUEUE}' was empty.`, true);
    ch.ack(msg);
    const li = document.createElement('li');
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = ` (delivery tag ${msg.fields.deliveryTag})`;
    li.append(decoder.decode(msg.content), tag);
    out.append(li);
    show(`Published, got and acked ${msg.content.length} bytes on queue '${QUEUE}'.`);
  } catch (e) {
    showError(e);
  }
};

try {
  await openChannel();
} catch (e) {
  showError(e);
  throw e;
}
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
show(`Ready: queue '${QUEUE}' declared (storage: ${conn.storage}).`);
