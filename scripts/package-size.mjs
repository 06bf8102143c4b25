// What a user downloads: every file of the package that runs (the .wasm and each .js, snippets
// included; not types, source maps or package.json), each gzipped at level 9, summed. The one
// count of the package's size: scripts/bench's row (f) imports packageSize(), and scripts/test's
// size stage runs this with --check against the budget in size-budget.json.
//
//   node scripts/package-size.mjs [DIR]                  per-file sizes and the total (DIR: pkg)
//   node scripts/package-size.mjs --check [DIR]          exits 1 if the total is over the budget
//   node scripts/package-size.mjs --check --budget N     ... against N bytes instead (tests use it)
import { readFile, readdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
export const BUDGET_FILE = 'size-budget.json';

/** The shipped files of the package in `dir`, gzipped: `{ files: [[path, bytes]], wasm, js, total }`. */
export async function packageSize(dir) {
  const names = (await readdir(dir, { recursive: true })).filter((f) => /\.(wasm|m?js)$/.test(f)).sort();
  if (!names.some((f) => f.endsWith('.wasm'))) throw new Error(`${dir} holds no .wasm: build it first (scripts/build-pkg)`);
  const files = await Promise.all(names.map(async (f) => [f, gzipSync(await readFile(join(dir, f)), { level: 9 }).length]));
  const sum = (want) => files.filter(([f]) => want(f)).reduce((a, [, n]) => a + n, 0);
  const wasm = sum((f) => f.endsWith('.wasm'));
  const js = sum((f) => !f.endsWith('.wasm'));
  return { files, wasm, js, total: wasm + js };
}

/** The budget in bytes from size-budget.json. */
export async function budget() {
  return JSON.parse(await readFile(join(ROOT, BUDGET_FILE), 'utf8')).maxGzipBytes;
}

const bytes = (n) => `${n.toLocaleString('en')} B`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const at = args.indexOf('--budget');
  const given = at >= 0 ? Number(args[at + 1]) : undefined;
  const dirArg = args.filter((a, i) => !a.startsWith('--') && !(at >= 0 && i === at + 1))[0];
  if (given !== undefined && !(given >= 0)) {
    console.error('usage: node scripts/package-size.mjs [--check [--budget BYTES]] [DIR]');
    process.exit(2);
  }
  const dir = resolve(dirArg ?? join(ROOT, 'pkg'));
  const size = await packageSize(dir);
  for (const [f, n] of size.files) console.log(`${bytes(n).padStart(12)}  ${f}`);
  console.log(`${bytes(size.total).padStart(12)}  total gzipped (wasm ${bytes(size.wasm)}, JS ${bytes(size.js)}) in ${relative(ROOT, dir) || '.'}`);
  if (check) {
    const max = given ?? (await budget());
    if (size.total > max) {
      const whose = given === undefined ? `maxGzipBytes in ${BUDGET_FILE}` : `--budget; the repository's is maxGzipBytes in ${BUDGET_FILE}`;
      console.error(
        `package-size: the package is ${bytes(size.total)} gzipped, over the budget of ${bytes(max)} ` +
          `(${whose}) by ${bytes(size.total - max)}. Cut what grew (\`cargo install twiggy\`, then ` +
          `\`twiggy top\` or \`twiggy monos\` on target/wasm32-unknown-unknown/release/tabbit.wasm shows what is ` +
          `big), or raise maxGzipBytes in ${BUDGET_FILE} with a note in CHANGELOG.md saying what bought the bytes.`,
      );
      process.exit(1);
    }
    console.log(`package-size: within the budget of ${bytes(max)} (${BUDGET_FILE}), ${bytes(max - size.total)} to spare`);
  }
}
