// Durable queues in IndexedDB, end to end in headless Chromium: a tab crashing mid-publish, the
// origin's storage quota running out, and the browser restarting. Each test has its own origin
// (server on a free port) and its own profile directory, and checks the publisher-confirm
// contract: a confirmed message survives, an acked one (once flush() resolved) does not, none
// comes back twice, and a delivered-but-unacked one comes back with redelivered = true.
// API: the package's main module (/pkg/index.js), amqplib's: connect() loads the wasm, a confirm
// channel's sendToQueue takes a callback (err) => ..., get(queue) answers a message or false.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  BLANK,
  TEST_TIMEOUT,
  crashPage,
  launchBrowser,
  openPage,
  removeDir,
  setQuota,
  startServer,
  tempDir,
} from './browser.mjs';

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** A server, a persistent browser profile in a temp dir and a page on the blank test page. */
async function setup(t) {
  const server = await startServer();
  const dir = await tempDir('tabbit-storage-');
  const browser = await launchBrowser({ userDataDir: dir });
  t.after(async () => {
    await browser.close().catch(() => {});
    await server.close();
    await removeDir(dir);
  });
  return { server, dir, browser, url: server.url + BLANK };
}

/**
 * Opens `url` in `context` (openPage) and defines two helpers in the page:
 *   sent(ch, q, content, opts): a promise per message, that resolves on its confirm and rejects
 *     with the nack's Error;
 *   queueStats(conn, q): the queue's entry in conn.stats() ({ready, readyBytes, pagedOut,
 *     unacked, consumers, durable, ...}), or undefined when there is no such queue (unlike
 *     checkQueue, which would reject with 404 and close the channel).
 */
async function openTestPage(context, url) {
  const opened = await openPage(context, url);
  await opened.page.evaluate(() => {
    window.sent = (ch, q, content, opts) =>
      new Promise((ok, fail) => ch.sendToQueue(q, content, opts, (err) => (err ? fail(err) : ok())));
    window.queueStats = async (conn, q) => (await conn.stats()).queues.find((x) => x.name === q);
  });
  return opened;
}

/**
 * In a fresh page: opens broker `name` from IndexedDB, takes every ready message of `queue` with
 * get() (acking each), flushes, closes. Checks that recovery skipped no stored record and the
 * queue is there; answers what came back, in order: {count, messages: [{id, redelivered, text, length}]}.
 */
async function drain(context, url, name, queue) {
  const { page, errors } = await openTestPage(context, url);
  const result = await page.evaluate(
    async ({ name, queue }) => {
      const { connect } = await import('/pkg/index.js');
      const conn = await connect({ name, storage: 'indexeddb' });
      const ch = await conn.createConfirmChannel();
      const storage = conn.storage;
      const problems = Array.from(conn.problems ?? []); // stored records recovery skipped
      const count = (await queueStats(conn, queue))?.ready;
      const messages = [];
      if (count !== undefined) {
        for (let m; (m = await ch.get(queue)); ) {
          const text = new TextDecoder().decode(m.content.subarray(0, 32));
          messages.push({
            id: m.properties.messageId,
            redelivered: m.fields.redelivered,
            text,
            length: m.content.length,
          });
          ch.ack(m);
        }
        await conn.flush();
      }
      const after = (await queueStats(conn, queue))?.ready;
      await conn.close();
      return { storage, problems, count, messages, after };
    },
    { name, queue },
  );
  await page.close();
  assert.deepEqual(errors, [], 'errors in the page that reopened the broker');
  assert.equal(result.storage, 'indexeddb');
  assert.deepEqual(result.problems, [], 'stored records that recovery skipped');
  assert.notEqual(result.count, undefined, `queue '${queue}' was not recovered after reopening '${name}'`);
  assert.equal(result.messages.length, result.count, 'get() returned messageCount messages');
  assert.equal(result.after, 0, 'queue empty after draining');
  return result;
}

function duplicates(ids) {
  const seen = new Set();
  return ids.filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
}

