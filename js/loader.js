// The wasm loader and panic recovery: loads tabbit's wasm once (connect({ wasm }) or the file
// beside the package), runs binding calls (guard, promise), and after a panic fails this
// context's connections and loads a fresh instance on the next connect(). The brokers open in
// this context are kept here, as they belong to the instance that panics.
import init, {
  RawBroker, version as wasmVersion, onPanic, resourcePrefix, StompCodec, stompDestinationError,
} from './tabbit.js';
import { failed } from './errors.js';

/** The wasm binding in use: the one imported above, or a fresh instance after a panic. */
export let binding = {
  init, RawBroker, version: wasmVersion, onPanic, resourcePrefix, StompCodec, stompDestinationError,
};
let loading;
/** What the wasm was loaded from, to load a fresh instance from after a panic. */
let loadedFrom;
/** After a panic: the error pending calls fail with, until the fresh instance is loaded. */
export let broken = null;
let instances = 0;

/** Loads the wasm once: `wasm` (bytes or a WebAssembly.Module) if given, else the file beside this module. */
export function load(wasm) {
  loading ??= (async () => {
    if (broken) {
      // The instance that panicked is gone for good: a module imported anew has its own.
      try {
        // The specifier in a variable: in import() itself, esbuild's bundling (scripts/build-pkg)
        // would take the template literal for a glob of files to bundle, and match none (esbuild
        // docs, "Non-analyzable imports"; evanw/esbuild#3337).
        const fresh = `./tabbit.js?instance=${++instances}`;
        const m = await import(/* @vite-ignore */ /* webpackIgnore: true */ fresh);
        binding = {
          init: m.default, RawBroker: m.RawBroker, version: m.version, onPanic: m.onPanic,
          resourcePrefix: m.resourcePrefix, StompCodec: m.StompCodec,
          stompDestinationError: m.stompDestinationError,
        };
      } catch (e) {
        throw failed(`${broken.message} (a fresh instance could not be loaded: ${e?.message ?? e}; reload the page)`, 541);
      }
      wasm ??= loadedFrom;
    }
    let source = wasm;
    if (source === undefined && typeof process === 'object' && process.versions?.node && !globalThis.Deno) {
      // Node's fetch cannot read file: URLs. The specifier is a variable, and marked, so that
      // bundlers leave this Node-only import alone (Vite warns about, webpack fails on, a
      // `node:` import in code for the browser).
      const fsModule = 'node:fs/promises';
      const { readFile } = await import(/* @vite-ignore */ /* webpackIgnore: true */ fsModule);
      source = await readFile(new URL('./tabbit_bg.wasm', import.meta.url));
    }
    try {
      await binding.init(source === undefined ? undefined : { module_or_path: source });
      loadedFrom = source;
      broken = null;
      binding.onPanic(panicked);
    } catch (e) {
      throw failed(
        `could not load tabbit's wasm (${e?.message ?? e}); where the file beside the package cannot be ` +
          'fetched (Cloudflare Workers, some bundlers), pass it: connect({ wasm }) with its bytes or a WebAssembly.Module',
        506,
      );
    }
  })();
  loading.catch(() => (loading = undefined));
  return loading;
}

/** The package version. */
export async function version() {
  await load();
  return binding.version();
}

/**
 * tabbit panicked (a bug): its wasm instance has stopped for good. Every connection of this
 * context fails with code 541, the instance's mesh ports have left (so another context hosts),
 * and the next connect() loads a fresh instance.
 */
function panicked(message) {
  broken = failed(
    `tabbit stopped on an internal error (a bug, please report it: ${message}); its connections in this ` +
      'context are closed: connect again',
    541,
  );
  const open = [...brokers.values()].flatMap((entry) => [...entry.open]);
  const bridges = [...brokers.values()].map((entry) => entry.stopBridges);
  brokers.clear();
  closing.clear();
  loading = undefined;
  // After the current call has failed: the instance traps as soon as this returns.
  queueMicrotask(() => {
    open.forEach((conn) => conn[DEAD](broken));
    // Their WebSockets close; the instance can run no Runner.
    bridges.forEach((stop) => stop?.());
  });
}

/** Runs a binding call; after a panic, its trap becomes the panic's error. */
export function guard(fn) {
  if (broken) throw broken;
  try {
    return fn();
  } catch (e) {
    throw broken && e instanceof WebAssembly.RuntimeError ? broken : e;
  }
}

/** Runs a binding call as a promise: a thrown error becomes a rejection. */
export function promise(fn) {
  try {
    return Promise.resolve(guard(fn));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Closes a connection or channel whose wasm instance panicked: 'error', then 'close'. */
export const DEAD = Symbol('tabbit.dead');

/** Brokers open in this context, by name: every connect() to a name shares one. */
export const brokers = new Map();
/** Brokers closing, by name: a new one on the name waits, so that two never share its storage. */
export const closing = new Map();
