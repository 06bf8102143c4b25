// One round of bench/edge-deno.mjs, in Deno (it runs this as
//   deno run --unstable-kv --import-map=MAP --allow-read=PKG,DIR --allow-write=DIR edge-deno-kv.js DIR N RAW_N ORDER
// with a fresh DIR each round) and prints one JSON line {raw, tabbit} in messages per second:
//   raw     RAW_N messages of 100 bytes, one kv.set per message, each awaited before the next (as an
//           app writing each message as it comes would);
//   tabbit  N persistent 100-byte messages published to a durable queue on a confirm channel, at most
//           1,000 unconfirmed, through denoKvStorage: timed from the first publish until every
//           confirm is in (each confirm follows the commit that holds the message).
// ORDER 'raw-first' or 'tabbit-first' (the caller alternates). Each side has its own KV file.
import { connect } from 'tabbit';
import { denoKvStorage } from 'tabbit/storage/deno-kv';

const [dir, n, rawN, order] = [Deno.args[0], Number(Deno.args[1]), Number(Deno.args[2]), Deno.args[3]];
const body = new Uint8Array(100).fill(120);

async function raw() {
  const kv = await Deno.openKv(`${dir}/raw.kv`);
  const t0 = performance.now();
  for (let i = 0; i < rawN; i++) await kv.set(['messages', i], body);
  const ms = performance.now() - t0;
  kv.close();
  return (rawN / ms) * 1000;
}

async function tabbit() {
  const kv = await Deno.openKv(`${dir}/tabbit.kv`);
  const conn = await connect({ name: 'bench', storage: denoKvStorage(kv) });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('bench', { durable: true });
  let unconfirmed = 0;
  let wake = null;
  let failed = null;
  const confirmed = (err) => {
    unconfirmed--;
    if (err) failed ??= err;
    wake?.();
  };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    unconfirmed++;
    ch.sendToQueue('bench', body, { persistent: true }, confirmed);
    while (unconfirmed >= 1000) await new Promise((ok) => (wake = ok));
  }
  await ch.waitForConfirms();
  const ms = performance.now() - t0;
  if (failed) throw failed;
  const { messageCount } = await ch.checkQueue('bench');
  if (messageCount !== n) throw new Error(`${messageCount} messages queued, not ${n}`);
  await conn.close();
  kv.close();
  return (n / ms) * 1000;
}

try {
  const out = {};
  for (const side of order === 'tabbit-first' ? ['tabbit', 'raw'] : ['raw', 'tabbit']) out[side] = side === 'raw' ? await raw() : await tabbit();
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.stack ?? e) }));
  Deno.exit(1);
}
