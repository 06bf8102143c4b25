// tabbit in Deno on Deno KV (js/storage/deno-kv.js, shipped as 'tabbit/storage/deno-kv'), in the
// real runtime (npm package `deno`, pinned in tests/package.json), with a KV file in a temporary
// directory: deno may read pkg/, the adapter and that directory, and write only the directory.
//   - a publisher on a confirm channel, SIGKILLed mid-stream four times (restarted in between), by
//     the test and by itself right after printing a confirm: every confirmed message is in the
//     queue exactly once, in order;
//   - messages delivered and not acked when the process is SIGKILLed come back redelivered, acked
//     ones (after conn.flush()) do not, and two messages of 3 MiB come back whole;
//   - the adapter alone (tests/runtimes/deno/kv-adapter.js): Deno KV's limits as this deno
//     enforces them, a batch over every limit of one commit, failures at every commit of a batch,
//     two brokers on one prefix, bad input.
// The adapter is pkg/storage/deno-kv.js when the package exports it (scripts/build-pkg), else
// js/storage/deno-kv.js (said in a diagnostic); the last test checks the package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, RUNTIMES, assertExported, lastJson, needBin, needPackage, removeDir, run, start, tempDir } from '../runtimes/helpers.mjs';
import { adapterModule, denoKvRunner } from '../runtimes/deno/kv-run.mjs';

const TIMEOUT = 120_000;
const PROGRAMS = join(RUNTIMES, 'deno');

/** A temp dir for a program; `args(program, ...rest)` to run one of tests/runtimes/deno/. */
async function setup(t) {
  await needPackage();
  const bin = await needBin('deno');
  const dir = await tempDir('tabbit-edge-deno-');
  t.after(() => removeDir(dir));
  const adapter = adapterModule();
  if (!adapter.shipped) t.diagnostic('pkg/ does not ship storage/deno-kv yet (scripts/build-pkg): testing js/storage/deno-kv.js');
  const runner = await denoKvRunner(dir, adapter.path);
  return { bin, dir, env: runner.env, args: (program, ...rest) => runner.args(join(PROGRAMS, program), ...rest) };
}