test('storage: a tab that crashes mid-publish loses no confirmed message and resurrects no acked one', { timeout: TEST_TIMEOUT }, async (t) => {
  const TOTAL = 200_000; // far more than gets published before the crash: the crash is mid-publish
  const WINDOW = 50; // publishes in flight
  const BACKLOG = 2000; // confirms not yet taken in by Node before the publisher waits for Node
  const CRASH_AFTER = 5000; // confirms seen by Node before crashing: the queue is deeper than the
  // broker keeps in memory (2048 messages), so paging is part of it
  const { browser, url } = await setup(t);
  const name = `crash-${randomUUID()}`;

  // What Node knows for sure when it crashes the tab. The publishing loop in the page reports
  // each id whose confirm came ('confirmed'), in batches, one batch in flight at a time,
  // and waits while more than BACKLOG confirms are not yet taken in by Node, so that a slow Node
  // (a loaded CI machine) still crashes the tab mid-publish; a report lost in the crash only
  // makes the check weaker. Node itself runs the consume rounds, with
  // page.evaluate while the loop keeps publishing: each takes 5 messages with get(), acks 4,
  // keeps the 5th unacked, and returns after flush() resolved. The last round, right before the
  // crash, does not wait for flush(): its acks may or may not have reached storage.
  const seen = {
    confirmed: new Set(),
    got: new Set(), // delivered at least once before the crash
    acked: new Set(), // acked, then flush() resolved
    ackedUnflushed: new Set(), // acked in the last round, no flush()
    held: new Set(), // delivered, never acked, then flush() resolved
  };
  const nacked = [];
  const failures = [];
  let finished = false;

  const { page: a, errors: errorsA } = await openTestPage(browser.context, url);
  await a.exposeFunction('reportConfirmed', (ids) => {
    for (const id of ids) seen.confirmed.add(id);
  });
  await a.exposeFunction('reportEvent', (kind, detail) => {
    if (kind === 'nacked') nacked.push(detail);
    else if (kind === 'failed') failures.push(detail);
    else if (kind === 'finished') finished = true;
  });
  await a.evaluate(
    async ({ name, TOTAL, WINDOW, BACKLOG }) => {
      const { connect } = await import('/pkg/index.js');
      const conn = await connect({ name, storage: 'indexeddb' });
      const ch = await conn.createConfirmChannel();
      if (conn.storage !== 'indexeddb') throw new Error(`storage is ${conn.storage}`);
      await ch.assertQueue('jobs', { durable: true });
      let buffer = []; // confirmed ids not sent to Node yet
      let sending = null; // the batch on its way to Node (resolves when Node took it in)
      let backlog = 0; // confirmed ids that Node has not taken in yet
      const send = () => {
        if (sending || buffer.length === 0) return;
        const batch = buffer;
        buffer = [];
        sending = reportConfirmed(batch).then(() => {
          backlog -= batch.length;
          sending = null;
          send();
        });
      };
      const confirmed = (id) => {
        buffer.push(id);
        backlog++;
        send();
      };
      window.consumeRound = async (flush) => {
        const round = { got: [], acked: [], held: [] };
        for (let k = 0; k < 5; k++) {
          const m = await ch.get('jobs');
          if (!m) break;
          const id = m.properties.messageId;
          round.got.push(id);
          if (k === 4) {
            round.held.push(id);
          } else {
            ch.ack(m);
            round.acked.push(id);
          }
        }
        if (flush) await conn.flush();
        return round;
      };
      const filler = 'x'.repeat(100);
      const encoder = new TextEncoder();
      (async () => {
        const inflight = new Set();
        for (let i = 0; i < TOTAL; i++) {
          const id = String(i);
          const p = sent(ch, 'jobs', encoder.encode(`job ${id} ${filler}`), { persistent: true, messageId: id })
            .then(
              () => confirmed(id),
              (e) => reportEvent('nacked', `${id}: ${e?.message ?? e}`),
            );
          inflight.add(p);
          p.then(() => inflight.delete(p));
          while (inflight.size >= WINDOW) await Promise.race(inflight);
          while (backlog > BACKLOG) await sending;
        }
        await Promise.all(inflight);
        reportEvent('finished');
      })().catch((e) => reportEvent('failed', String(e?.stack ?? e)));
    },
    { name, TOTAL, WINDOW, BACKLOG },
  );

  // A flushed consume round every 200 confirms from 300 on; crash after CRASH_AFTER confirms and
  // at least 4 rounds (or after 30 s), right after one more round without flush().
  const deadline = Date.now() + 30_000;
  let nextRound = 300;
  let rounds = 0;
  while (
    !(seen.confirmed.size >= CRASH_AFTER && rounds >= 4) &&
    Date.now() < deadline &&
    failures.length === 0 &&
    !finished
  ) {
    if (seen.confirmed.size >= nextRound) {
      nextRound += 200;
      const round = await a.evaluate(() => consumeRound(true));
      for (const id of round.got) seen.got.add(id);
      for (const id of round.acked) seen.acked.add(id);
      for (const id of round.held) seen.held.add(id);
      rounds++;
    } else {
      await sleep(10);
    }
  }
  assert.deepEqual(failures, [], 'the publishing loop threw');
  assert.deepEqual(errorsA, [], 'errors in the publishing page before the crash');
  const last = await a.evaluate(() => consumeRound(false));
  for (const id of last.got) seen.got.add(id);
  for (const id of last.acked) seen.ackedUnflushed.add(id);
  await crashPage(a);
  await a.close().catch(() => {});
  const confirmed = new Set(seen.confirmed); // reports still in transit at the crash are dropped
  assert.ok(!finished, `all ${TOTAL} messages were published before the crash: not a mid-publish crash`);
  assert.deepEqual(nacked, [], 'publishes nacked before the crash');
  assert.ok(confirmed.size >= 300, `only ${confirmed.size} confirms within 30 s`);
  assert.ok(rounds >= 2, `only ${rounds} consume rounds within 30 s`);

  const { messages } = await drain(browser.context, url, name, 'jobs');
  const ids = messages.map((m) => m.id);
  const present = new Set(ids);
  const where = (id) => `${id} (${Object.keys(seen).filter((k) => seen[k].has(id)).join(', ')})`;
  const context =
    `; confirmed ${confirmed.size} (highest id ${Math.max(...[...confirmed].map(Number))}), ` +
    `recovered ${ids.length}: ${ids.slice(0, 5).join(' ')} ... ${ids.slice(-5).join(' ')}`;

  assert.deepEqual(duplicates(ids), [], `ids recovered more than once${context}`);
  const lost = [...confirmed].filter((id) => !present.has(id) && !seen.acked.has(id) && !seen.ackedUnflushed.has(id));
  assert.deepEqual(lost.map(where), [], `confirmed, never acked, but missing after the crash${context}`);
  const resurrected = [...seen.acked].filter((id) => present.has(id));
  assert.deepEqual(resurrected.map(where), [], `acked (and flushed) before the crash, but back after it${context}`);
  const heldBack = messages.filter((m) => seen.held.has(m.id));
  assert.equal(heldBack.length, seen.held.size, 'delivered-but-unacked messages recovered');
  const notRedelivered = heldBack.filter((m) => m.redelivered !== true).map((m) => m.id);
  assert.deepEqual(notRedelivered, [], 'delivered before the crash, unacked (flushed), but redelivered !== true');
  // Never delivered: unflagged, except within the delivery horizon. A stored message goes out for
  // the first time only once a stored horizon covers its position, and one the horizon covered may
  // have been delivered ("redelivered: may have been delivered before", as AMQP says): so flagged
  // never-delivered messages are the ones right after the last delivered, at most a lookahead
  // (4,096) of them, and every one beyond them is unflagged.
  const maxGot = Math.max(...[...seen.got].map(Number));
  const flaggedNever = messages.filter((m) => !seen.got.has(m.id) && m.redelivered !== false).map((m) => Number(m.id));
  const outside = flaggedNever.filter((id) => id <= maxGot || id > maxGot + 4096);
  assert.deepEqual(outside, [], `never delivered, flagged, and not within the horizon after ${maxGot}`);
  const covered = flaggedNever.length ? Math.max(...flaggedNever) : maxGot;
  const gaps = messages.filter((m) => Number(m.id) > maxGot && Number(m.id) < covered && m.redelivered !== true).map((m) => m.id);
  assert.deepEqual(gaps, [], 'the flagged never-delivered messages are not one run right after the last delivered');
  console.log(`mid-publish crash: ${flaggedNever.length} never-delivered messages flagged, within the horizon after ${maxGot}`);
  const bad = messages.filter((m) => !/^\d+$/.test(m.id) || Number(m.id) >= TOTAL || !m.text.startsWith(`job ${m.id} `));
  assert.deepEqual(bad, [], 'recovered messages with an unknown id or the wrong content');

  const unconfirmed = ids.filter((id) => !confirmed.has(id)).length;
  const backUnflushed = last.acked.filter((id) => present.has(id)).length;
  console.log(
    `crash mid-publish: confirmed ${confirmed.size}, acked ${seen.acked.size} + ${seen.ackedUnflushed.size} unflushed ` +
      `(${backUnflushed} of these back), held unacked ${seen.held.size}, recovered ${ids.length} ` +
      `(${unconfirmed} committed but not confirmed to Node yet), lost 0, duplicates 0`,
  );
});

