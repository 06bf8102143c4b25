// The storage panel: the storage's kind, whether the browser keeps it (persisted), usage
// against quota; the persist button and the 'storage' warning.
import { $, errorText, fmtBytes, setText, sleep } from './shared.js';
import { conn, fail, notify, showStatus } from './console.js';

const STORAGE_POLL_MS = 5000;
/** The last conn.storageInfo() (null before the first, or in an older tabbit without it). */
export let storage = null;

async function pollStorage() {
  if (typeof conn.storageInfo !== 'function') return;
  for (;;) {
    try {
      storage = await conn.storageInfo();
      renderStorage();
    } catch (e) {
      if (e?.code !== 320) showStatus(`storageInfo() failed: ${errorText(e)}`, true);
    }
    await sleep(STORAGE_POLL_MS);
  }
}

function renderStorage() {
  const s = storage;
  if (!s) return;
  const kept = { true: 'persisted', false: 'best-effort: the browser may evict it', null: 'eviction policy unknown' }[String(s.persisted)];
  const used = typeof s.usage === 'number' && typeof s.quota === 'number' ? `; the origin uses ${fmtBytes(s.usage)} of ${fmtBytes(s.quota)}` : '';
  setText($('storage'), s.kind === 'indexeddb' ? `${s.kind} (${kept}${used})` : s.kind);
  // Asking makes sense only where it can be asked and has not been granted (Firefox prompts).
  $('persist').hidden = !(s.kind === 'indexeddb' && s.persisted !== true && s.persist !== 'unavailable');
}

$('persist').addEventListener('click', async () => {
  try {
    const granted = await conn.persist();
    notify(
      granted === true
        ? 'The browser persists this origin’s storage now: it is not evicted under storage pressure.'
        : granted === false
          ? 'The browser refused to persist this origin’s storage (it decides by heuristics, e.g. an installed app or a bookmark): durable queues may be evicted under storage pressure.'
          : 'This browser cannot be asked to persist storage.',
      granted === true ? 'ok' : 'error',
    );
    storage = await conn.storageInfo();
    renderStorage();
  } catch (e) {
    fail(e);
  }
});
conn.on('storage', (info) => {
  storage = info;
  renderStorage();
  notify('Persistent messages are going to durable queues in storage the browser may evict (not persisted): ask to keep it (Storage, above), or bridge them to RabbitMQ.', 'error');
});
pollStorage();
