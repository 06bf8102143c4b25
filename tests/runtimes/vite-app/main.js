// Imports the npm package by name, as an app does; Vite bundles index.js and wasm-bindgen's glue,
// and emits the wasm that the glue finds with new URL('tabbit_bg.wasm', import.meta.url).
import { connect, version } from 'tabbit';
import { scenario } from '../scenario.mjs';

const out = document.getElementById('result');

async function main() {
  const result = await scenario(connect);
  return { runtime: 'vite', version: await version(), result };
}

main().then(
  (summary) => {
    out.textContent = JSON.stringify(summary);
    out.dataset.status = 'done';
  },
  (e) => {
    out.textContent = JSON.stringify({ runtime: 'vite', error: String(e?.stack ?? e) });
    out.dataset.status = 'failed';
  },
);
