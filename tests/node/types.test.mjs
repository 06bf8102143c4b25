// The package's hand-written types (src/api/index.d.ts, shipped as pkg/index.d.ts) type-check
// tests/types/example.ts, a program using the whole API, under strict tsc: its correct usage
// compiles and each of its `@ts-expect-error` lines (wrong usage) is rejected. No browser, no pkg/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('types: tsc -p tests/types/tsconfig.json passes', { timeout: 60_000 }, () => {
  const tsc = join(ROOT, 'tests', 'node_modules', '.bin', 'tsc');
  assert.ok(existsSync(tsc), `${tsc} missing: run npm ci in tests/ (scripts/setup does)`);
  const r = spawnSync(tsc, ['-p', join(ROOT, 'tests', 'types', 'tsconfig.json')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 50_000,
  });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `tsc exited with ${r.status ?? r.signal}:\n${output}`);
});
