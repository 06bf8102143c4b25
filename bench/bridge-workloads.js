// The in-page workloads of scripts/bench's row (q): messages from a tab to a real RabbitMQ over
// Web-STOMP, confirmed by RabbitMQ (STOMP receipts), both ways measured in the same page:
//
//   rawStomp({ url, n, size, window })   the platform: the page's own WebSocket, SEND frames with a
//                                        receipt each, `window` unconfirmed at most → {ms}
//   bridged({ url, n, size, window })   tabbit: persistent publishes with confirms to a bridged
//                                        exchange; the bridge's outbox sends them with receipts
//                                        (its prefetch `window`) → {ms} until RabbitMQ confirmed all
// Both send to /queue/<one per run> (RabbitMQ declares it durable), persistent, with 100 B bodies.

let tabbit;

/** Imports the package's main module `pkg` (and loads its wasm). */
export async function load(pkg = '/pkg/index.js') {
  tabbit = await import(pkg);
  return { version: await tabbit.version(), userAgent: navigator.userAgent };
}

const enc = new TextEncoder();
let unique = 0;
const queueName = (what) => `bench-${what}-${Date.now()}-${++unique}`;

/** A STOMP frame's bytes (headers need no escaping here). */
function frame(command, headers, body = new Uint8Array()) {
  const head = enc.encode(`${command}\n${headers.map(([k, v]) => `${k}:${v}\n`).join('')}${body.length ? `content-length:${body.length}\n` : ''}\n`);
  const out = new Uint8Array(head.length + body.length + 1);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** Opens a STOMP session; resolves with {ws, onFrame(cb)} once CONNECTED. */
function stompSession(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v12.stomp']);
    ws.binaryType = 'arraybuffer';
    let handler = null;
    const dec = new TextDecoder();
    let buffer = '';
    ws.onopen = () => ws.send(frame('CONNECT', [['accept-version', '1.2'], ['host', '/'], ['login', 'guest'], ['passcode', 'guest']]));
    ws.onerror = () => reject(new Error(`could not connect to ${url}`));
    ws.onmessage = (e) => {
      buffer += typeof e.data === 'string' ? e.data : dec.decode(e.data);
      let nul;
      while ((nul = buffer.indexOf('\0')) >= 0) {
        const text = buffer.slice(0, nul).replace(/^[\r\n]+/, '');
        buffer = buffer.slice(nul + 1);
        const command = text.slice(0, text.indexOf('\n'));
        if (command === 'CONNECTED') resolve({ ws, onFrame: (cb) => (handler = cb) });
        else if (command === 'ERROR') reject(new Error(text));
        else handler?.(command, text);
      }
    };
  });
}

/** The platform baseline: the page's own WebSocket, n SENDs with receipts, `window` in flight. */
export async function rawStomp({ url, n, size, window }) {
  const { ws, onFrame } = await stompSession(url);
  const dest = `/queue/${queueName('raw')}`;
  const body = new Uint8Array(size).fill(120);
  let sent = 0;
  let confirmed = 0;
  const t0 = performance.now();
  await new Promise((done) => {
    const pump = () => {
      while (sent < n && sent - confirmed < window) {
        sent += 1;
        ws.send(frame('SEND', [['destination', dest], ['receipt', `r${sent}`], ['persistent', 'true']], body));
      }
    };
    onFrame((command) => {
      if (command !== 'RECEIPT') return;
      confirmed += 1;
      if (confirmed === n) done();
      else pump();
    });
    pump();
  });
  const ms = performance.now() - t0;
  ws.close();
  return { ms };
}

/** tabbit: publish with confirms to a bridged exchange; done when the bridge saw all n confirmed by RabbitMQ. */
export async function bridged({ url, n, size, window }) {
  const name = queueName('broker');
  const conn = await tabbit.connect({ name, storage: 'indexeddb' });
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange('out', 'fanout', { durable: true });
  const bridge = await conn.bridge({ url, prefetch: window, outbound: [{ exchange: 'out', to: `/queue/${queueName('bridged')}` }] });
  const deadline = Date.now() + 10_000;
  while (bridge.status?.state !== 'connected') {
    if (Date.now() > deadline) throw new Error(`the bridge did not connect: ${JSON.stringify(bridge.status)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const body = new Uint8Array(size).fill(120);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    ch.publish('out', '', body, { persistent: true });
    if (i % 1000 === 999) await ch.waitForConfirms();
  }
  await ch.waitForConfirms();
  // The bridge tells its status within 25 ms of the outbox draining (js/bridge.js); each
  // read builds every bridge's status, so a read per 5 ms, not per 1, to leave the page to the bridge.
  while (bridge.status.outbound.confirmed < n) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  bridge.close();
  await conn.close();
  indexedDB.deleteDatabase(`tabbit:${name}`);
  return { ms };
}
