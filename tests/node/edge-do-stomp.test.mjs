// Web-STOMP on the package's Durable Object class, TabbitBroker ('tabbit/durable-object', with
// `stompPath`), in the real workerd runtime (npm package `workerd`), the object SQLite-backed on
// local disk, its sockets hibernatable WebSockets; the worker is
// tests/runtimes/workerd/do-stomp-worker.js, the client @stomp/stompjs (tests/runtimes/stomp-client.mjs).
//
// - stompjs publishes persistently with receipts, subscribes with client-individual acks and
//   prefetch-count 3 (three unacked at most), acks; the object is then evicted from memory with
//   its sockets open (workerd:unsafe's evict(), as the runtime may do at any time; the class is
//   LeanBroker, `keepAliveWhileUnacked: false`, which does not keep itself in memory): the
//   next frame wakes it, and both sessions are made again from their sockets' attachments
//   (login, subscription, ack mode, prefetch): the unacked messages come again on the same
//   socket with redelivered:true and new ack ids, acks by those ids work, and an ACK of an old id
//   gets an ERROR "Message not found" that says why;
// - workerd SIGKILLed with receipted messages queued and three delivered but not acked, then
//   restarted on the same disk: the client connects again, and every receipted message not acked
//   is delivered exactly once, the three with redelivered:true;
// - a consumer slower than the runtime's idle window (it holds an unacked message ~25 s without a
//   frame; workerd hibernates an idle object after 10 s: src/workerd/server/server.c++,
//   handleShutdown): the object stays in memory while the delivery is unacked, so the late ACK
//   works and nothing comes again; once nothing is unacked, the object hibernates as before (its
//   broker's stats name another host), its socket still open;
// - wrong or no credentials get an ERROR frame, and the broker serves another client after;
// - heart-beats are answered by the runtime: CONNECTED says the server sends as often as the
//   client does, and a client that wants heart-beats every 500 ms stays connected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { doStompServer, kill9 } from '../runtimes/workerd/do-stomp-run.mjs';
import { publish, sleep, stompClient, until } from '../runtimes/stomp-client.mjs';

const TIMEOUT = 180_000;

/** The queue's counts from the broker's stats. */
async function queue(url, name) {
  const stats = await (await fetch(`${url}/stats`)).json();
  return stats.queues.find((q) => q.name === name);
}

/**
 * A subscription of `c` to `destination` with client-individual acks and `prefetch`: its
 * MESSAGE frames in `got`, none acked (ack them by hand).
 */
function subscribeHeld(c, destination, prefetch, id = 'jobs') {
  const got = [];
  const sub = c.client.subscribe(destination, (m) => got.push(m), { id, ack: 'client-individual', 'prefetch-count': String(prefetch) });
  return { got, sub };
}

