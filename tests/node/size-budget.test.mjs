// The size budget of scripts/test (stage size: scripts/package-size.mjs --check against
// size-budget.json) bites: over the budget it exits non-zero with a message that names the budget
// file, the budget, the current size and what to do; at the budget it passes. Needs pkg/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, packageSize } from '../../scripts/package-size.mjs';

const SCRIPT = join(ROOT, 'scripts/package-size.mjs');
const check = (...args) =>
  promisify(execFile)(process.execPath, [SCRIPT, '--check', ...args], { cwd: ROOT }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

test('size budget: the check fails one byte over the budget and passes at it', async () => {
  const { total, wasm, js, files } = await packageSize(join(ROOT, 'pkg'));
  assert.equal(total, wasm + js);
  for (const f of ['tabbit_bg.wasm', 'tabbit.js', 'index.js', 'bridge.js']) assert.ok(files.some(([n]) => n === f), f);

  const over = await check('--budget', String(total - 1));
  assert.equal(over.code, 1, over.stdout + over.stderr);
  for (const words of ['size-budget.json', (total - 1).toLocaleString('en'), total.toLocaleString('en'), 'CHANGELOG.md']) {
    assert.ok(over.stderr.includes(words), `${words} not in: ${over.stderr}`);
  }

  const at = await check('--budget', String(total));
  assert.equal(at.code, 0, at.stdout + at.stderr);

  // The budget in the repository is a whole number of bytes, and what stage size checks against.
  const { maxGzipBytes } = JSON.parse(await readFile(join(ROOT, 'size-budget.json'), 'utf8'));
  assert.ok(Number.isInteger(maxGzipBytes) && maxGzipBytes > 0, String(maxGzipBytes));
});
