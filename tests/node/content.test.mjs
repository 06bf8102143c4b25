// Message contents in a browser, where there is no Buffer: each is a Content (a Uint8Array that
// reads as text as Buffer does). Contents under 4 KiB are views into a shared 64 KiB pool, as
// Node's Buffer.allocUnsafe() carves small Buffers out of its pool; larger ones have a buffer of
// their own. Checked here: every content holds its message's bytes and nothing else, whatever
// its size and whether it is pooled; writing into one changes no other; slice() gives a copy with
// a buffer of its own, still a Content; after an app transfers a content's buffer away (detaching
// the pool), later contents come whole from a new pool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLANK, TEST_TIMEOUT, openPage, useServerAndBrowser } from './browser.mjs';

let server;
let browser;
useServerAndBrowser((s, b) => ([server, browser] = [s, b]));

/** In the page: publishes messages of `sizes` bytes (byte j of message i is (i * 7 + j) & 255), consumes them all. */
const roundTrip = (page, name, sizes) =>
  page.evaluate(
    async ({ name, sizes }) => {
      const { connect } = await import('/pkg/index.js');
      const conn = await connect({ name, storage: 'memory' });
      const ch = await conn.createChannel();
      const q = 'contents';
      await ch.assertQueue(q);
      const got = [];
      const all = new Promise((done) =>
        ch.consume(q, (m) => {
          got.push(m.content);
          ch.ack(m);
          if (got.length === sizes.length) done();
        }),
      );
      sizes.forEach((n, i) => ch.sendToQueue(q, Uint8Array.from({ length: n }, (_, j) => (i * 7 + j) & 255)));
      await all;
      const expected = (i, j) => (i * 7 + j) & 255;
      const wrong = [];
      got.forEach((c, i) => {
        const content = c instanceof Uint8Array && c.constructor !== Uint8Array && c.constructor === got[0].constructor;
        if (!content || c.length !== sizes[i]) wrong.push(`message ${i}: ${c.constructor.name} of ${c.length}`);
        for (let j = 0; j < c.length; j++) if (c[j] !== expected(i, j)) wrong.push(`message ${i} byte ${j}`);
      });
      // Writing into every content changes none of the others.
      got.forEach((c) => c.fill(0xee));
      got.forEach((c, i) => {
        if (c.some((b) => b !== 0xee)) wrong.push(`message ${i} changed by a write into another`);
      });
      const pooled = got.filter((c) => c.buffer.byteLength > c.length).length;
      const own = got.filter((c) => c.length >= 4096 && c.buffer.byteLength === c.length && c.byteOffset === 0).length;
      const copy = got[4].slice();
      copy[0] = 1;
      const original = got[4][0];
      // An app that transfers a content's buffer away detaches the pool (and the contents in it):
      // later contents come from a new one.
      const current = got[sizes.length - 1].buffer; // the pool the next contents would come from
      structuredClone(current, { transfer: [current] });
      const later = [5, 50, 500];
      for (const n of later) ch.sendToQueue(q, Uint8Array.from({ length: n }, (_, j) => j & 255));
      const deadline = Date.now() + 5000;
      while (got.length < sizes.length + later.length && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 5));
      if (got.length < sizes.length + later.length) wrong.push(`after the transfer, ${got.length - sizes.length} of ${later.length} messages came`);
      got.slice(sizes.length).forEach((c, i) => {
        if (c.length !== later[i] || c.some((b, j) => b !== (j & 255))) wrong.push(`after the transfer, message ${i}: ${c.length} bytes`);
      });
      const text = new (got[1].constructor)(new TextEncoder().encode('héllo')).toString();
      await conn.close();
      return {
        wrong,
        pooled,
        own,
        copy: { content: copy.constructor === got[0].constructor, own: copy.buffer.byteLength === copy.length, original },
        text,
      };
    },
    { name, sizes },
  );

test('content: small contents share a pool, large ones have their own buffer, each holds its bytes only', { timeout: TEST_TIMEOUT }, async (t) => {
  const context = await browser.browser.newContext();
  t.after(() => context.close().catch(() => {}));
  const { page, errors } = await openPage(context, server.url + BLANK);
  // Sizes around the pool's edges: empty, odd lengths (alignment), just under and at 4 KiB, more
  // than fit in what is left of a 64 KiB pool.
  const sizes = [0, 1, 7, 9, 100, 1023, 4095, 4096, 5000, 0, 3, ...Array.from({ length: 40 }, (_, i) => 3000 + i)];
  const r = await roundTrip(page, `content-${Date.now()}`, sizes);
  assert.deepEqual(r.wrong, []);
  assert.ok(r.pooled >= 40, `contents in a shared pool: ${r.pooled} of ${sizes.length}`);
  assert.equal(r.own, 2, 'the two contents of 4 KiB or more have a buffer of their own');
  assert.deepEqual(r.copy, { content: true, own: true, original: 0xee });
  assert.equal(r.text, 'héllo');
  assert.deepEqual(errors, []);
});
