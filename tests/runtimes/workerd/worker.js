// A Cloudflare Worker (ES module syntax) that runs the shared scenario through the npm package.
// The wasm comes in as a module import (a WebAssembly.Module: workerd compiles it when it loads
// the worker, as Workers may not compile wasm from bytes at run time) and goes to connect() as
// its `wasm` option, so the package neither fetches it nor reads import.meta.url.
//   GET /scenario  → 200 {ok: true, result} or 500 {ok: false, error}
// config.mjs writes the workerd config that serves it; tests/node/runtime-workerd.test.mjs runs it.
import { connect, version } from './pkg/index.js';
import wasm from './pkg/tabbit_bg.wasm';
import { scenario } from './scenario.mjs';

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname !== '/scenario') return new Response('tabbit in workerd: GET /scenario\n', { status: 404 });
    try {
      const result = await scenario(connect, { wasm });
      return Response.json({ ok: true, runtime: 'workerd', version: await version(), wasmIsModule: wasm instanceof WebAssembly.Module, result });
    } catch (e) {
      return Response.json({ ok: false, error: String(e?.stack ?? e) }, { status: 500 });
    }
  },
};