test('edge DO stomp: stompjs with receipts, client-individual acks and prefetch; evicted with sockets open, sessions come back and unacked messages are redelivered', { timeout: TIMEOUT }, async (t) => {
  const env = await doStompServer(t);
  const { proc } = await env.serve();
  // LeanBroker (keepAliveWhileUnacked: false): evict() can take it while deliveries are unacked,
  // as a deploy or the runtime's own eviction takes any object.
  const url = `${env.url}/lean`;
  const ws = `${url.replace('http', 'ws')}/ws`;
  const a = stompClient(ws);
  await a.connected;
  const bodies = Array.from({ length: 10 }, (_, i) => `job ${i}`);
  await Promise.all(bodies.map((b) => publish(a.client, '/queue/jobs', b, { persistent: 'true' })));
  assert.equal((await queue(url, 'jobs')).ready, 10);

  const b = stompClient(ws, { login: 'bob', passcode: 'hunter2' });
  const connected = await b.connected;
  assert.equal(connected.headers.version, '1.2');
  const { got } = subscribeHeld(b, '/queue/jobs', 3);
  await until(() => got.length === 3, 'three deliveries');
  // A round trip on b's socket: nothing more came meanwhile (prefetch-count 3).
  await publish(b.client, '/queue/fence', 'fence');
  assert.equal(got.length, 3, 'no more than prefetch-count unacked');
  got[0].ack();
  await until(() => got.length === 4, 'a fourth once one is acked');
  await publish(b.client, '/queue/fence', 'fence');
  assert.equal(got.length, 4);
  assert.deepEqual(got.map((m) => m.body), bodies.slice(0, 4));
  assert.ok(got.every((m) => m.headers.redelivered === 'false'));
  const old = got.slice(1); // delivered, not acked

  // Evicted, its sockets kept (hibernated): nothing reaches the clients.
  const r = await fetch(`${url}/evict`, { method: 'POST' });
  assert.equal(r.status, 200, await r.text());
  await sleep(300);
  assert.equal(b.isClosed(), false, "bob's socket stays open");
  assert.equal(a.isClosed(), false, "alice's socket stays open");
  // The next frame wakes the object: bob's session is made again (as bob, subscribed with
  // client-individual acks and prefetch 3), and the three it had not acked come again.
  await publish(b.client, '/queue/fence', 'wake');
  await until(() => got.length === 7, 'the three unacked messages again');
  const again = got.slice(4);
  assert.deepEqual(again.map((m) => m.body), bodies.slice(1, 4));
  for (const m of again) {
    assert.equal(m.headers.redelivered, 'true');
    assert.equal(m.headers.subscription, 'jobs');
    assert.notEqual(m.headers.ack, old[again.indexOf(m)].headers.ack, 'a new ack id');
  }
  await publish(b.client, '/queue/fence', 'fence');
  assert.equal(got.length, 7, 'still prefetch-count 3 after the restore');
  // Acks by the new ids; the rest comes.
  for (const m of again) m.ack();
  await until(() => got.length === 10, 'three more');
  for (const m of got.slice(7)) m.ack();
  await until(() => got.length === 13, 'the last three');
  for (const m of got.slice(10)) m.ack();
  assert.deepEqual(got.slice(4).map((m) => m.body), bodies.slice(1));
  // Alice's session came back too: she publishes as before.
  await publish(a.client, '/queue/jobs', 'after', { persistent: 'true' });
  await until(() => got.length === 14, 'alice’s message');
  got[13].ack();
  await publish(b.client, '/queue/fence', 'fence');
  assert.equal((await queue(url, 'jobs')).unacked, 0);

  // An ACK of a message id from before the eviction: an ERROR that says what happened.
  old[0].ack();
  await b.closed;
  assert.equal(b.errors.length, 1);
  assert.equal(b.errors[0].headers.message, 'Message not found');
  assert.match(b.errors[0].body, /before the broker restarted/);
  assert.match(b.errors[0].body, /redelivered:true/);
  t.diagnostic(`an old ack id: ERROR ${b.errors[0].headers.message}: ${b.errors[0].body}`);

  // Another client is served.
  const c = stompClient(ws);
  await c.connected;
  const seen = [];
  c.client.subscribe('/queue/alive', (m) => seen.push(m.body));
  await publish(c.client, '/queue/alive', 'alive');
  await until(() => seen.length === 1, 'a message');
  await c.stop();
  await a.stop();
  await proc.kill();
  assert.doesNotMatch(proc.output(), /uncaught/i);
});

test('edge DO stomp: receipted messages survive SIGKILL of workerd; unacked ones come back redelivered', { timeout: TIMEOUT }, async (t) => {
  const env = await doStompServer(t);
  let { ws, proc } = await env.serve();
  const a = stompClient(ws);
  await a.connected;
  const bodies = Array.from({ length: 30 }, (_, i) => `m${i}`);
  // Receipted in batches of ten in flight.
  for (let i = 0; i < bodies.length; i += 10) {
    await Promise.all(bodies.slice(i, i + 10).map((b) => publish(a.client, '/queue/orders', b, { persistent: 'true' })));
  }
  const { got } = subscribeHeld(a, '/queue/orders', 5, 'orders');
  await until(() => got.length === 5, 'five deliveries');
  // Two acked, their acks stored: an ACK with a receipt, then a persistent SEND's receipt (stored after them).
  for (const m of got.slice(0, 2)) m.ack({ receipt: `ack-${m.body}` });
  await until(() => got.length === 7, 'two more');
  await publish(a.client, '/queue/fence', 'fence', { persistent: 'true' });
  const acked = got.slice(0, 2).map((m) => m.body);
  const held = got.slice(2, 7).map((m) => m.body);
  await kill9(proc);
  await a.closed;

  ({ ws, proc } = await env.serve());
  const b = stompClient(ws);
  await b.connected;
  const again = [];
  b.client.subscribe('/queue/orders', (m) => again.push(m), { ack: 'auto' });
  await until(() => again.length === bodies.length - acked.length, 'every receipted message not acked');
  await publish(b.client, '/queue/fence', 'fence');
  const names = again.map((m) => m.body);
  assert.equal(new Set(names).size, names.length, 'each exactly once');
  assert.deepEqual([...names].sort(), bodies.filter((x) => !acked.includes(x)).sort());
  // Each delivered but not acked comes back flagged. (So may a few never delivered: the broker
  // flags what is under the delivery horizon it stored ahead of its deliveries, as RabbitMQ's
  // redelivered means "may have been delivered before": src/core/broker/mod.rs, BrokerConfig.)
  for (const m of again.filter((x) => held.includes(x.body))) assert.equal(m.headers.redelivered, 'true', m.body);
  const flagged = again.filter((m) => m.headers.redelivered === 'true').length;
  t.diagnostic(`after SIGKILL: ${names.length} delivered, ${flagged} flagged redelivered (${held.length} were held unacked)`);
  await b.stop();
  await proc.kill();
});