test('storage: a full quota nacks persistent publishes with an Error, and the broker keeps serving', { timeout: TEST_TIMEOUT }, async (t) => {
  // Checked on Chromium 156: under a 1 MB override a fresh origin's IndexedDB refuses the 15th
  // 64 KB write, under 3 MB the 47th (QuotaExceededError); usage counts the whole origin.
  // connect() and the queue declaration must fit, so not much smaller than that.
  const QUOTA = 3 << 20;
  const SIZE = 64 * 1024;
  const MAX = 400; // 25 MB: the quota must bite long before
  const { server, browser, url } = await setup(t);
  const name = `quota-${randomUUID()}`;

  const { page, errors } = await openTestPage(browser.context, url);
  await setQuota(page, server.origin, QUOTA); // before the origin's first IndexedDB use: see setQuota
  await page.evaluate(async (name) => {
    const { connect } = await import('/pkg/index.js');
    window.conn = await connect({ name, storage: 'indexeddb' });
    window.ch = await conn.createConfirmChannel();
    await ch.assertQueue('big', { durable: true });
    // 64 KB of incompressible bytes that start with `${id}:`.
    window.body = (id) => {
      const b = new Uint8Array(64 * 1024);
      for (let off = 0; off < b.length; off += 65536) crypto.getRandomValues(b.subarray(off, off + 65536));
      b.set(new TextEncoder().encode(`${id}:`));
      return b;
    };
  }, name);

  const run = await page.evaluate(async (MAX) => {
    const confirmed = [];
    for (let i = 0; i < MAX; i++) {
      const id = `p${i}`;
      try {
        await sent(ch, 'big', body(id), { persistent: true, messageId: id });
        confirmed.push(id);
      } catch (e) {
        return {
          confirmed,
          rejected: id,
          error: { isError: e instanceof Error, message: String(e?.message ?? e), code: e?.code },
        };
      }
    }
    return { confirmed, rejected: null };
  }, MAX);
  assert.ok(run.rejected, `${MAX} persistent 64 KB publishes all confirmed under a ${QUOTA}-byte quota`);
  assert.ok(run.confirmed.length > 0, 'the quota left no room for even one message');
  assert.equal(run.error.isError, true, `the rejection is an Error: ${JSON.stringify(run.error)}`);
  assert.match(run.error.message, /full|quota/i, 'the rejection says storage is full');
  assert.equal(typeof run.error.code, 'number', `err.code is a number: ${JSON.stringify(run.error)}`);

  // The confirmed messages are all there (and only they); hand them back with nack(requeue).
  const held = await page.evaluate(async () => {
    const count = (await ch.checkQueue('big')).messageCount;
    const got = [];
    for (let m; (m = await ch.get('big')); ) got.push(m);
    const out = got.map((m) => ({
      id: m.properties.messageId,
      ok: m.content.length === 64 * 1024 && new TextDecoder().decode(m.content.subarray(0, 8)).startsWith(`${m.properties.messageId}:`),
    }));
    for (const m of got) ch.nack(m, false, true);
    return { count, out, after: (await ch.checkQueue('big')).messageCount };
  });
  const gettable = held.out.map((m) => m.id);
  assert.ok(
    !gettable.includes(run.rejected),
    `${run.rejected} was rejected ("${run.error.message}") but get() still delivers it: ` +
      'a publisher that publishes it again, as told, makes a duplicate',
  );
  assert.deepEqual(gettable, run.confirmed, 'gettable after the failure: exactly the confirmed messages, in order');
  assert.equal(held.count, run.confirmed.length);
  assert.ok(held.out.every((m) => m.ok), 'contents intact');
  assert.equal(held.after, run.confirmed.length, 'nack(requeue) put them back');

  // Transient messages to a non-durable queue do not touch storage: they still flow.
  const transient = await page.evaluate(async () => {
    await ch.assertQueue('mem', { durable: false });
    await sent(ch, 'mem', 'still here', { persistent: false, messageId: 't1' });
    const m = await ch.get('mem');
    ch.ack(m);
    return { text: new TextDecoder().decode(m.content), id: m.properties.messageId, next: await ch.get('mem') };
  });
  assert.deepEqual(transient, { text: 'still here', id: 't1', next: false }, 'get() on an empty queue: false');

  // Room again: persistent publishes confirm again.
  await setQuota(page, server.origin, null);
  const after = await page.evaluate(async () => {
    const ids = ['q0', 'q1', 'q2', 'q3', 'q4'];
    const results = [];
    for (const id of ids) {
      try {
        await sent(ch, 'big', body(id), { persistent: true, messageId: id });
        results.push([id, 'confirmed']);
      } catch (e) {
        results.push([id, `rejected: ${e?.message ?? e}`]);
      }
    }
    await conn.flush();
    await conn.close();
    return results;
  });
  assert.deepEqual(after, ['q0', 'q1', 'q2', 'q3', 'q4'].map((id) => [id, 'confirmed']), 'publishes after raising the quota');
  assert.deepEqual(errors, [], 'errors in the page');
  await page.close();

  // A new page finds exactly the confirmed persistent messages.
  const { messages } = await drain(browser.context, url, name, 'big');
  const expected = [...run.confirmed, 'q0', 'q1', 'q2', 'q3', 'q4'];
  assert.deepEqual(messages.map((m) => m.id), expected, 'after reopening: exactly the confirmed messages, in order');
  assert.ok(messages.every((m) => m.length === SIZE && m.text.startsWith(`${m.id}:`)), 'contents intact after reopening');
  const wrongFlag = messages.filter((m) => m.redelivered !== m.id.startsWith('p')).map((m) => `${m.id}: ${m.redelivered}`);
  // The p* were delivered (and requeued) while storage was full: RabbitMQ's redelivered = false
  // promises a message was never seen before, so the broker must record those deliveries anyway.
  assert.deepEqual(wrongFlag, [], 'redelivered is true for the requeued p* messages, false for the new q* ones');
  console.log(
    `quota ${QUOTA} bytes: ${run.confirmed.length} x 64 KB confirmed, ${run.rejected} rejected with ` +
      `"${run.error.message}" (code ${run.error.code}); after raising it 5 more confirmed; ${messages.length} recovered`,
  );
});

