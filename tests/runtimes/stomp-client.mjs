// A Web-STOMP client for the tests and benches of tabbit's STOMP endpoints (and RabbitMQ's):
// the npm package @stomp/stompjs (pinned in tests/package.json) over the npm package `ws`
// (Node 20 has no global WebSocket without --experimental-websocket).
//
//   const c = stompClient('ws://127.0.0.1:8787/ws', { login: 'alice', passcode: 'secret' });
//   await c.connected;
//   await publish(c.client, '/queue/q', 'hello', { persistent: 'true' });   // resolves on its RECEIPT
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Resolves once `cond()` holds (polled), or rejects after `ms` saying `what`. */
export async function until(cond, what, ms = 60_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * A stompjs client of `url` (STOMP 1.2, offering the subprotocols stompjs offers). `connected`
 * resolves with the CONNECTED frame and rejects on an ERROR or a close before it; `errors`
 * collects ERROR frames; `closed` resolves when the socket closes. No reconnects, no heart-beats
 * unless `heartBeatMs` says.
 */
export function stompClient(url, { login = 'alice', passcode = 'secret', heartBeatMs = 0 } = {}) {
  const errors = [];
  let closedNow;
  const closed = new Promise((ok) => (closedNow = ok));
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    connectHeaders: login === null ? {} : { login, passcode },
    reconnectDelay: 0,
    heartbeatIncoming: heartBeatMs,
    heartbeatOutgoing: heartBeatMs,
  });
  let isClosed = false;
  const connected = new Promise((ok, fail) => {
    client.onConnect = ok;
    client.onStompError = (f) => {
      errors.push(f);
      fail(new Error(`ERROR ${f.headers.message}: ${f.body}`));
    };
    client.onWebSocketClose = (e) => {
      isClosed = true;
      closedNow(e);
      fail(new Error('the socket closed before CONNECTED'));
    };
  });
  connected.catch(() => {});
  client.activate();
  return { client, connected, errors, closed, isClosed: () => isClosed, stop: () => client.deactivate() };
}

let receipts = 0;
/** Publishes with a receipt; resolves when the RECEIPT comes. */
export function publish(client, destination, body, headers = {}) {
  const receipt = `r${++receipts}`;
  const got = new Promise((ok) => client.watchForReceipt(receipt, ok));
  client.publish({ destination, body, headers: { ...headers, receipt } });
  return got;
}