test('edge DO stomp: wrong or no credentials get an ERROR and the broker serves on; heart-beats are the runtime’s', { timeout: TIMEOUT }, async (t) => {
  const env = await doStompServer(t);
  const { ws, proc } = await env.serve();
  const wrong = stompClient(ws, { passcode: 'nope' });
  await assert.rejects(wrong.connected, /Bad CONNECT/);
  await wrong.closed;
  assert.match(wrong.errors[0].body, /Access refused for user 'alice'/);
  const none = stompClient(ws, { login: null });
  await assert.rejects(none.connected, /Bad CONNECT/);
  assert.match(none.errors[0].body, /no anonymous connections/);

  // The client sends a heart-beat every 500 ms and wants one as often: the runtime answers each.
  const beating = stompClient(ws, { heartBeatMs: 500 });
  const connected = await beating.connected;
  assert.equal(connected.headers['heart-beat'], '500,500');
  const seen = [];
  beating.client.subscribe('/queue/beat', (m) => seen.push(m.body));
  await sleep(3_000);
  assert.equal(beating.isClosed(), false, 'the client saw heart-beats');
  await publish(beating.client, '/queue/beat', 'still here');
  await until(() => seen.length === 1, 'a message');
  await beating.stop();
  await proc.kill();
  assert.doesNotMatch(proc.output(), /uncaught/i);
});

/** Longer than workerd's idle window (10 s) plus the endpoint's CONNECT timer (10 s) that keeps a new session's object awake. */
const IDLE_MS = 25_000;

test('edge DO stomp: a consumer slower than the idle window keeps its delivery; the object hibernates once nothing is unacked', { timeout: TIMEOUT }, async (t) => {
  const env = await doStompServer(t);
  const { url, ws, proc } = await env.serve();
  const host = async () => (await (await fetch(`${url}/stats`)).json()).host;
  const c = stompClient(ws);
  await c.connected;
  // A round trip on c's socket (a persistent SEND: its RECEIPT comes after a commit), or the ERROR that closed it.
  const fence = () =>
    Promise.race([
      publish(c.client, '/queue/fence', 'fence', { persistent: 'true' }),
      c.closed.then(() => assert.fail(`the connection closed: ${c.errors.map((e) => `ERROR ${e.headers.message}: ${e.body}`).join('; ')}`)),
    ]);
  for (const b of ['one', 'two']) await publish(c.client, '/queue/slow', b, { persistent: 'true' });
  const { got } = subscribeHeld(c, '/queue/slow', 1, 'slow');
  await until(() => got.length === 1, 'the first delivery');
  const before = await host();

  // Silent for longer than the idle window, the delivery unacked.
  await sleep(IDLE_MS);
  assert.equal(got.length, 1, 'nothing came meanwhile');
  got[0].ack();
  // 'two' is delivered once the ACK is in (and its delivery horizon stored: src/store/log.rs).
  await until(() => got.length >= 2 || c.isClosed(), 'the second message once the first is acked');
  await fence();
  assert.deepEqual(c.errors, [], 'the late ACK is taken');
  assert.deepEqual(got.map((m) => [m.body, m.headers.redelivered]), [['one', 'false'], ['two', 'false']], 'nothing delivered again');
  assert.equal(await host(), before, 'the object stayed in memory');
  got[1].ack();
  await fence();
  const q = await queue(url, 'slow');
  assert.deepEqual([q.ready, q.unacked], [0, 0]);

  // Nothing unacked: the same silence lets the object hibernate (so the wait above was long
  // enough to lose the delivery had it not kept itself in memory). Its socket stays open.
  const awake = await host();
  await sleep(IDLE_MS);
  assert.notEqual(await host(), awake, 'hibernated while nothing was unacked');
  assert.equal(c.isClosed(), false);
  await publish(c.client, '/queue/slow', 'three', { persistent: 'true' });
  await until(() => got.length === 3, 'a delivery after the hibernation');
  assert.equal(got[2].body, 'three');
  got[2].ack();
  await fence();
  await c.stop();
  await proc.kill();
  assert.doesNotMatch(proc.output(), /uncaught/i);
});
