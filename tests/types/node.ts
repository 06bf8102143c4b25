// The package's types in a Node project without the DOM lib (tests/types/tsconfig.node.json:
// lib es2022 only, strict), type-checked (never run) by tests/node/types.test.mjs: index.d.ts
// and callback_api.d.ts must name no DOM type (RequestInfo, BufferSource, Response,
// WebAssembly, AbortSignal), and the platform's objects must still fit where they are taken.
import { connect, Emitter, type AbortSignalLike, type ConsumeMessage, type StorageAdapter, type WasmSource } from 'tabbit';
import amqp from 'tabbit/callback_api';

/** What a Node program has in place of the DOM's (no @types/node here: declared as fs and Buffer give them). */
declare function readFile(path: URL | string): Promise<Uint8Array>;
declare const URL: { new (href: string): { readonly href: string } };
type URL = InstanceType<typeof URL>;
declare const console: { log(...args: unknown[]): void };

/** An adapter over a Map, as a Node program keeps records (in a file, a database). */
const records = new Map<string, [string, string | number, Uint8Array]>();
const storage: StorageAdapter = {
  load: () => [...records.values()],
  async write(writes) {
    for (const { store, key, value } of writes) {
      if (value === undefined) records.delete(`${store}/${key}`);
      else records.set(`${store}/${key}`, [store, key, value.slice()]);
    }
  },
};

/** A signal as Node's AbortController gives one: it fits the structural type. */
function signal(): AbortSignalLike {
  const listeners: (() => void)[] = [];
  return {
    aborted: false,
    addEventListener: (_type, fn) => void listeners.push(fn),
    removeEventListener: (_type, fn) => void listeners.splice(listeners.indexOf(fn), 1),
  };
}

export async function main(): Promise<void> {
  const wasm: WasmSource = await readFile(new URL('file:///app/node_modules/tabbit/tabbit_bg.wasm'));
  const conn = await connect({ name: 'jobs', storage, wasm });
  await connect({ wasm: new URL('https://example.invalid/tabbit_bg.wasm') });
  await connect({ wasm: new ArrayBuffer(8) });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('jobs', { durable: true });
  ch.sendToQueue('jobs', { id: 1n }, { structured: true, persistent: true }, (err) => err && console.log(err.code));
  await ch.waitForConfirms();
  await ch.consume<{ id: bigint }>(
    'jobs',
    (msg: ConsumeMessage<{ id: bigint }> | null) => {
      if (msg?.value) console.log(msg.value.id + 1n, msg.content.toString('hex'));
      if (msg) ch.ack(msg);
    },
    { structured: true, signal: signal() },
  );
  class Progress extends Emitter<{ tick: (n: number) => void }> {}
  new Progress().on('tick', (n) => console.log(n));
  amqp.connect({ name: 'cb', storage: 'memory' }, (err, c) => {
    if (err) throw err;
    c?.createChannel((e, cbch) => e ?? cbch?.get<{ id: bigint }>('jobs', { structured: true }, (_, m) => m && m.value?.id));
  });
  // @ts-expect-error: a number is no wasm source
  await connect({ wasm: 42 });
  // @ts-expect-error: a signal needs addEventListener
  await ch.consume('jobs', () => {}, { signal: { aborted: false } });
  await conn.close();
}
