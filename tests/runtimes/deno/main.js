// Runs the shared scenario (../scenario.mjs) through the npm package in Deno and prints one JSON
// line: {runtime, deno, result} or {runtime, error}. tests/node/runtime-deno.test.mjs runs it as
//   deno run --no-prompt --allow-read tests/runtimes/deno/main.js
// (read access only: connect() reads pkg/tabbit_bg.wasm beside the package's index.js).
import { connect, version } from '../../../pkg/index.js';
import { scenario } from '../scenario.mjs';

try {
  const result = await scenario(connect);
  console.log(JSON.stringify({ runtime: 'deno', deno: Deno.version.deno, version: await version(), result }));
} catch (e) {
  console.log(JSON.stringify({ runtime: 'deno', error: String(e?.stack ?? e) }));
  Deno.exit(1);
}
