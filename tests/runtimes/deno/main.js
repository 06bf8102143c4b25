// Runs the shared scenario (../scenario.mjs) through the npm package in Deno and prints one JSON
// line: {runtime, deno, result} or {runtime, error}. tests/node/runtime-deno.test.mjs runs it as
//   deno run --no-prompt --allow-read tests/runtimes/deno/main.js
// (read access only: connect() reads pkg/tabbit_bg.wasm beside the package's index.js).
import { connect, version } from '../../../pkg/index.js';
import { scenario } from '../scenario.mjs';

/** Closes a connection and opens the next one at once (the same turn), three times: each gets
 * back what it published. Deno 2.9.6 broke a BroadcastChannel opened as the last one closes. */
async function reconnect() {
  const got = [];
  for (let i = 0; i < 3; i++) {
    const conn = await connect({ name: 'reconnect', storage: 'memory' });
    const ch = await conn.createChannel();
    await ch.assertQueue('q');
    ch.sendToQueue('q', new TextEncoder().encode(`m${i}`));
    const m = await ch.get('q', { noAck: true });
    got.push(m && new TextDecoder().decode(m.content));
    await conn.close();
  }
  return got;
}

try {
  const result = await scenario(connect);
  const reconnected = await reconnect();
  console.log(JSON.stringify({ runtime: 'deno', deno: Deno.version.deno, version: await version(), result, reconnected }));
} catch (e) {
  console.log(JSON.stringify({ runtime: 'deno', error: String(e?.stack ?? e) }));
  Deno.exit(1);
}