/** Resolves once `p`'s stdout satisfies `ready` (polled), rejects if it exits first. */
async function until(p, ready, what) {
  let exited = false;
  p.exited.then(() => (exited = true));
  for (;;) {
    if (ready(p.stdout())) return;
    if (exited) throw new Error(`deno exited before ${what}:\n${p.output().slice(-4000)}`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

/** SIGKILLs `p`'s process group (no chance to flush or close anything) and waits for it to go. */
async function sigkill(p) {
  process.kill(-p.child.pid, 'SIGKILL');
  const { signal } = await p.exited;
  assert.equal(signal, 'SIGKILL');
}

async function readQueue({ bin, dir, args, env }, t) {
  const out = lastJson(await run(bin, args('kv-broker.js', 'read', dir), { t, cwd: ROOT, env, timeoutMs: 60_000 }));
  assert.deepEqual(out.problems, [], 'recovery reported no problems');
  return out.messages;
}

test('edge deno: every confirmed message survives SIGKILL mid-stream, exactly once', { timeout: TIMEOUT }, async (t) => {
  const s = await setup(t);
  const confirmed = [];
  // Four lives, each starting its ids afresh, killed after a different number of confirms: by the
  // test (when it sees them), or by the publisher itself at once after printing that confirm.
  const lives = [{ after: 300 }, { selfAt: 1 }, { selfAt: 777 }, { after: 2_500 }];
  for (const [life, { after, selfAt }] of lives.entries()) {
    const from = String(life * 1_000_000);
    const args = s.args('kv-broker.js', 'publish', s.dir, from, ...(selfAt ? [String(selfAt)] : []));
    const p = start(s.bin, args, { t, cwd: ROOT, env: s.env, timeoutMs: 90_000 });
    if (selfAt) {
      const { signal } = await p.exited;
      assert.equal(signal, 'SIGKILL', `the publisher killed itself:\n${p.output().slice(-2000)}`);
    } else {
      const count = (out) => out.split('\n').filter((l) => l.startsWith('confirmed ')).length;
      await until(p, (out) => count(out) >= after, `${after} confirms`);
      await sigkill(p);
    }
    const lines = p.stdout().split('\n');
    assert.ok(!lines.some((l) => l.startsWith('nacked')), `no publish was refused:\n${p.output().slice(-2000)}`);
    const ids = lines.filter((l) => l.startsWith('confirmed ')).map((l) => l.slice('confirmed '.length));
    t.diagnostic(`life ${life + 1}: ${ids.length} confirmed when killed`);
    confirmed.push(...ids);
  }
  const messages = await readQueue(s, t);
  assert.ok(messages.every((m) => m.intact), 'every body is the one published');
  const ids = messages.map((m) => m.id);
  const seen = new Map();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  const duplicated = [...seen].filter(([, n]) => n > 1);
  assert.deepEqual(duplicated, [], 'no message is in the queue twice');
  const missing = confirmed.filter((id) => !seen.has(id));
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} confirmed messages are missing`);
  // In order: each life's messages by number, lives one after another.
  const num = (id) => Number(id.slice(1));
  assert.ok(ids.every((id, i) => /^m\d+$/.test(id) && (i === 0 || num(id) > num(ids[i - 1]))), 'the queue keeps publish order');
  t.diagnostic(`${confirmed.length} confirmed, ${ids.length} in the queue (${ids.length - confirmed.length} unconfirmed ones made it)`);
});

test('edge deno: unacked messages come back redelivered after SIGKILL, flushed acks stay acked', { timeout: TIMEOUT }, async (t) => {
  const s = await setup(t);
  const p = start(s.bin, s.args('kv-broker.js', 'hold', s.dir), { t, cwd: ROOT, env: s.env, timeoutMs: 60_000 });
  await until(p, (out) => out.includes('held '), 'the messages were held');
  await sigkill(p);
  const held = JSON.parse(p.stdout().split('\n').find((l) => l.startsWith('held ')).slice('held '.length));
  assert.deepEqual(held, Array.from({ length: 10 }, (_, i) => `m${i}`));
  const messages = await readQueue(s, t);
  const big = (id) => (id === 'm7' || id === 'm12' ? 3 << 20 : 100);
  assert.deepEqual(messages, [
    ...Array.from({ length: 5 }, (_, i) => ({ id: `m${i + 5}`, redelivered: true })),
    ...Array.from({ length: 10 }, (_, i) => ({ id: `m${i + 10}`, redelivered: false })),
  ].map((m) => ({ ...m, bytes: big(m.id), intact: true })));
});

test('edge deno: the adapter keeps within Deno KV limits and each batch atomic', { timeout: TIMEOUT }, async (t) => {
  const s = await setup(t);
  const out = lastJson(await run(s.bin, s.args('kv-adapter.js', s.dir), { t, cwd: ROOT, env: s.env, timeoutMs: 100_000 }));
  assert.equal(out.error, undefined, out.error);
  t.diagnostic(`deno ${out.deno}: ${JSON.stringify(out.partWay)}`);
  // Deno 2.x's limits (ext/kv/config.rs), which the program found this deno enforcing exactly.
  assert.deepEqual(out.limits, { valueBytes: 65_536, keyBytes: 2_048, mutations: 1_000, checks: 100, commitBytes: 819_200, commitKeyBytes: 81_920 });
  assert.equal(out.bigBatch.records, 3004);
  assert.ok(out.partWay.rejected >= 2 && out.partWay.resolved >= 2, `failures before and after the commit point: ${JSON.stringify(out.partWay)}`);
});

test("edge deno: the package ships 'tabbit/storage/deno-kv' with its types", async () => {
  await needPackage();
  await assertExported('storage/deno-kv');
});
