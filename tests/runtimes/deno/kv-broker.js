// A broker in Deno on Deno KV storage (tests/node/edge-deno.test.mjs runs it and SIGKILLs it):
//   deno run --unstable-kv --import-map=MAP --allow-read=... --allow-write=DIR kv-broker.js MODE DIR [FROM [KILL_AT]]
// MODE:
//   publish  publishes persistent messages mFROM, mFROM+1, … to the durable queue 'jobs' on a confirm
//            channel (at most 500 unconfirmed) until killed, printing "confirmed <id>" as each is
//            confirmed; with KILL_AT, it SIGKILLs itself right after printing the KILL_AT-th
//            confirm (Deno.kill on its own pid needs no permission), so that the kill lands as
//            close after a confirm as it can;
//   hold     publishes m0…m19 (m7 and m12 of 3 MiB: a batch over one KV commit) and waits for
//            their confirms, gets m0…m9, acks m0…m4, flush()es, prints "held" and waits to be
//            killed (m5…m9 delivered, not acked);
//   read     gets every message of 'jobs' and prints one JSON line {messages: [{id, redelivered,
//            bytes, intact}]} (intact: the body is the one published).
// The KV is DIR/broker.kv; the adapter is 'tabbit/storage/deno-kv' (the import map says where).
import { connect } from 'tabbit';
import { denoKvStorage } from 'tabbit/storage/deno-kv';

const [mode, dir, from = '0', killAt = 'Infinity'] = Deno.args;
const kv = await Deno.openKv(`${dir}/broker.kv`);
const conn = await connect({ storage: denoKvStorage(kv) });
const ch = await conn.createConfirmChannel();
await ch.assertQueue('jobs', { durable: true });
const body = new TextEncoder().encode('x'.repeat(100));
/** 3 MiB of a pattern, published with the header big: true. */
const bigBody = () => new Uint8Array(3 << 20).map((_, i) => (i * 7) % 251);

if (mode === 'publish') {
  let unconfirmed = 0;
  let wake = null;
  let confirmed = 0;
  for (let i = Number(from); ; i++) {
    const id = `m${i}`;
    unconfirmed++;
    ch.sendToQueue('jobs', body, { persistent: true, messageId: id }, (err) => {
      unconfirmed--;
      if (!err) console.log(`confirmed ${id}`);
      else console.log(`nacked ${id} ${err.message}`);
      if (++confirmed >= Number(killAt)) Deno.kill(Deno.pid, 'SIGKILL');
      wake?.();
    });
    if (unconfirmed >= 500) await new Promise((ok) => (wake = ok));
  }
} else if (mode === 'hold') {
  for (let i = 0; i < 20; i++) {
    const big = i === 7 || i === 12;
    ch.sendToQueue('jobs', big ? bigBody() : body, { persistent: true, messageId: `m${i}`, headers: { big } });
  }
  await ch.waitForConfirms();
  const got = [];
  for (let i = 0; i < 10; i++) got.push(await ch.get('jobs'));
  for (const m of got.slice(0, 5)) ch.ack(m);
  await conn.flush();
  console.log(`held ${JSON.stringify(got.map((m) => m.properties.messageId))}`);
  setInterval(() => {}, 60_000); // until killed
} else if (mode === 'read') {
  const messages = [];
  for (let m; (m = await ch.get('jobs')); ) {
    const id = m.properties.messageId;
    const want = m.properties.headers?.big ? bigBody() : body;
    const intact = m.content.length === want.length && m.content.every((b, i) => b === want[i]);
    messages.push({ id, redelivered: m.fields.redelivered, bytes: m.content.length, intact });
  }
  console.log(JSON.stringify({ messages, problems: [...conn.problems] }));
  await conn.close();
  kv.close();
} else {
  throw new Error(`unknown mode ${mode}: publish, hold or read`);
}
