// Writes the workerd config (Cap'n Proto text) that serves broker-do.js: a worker with two
// Durable Object classes, BrokerSql (SQLite-backed: `enableSql = true`) and BrokerKv (key-value
// API only), their objects stored on local disk in `disk` (a writable DiskDirectory service named
// by `durableObjectStorage = (localDisk = ...)`), so that they outlive the workerd process.
// Schema: tests/node_modules/workerd/workerd.capnp (Worker.durableObjectNamespaces,
// Worker.durableObjectStorage, DiskDirectory).
//
//   import { writeDurableObjectConfig } from './do-config.mjs';
//   await writeDurableObjectConfig(file, { disk: '/tmp/do-disk', address: '127.0.0.1:8787' });
//
// As a command (then: tests/node_modules/.bin/workerd serve /tmp/tabbit-do.capnp):
//   node tests/runtimes/workerd/do-config.mjs --out /tmp/tabbit-do.capnp --disk DIR [--address HOST:PORT]
import { stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { configText, packageModules } from './config.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');

/**
 * Throws a readable error unless `pkg` has the adapter as scripts/build-pkg ships it
 * (storage/durable-object.js, from js/storage/durable-object.js), built from the current source.
 */
export async function needAdapterBuild(pkg = join(root, 'pkg')) {
  const built = await stat(join(pkg, 'storage/durable-object.js')).catch(() => null);
  const source = await stat(join(root, 'js/storage/durable-object.js'));
  if (!built) throw new Error('pkg/storage/durable-object.js is missing: build the package with scripts/build-pkg');
  if (built.mtimeMs < source.mtimeMs) throw new Error('pkg/storage/durable-object.js is older than js/storage/durable-object.js: rebuild the package with scripts/build-pkg');
}

/** broker-do.js's classes: SQLite-backed, and key-value only. */
const BROKER_CLASSES = [
  { className: 'BrokerSql', binding: 'BROKER_SQL', sql: true },
  { className: 'BrokerKv', binding: 'BROKER_KV', sql: false },
];

/**
 * Writes to `file` the capnp config: the worker `worker` (default broker-do.js) and pkg/'s
 * modules, the adapter (pkg/storage/durable-object.js) among them; the Durable Object
 * `classes` ({className, binding, sql}; default broker-do.js's two) on local disk `disk` (an
 * existing directory); one HTTP socket on `address`. `preventEviction` keeps idle objects in
 * memory (workerd only), so that a test's unacked deliveries stay with their channel.
 * `compatibilityFlags`: the worker's (e.g. 'unsafe_module', with workerd's --experimental).
 */
export async function writeDurableObjectConfig(
  file,
  {
    disk,
    worker = join(here, 'broker-do.js'),
    classes = BROKER_CLASSES,
    pkg = join(root, 'pkg'),
    address = '127.0.0.1:8787',
    compatibilityDate = '2025-09-01',
    compatibilityFlags = [],
    preventEviction = true,
  } = {},
) {
  if (!disk) throw new Error('writeDurableObjectConfig: give `disk`, the directory that keeps the objects');
  const modules = [
    ['worker.js', 'esModule', worker],
    ['pkg/storage/durable-object.js', 'esModule', join(pkg, 'storage/durable-object.js')],
    ...(await packageModules(pkg)),
  ];
  // The package's Durable Object class ('tabbit/durable-object'), where the build has it.
  if (await stat(join(pkg, 'durable-object.js')).catch(() => null)) modules.push(['pkg/durable-object.js', 'esModule', join(pkg, 'durable-object.js')]);
  const q = (s) => JSON.stringify(s);
  const namespaces = classes.map(
    (c) => `    (className = ${q(c.className)}, uniqueKey = ${q(`tabbit-test-${c.className}`)}, enableSql = ${!!c.sql}, preventEviction = ${preventEviction}),\n`,
  );
  const bindings = classes.map((c) => `    (name = ${q(c.binding)}, durableObjectNamespace = ${q(c.className)}),\n`);
  const text = configText(file, {
    modules,
    address,
    compatibilityDate,
    by: 'tests/runtimes/workerd/do-config.mjs',
    services: [`(name = "do-disk", disk = (path = ${q(resolve(disk))}, writable = true))`],
    fields: [
      ...(compatibilityFlags.length ? [`compatibilityFlags = ${q(compatibilityFlags)}`] : []),
      `durableObjectNamespaces = [\n${namespaces.join('')}  ]`,
      'durableObjectStorage = (localDisk = "do-disk")',
      `bindings = [\n${bindings.join('')}  ]`,
    ],
  });
  await writeFile(file, text);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (!opt('--out') || !opt('--disk')) {
    console.error('usage: node tests/runtimes/workerd/do-config.mjs --out FILE --disk DIR [--pkg DIR] [--address HOST:PORT]');
    process.exit(2);
  }
  await writeDurableObjectConfig(opt('--out'), { disk: opt('--disk'), pkg: opt('--pkg') && resolve(opt('--pkg')), address: opt('--address') });
}
