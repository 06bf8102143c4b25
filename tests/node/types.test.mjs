// The package's hand-written types (js/index.d.ts and callback_api.d.ts, shipped in pkg/)
// under strict tsc, no browser, no pkg/:
// - tests/types/tsconfig.json, a browser project (DOM lib): example.ts uses the whole API,
//   callback.ts the callback API, amqplib.ts code written for @types/amqplib; their correct
//   usage compiles and each `@ts-expect-error` line (wrong usage) is rejected;
// - tests/types/tsconfig.node.json, a Node project without the DOM lib (lib es2022 only):
//   node.ts; the types must name no DOM type. Run again with @types/node where it is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsc = join(ROOT, 'tests', 'node_modules', '.bin', 'tsc');

function check(project) {
  assert.ok(existsSync(tsc), `${tsc} missing: run npm ci in tests/ (scripts/setup does)`);
  const r = spawnSync(tsc, ['-p', project], { cwd: ROOT, encoding: 'utf8', timeout: 50_000 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `tsc -p ${project} exited with ${r.status ?? r.signal}:\n${output}`);
}

test('types: a browser project (tsc -p tests/types/tsconfig.json) passes', { timeout: 60_000 }, () => {
  check(join(ROOT, 'tests', 'types', 'tsconfig.json'));
});

test('types: a Node project without the DOM lib (tsc -p tests/types/tsconfig.node.json) passes', { timeout: 60_000 }, () => {
  check(join(ROOT, 'tests', 'types', 'tsconfig.node.json'));
});

const nodeTypes = join(ROOT, 'tests', 'node_modules', '@types', 'node');
test(
  'types: the Node project with @types/node passes',
  { timeout: 60_000, skip: !existsSync(nodeTypes) && '@types/node is not installed in tests/node_modules' },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabbit-types-'));
    try {
      const base = JSON.parse(readFileSync(join(ROOT, 'tests', 'types', 'tsconfig.node.json'), 'utf8').replace(/^\s*\/\/.*$/gm, ''));
      const api = join(ROOT, 'js');
      base.compilerOptions.types = ['node'];
      base.compilerOptions.typeRoots = [join(ROOT, 'tests', 'node_modules', '@types')];
      base.compilerOptions.paths = { tabbit: [join(api, 'index.d.ts')], 'tabbit/callback_api': [join(api, 'callback_api.d.ts')] };
      base.files = [join(ROOT, 'tests', 'types', 'node.ts')];
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(base));
      check(join(dir, 'tsconfig.json'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