test('storage: confirmed messages survive a browser restart', { timeout: TEST_TIMEOUT }, async (t) => {
  const N = 100;
  const server = await startServer();
  const dir = await tempDir('tabbit-restart-');
  let browser = await launchBrowser({ userDataDir: dir });
  t.after(async () => {
    await browser.close().catch(() => {});
    await server.close();
    await removeDir(dir);
  });
  const url = server.url + BLANK;
  const name = `restart-${randomUUID()}`;

  const { page, errors } = await openTestPage(browser.context, url);
  const before = await page.evaluate(
    async ({ name, N }) => {
      const { connect } = await import('/pkg/index.js');
      const conn = await connect({ name, storage: 'indexeddb' });
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue('keep', { durable: true });
      const ids = Array.from({ length: N }, (_, i) => `r${i}`);
      await Promise.all(ids.map((id) => sent(ch, 'keep', `message ${id}`, { persistent: true, messageId: id })));
      // Deliver the first one and leave it unacked when the browser goes.
      const m = await ch.get('keep');
      await conn.flush();
      return { storage: conn.storage, held: m.properties.messageId, count: (await ch.checkQueue('keep')).messageCount };
    },
    { name, N },
  );
  assert.deepEqual(before, { storage: 'indexeddb', held: 'r0', count: N - 1 });
  assert.deepEqual(errors, []);
  await browser.close(); // the connection is never closed: the browser just goes away

  browser = await launchBrowser({ userDataDir: dir });
  const { messages } = await drain(browser.context, url, name, 'keep');
  assert.deepEqual(messages.map((m) => m.id), Array.from({ length: N }, (_, i) => `r${i}`), 'all back, in order');
  assert.ok(messages.every((m) => m.text === `message ${m.id}`), 'contents intact');
  const wrongFlag = messages.filter((m) => m.redelivered !== (m.id === 'r0')).map((m) => `${m.id}: ${m.redelivered}`);
  assert.deepEqual(wrongFlag, [], 'redelivered: true for r0 (delivered, unacked), false for the never-delivered rest');
  console.log(`browser restart: ${N} confirmed, ${messages.length} recovered, 1 redelivered`);
});
