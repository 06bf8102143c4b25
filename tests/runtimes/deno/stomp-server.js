// A Web-STOMP broker in Deno on Deno KV (tests/node/edge-stomp.test.mjs runs it, and SIGKILLs it):
//   deno run --unstable-kv --allow-net=127.0.0.1 ... stomp-server.js DIR PORT [QUEUE...]
// serveStomp() of 'tabbit/deno' on 127.0.0.1:PORT, path /ws, with KV storage in DIR/broker.kv;
// one user alice/secret (the check also sees the upgrade request), no anonymous access, and small
// limits: frames of 64 KiB, 4 subscriptions per session, 6 sessions. Once listening it prints one
// JSON line {listening, queues: {QUEUE: messageCount}} (a queue missing: null), counted by the JS
// API of the same broker.
import { serveStomp } from 'tabbit/deno';
import { denoKvStorage } from 'tabbit/storage/deno-kv';

const [dir, port, ...queues] = Deno.args;
const kv = await Deno.openKv(`${dir}/broker.kv`);
const users = new Map([['alice', 'secret']]);
let listening;
const listened = new Promise((ok) => (listening = ok));
const server = await serveStomp({
  storage: denoKvStorage(kv),
  hostname: '127.0.0.1',
  port: Number(port),
  authenticate: async (login, passcode, host, request) => {
    // The request is the upgrade's: a real check could read a cookie or a token from it.
    if (!(request instanceof Request) || new URL(request.url).pathname !== '/ws') return false;
    return host === '/' && users.get(login) === passcode;
  },
  stompLimits: { maxFrameBytes: 64 << 10, maxSubscriptions: 4, maxConnections: 6 },
  onListen: (addr) => listening(addr.port),
});
const counts = {};
for (const q of queues) {
  // A channel each: checkQueue() of a missing queue closes its channel, as amqplib's.
  const ch = await server.connection.createChannel();
  ch.on('error', () => {});
  counts[q] = await ch.checkQueue(q).then((ok) => ok.messageCount, () => null);
  await ch.close().catch(() => {});
}
console.log(JSON.stringify({ listening: await listened, queues: counts }));
