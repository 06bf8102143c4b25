// Runs every tests/node/*.test.mjs with node's test runner (TAP on stdout, one file at a time:
// each file starts its own Chromium and the CI machine has 2 cores) and exits with its code.
// This is stage 4 of scripts/test, which reads the `# pass N` / `# fail N` summary lines.
//
//   node tests/node/run.mjs                    # every test file
//   node tests/node/run.mjs storage            # only files whose name contains "storage"
//
// Nothing hangs CI: each test file is bounded by FILE_TIMEOUT_MS (default 10 min; node 20 applies
// --test-timeout to a file as a whole), each test by its own `timeout` option (TEST_TIMEOUT from
// browser.mjs, 120 s), and the whole run by RUN_TIMEOUT_MS (default 20 min).
// Needs pkg/ (scripts/build-pkg) and tests/node_modules
// (npm ci in tests/, which scripts/setup does).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.test.mjs'))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort()
  .map((f) => join(here, f));
if (files.length === 0) {
  console.error(`tests/node/run.mjs: no test file matches ${filters.join(' ') || '*.test.mjs'}`);
  process.exit(1);
}

const fileTimeout = Number(process.env.FILE_TIMEOUT_MS || 10 * 60_000);
const runTimeout = Number(process.env.RUN_TIMEOUT_MS || 20 * 60_000);
const child = spawn(
  process.execPath,
  [
    '--test',
    '--test-reporter=tap',
    '--test-concurrency=1',
    `--test-timeout=${fileTimeout}`,
    '--test-force-exit', // a timed-out test may leave its browser open: end the file anyway
    ...files,
  ],
  { stdio: 'inherit' },
);
const watchdog = setTimeout(() => {
  console.error(`tests/node/run.mjs: still running after ${runTimeout} ms, killing the test runner`);
  child.kill('SIGKILL');
}, runTimeout);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  clearTimeout(watchdog);
  process.exit(code ?? (signal ? 1 : 0));
});
