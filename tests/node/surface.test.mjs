// The package's JS surface and its hand-written types agree (issue 19, item 2): every method
// and property of every class pkg/index.js exports (and of the objects it hands out: a bridge,
// the callback API's connection and channels) is declared in index.d.ts / callback_api.d.ts and
// the other way round; every option name the package's JS reads is declared in its `Options`
// interface; every reply code of the Rust error enum (`ReplyCode` in src/core/error.rs) and every
// code the JS raises itself is in `ReplyCode`. Needs pkg/ (scripts/build-pkg); no browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKG = join(ROOT, 'pkg');
const read = (...p) => readFileSync(join(ROOT, ...p), 'utf8');

/**
 * The package's JS sources under js/ that `entries` are made of: each entry and the local modules
 * it imports, transitively (index.js is split into modules that scripts/build-pkg bundles back
 * into it; bridge.js, which it imports, is among them). Paths relative to js/.
 */
function sourcesOf(...entries) {
  const found = new Set();
  const visit = (file) => {
    if (found.has(file) || !existsSync(join(ROOT, 'js', file))) return; // ./tabbit.js: wasm-bindgen's, not under js/
    found.add(file);
    for (const m of read('js', file).matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*'\.\/([\w./-]+\.js)'/gm)) visit(m[1]);
    // And what it loads on first use.
    for (const m of read('js', file).matchAll(/\bimport\(\s*'\.\/([\w./-]+\.js)'\s*\)/g)) visit(m[1]);
  };
  entries.forEach(visit);
  return [...found];
}

/**
 * `source` with its comments blanked out (and, with `blankStrings`, the contents of its string
 * and template literals too), every other character in place, so that braces can be matched.
 */
function blank(source, { blankStrings }) {
  let out = '';
  let i = 0;
  let last = ''; // the last character of code, to tell a regex literal from a division
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end < 0 ? source.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (c === '/' && next === '*') {
      const stop = source.indexOf('*/', i + 2) + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`' || (c === '/' && /[(,=:[!&|?{};]/.test(last))) {
      let j = i + 1;
      while (j < source.length && source[j] !== c) j += source[j] === '\\' ? 2 : 1;
      const literal = source.slice(i, j + 1);
      out += blankStrings ? c + ' '.repeat(literal.length - 2) + c : literal;
      last = c;
      i = j + 1;
    } else {
      out += c;
      if (!/\s/.test(c)) last = c;
      i += 1;
    }
  }
  return out;
}

/** The text between the brace at `open` and its match. */
function body(code, open) {
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    if (code[i] === '{') depth += 1;
    else if (code[i] === '}' && --depth === 0) return code.slice(open + 1, i);
  }
  throw new Error(`unbalanced braces from ${open}`);
}

/** The names declared at the top level of a type body: `name(`, `name<`, `name?:`, `name:`, `'x-y'?:`. */
function membersOf(text) {
  const names = new Set();
  let depth = 0;
  let statement = '';
  let previous = '';
  for (const c of text) {
    const arrow = c === '>' && previous === '='; // `=>`: no closing angle bracket
    previous = c;
    if (c === '{' || c === '(' || c === '[' || c === '<') depth += 1;
    if (depth === 0) statement += c;
    if (c === '}' || c === ')' || c === ']' || (c === '>' && !arrow)) {
      depth -= 1;
      if (depth === 0) statement += c === ')' ? '()' : '';
    }
    if (depth === 0 && (c === ';' || c === '\n' || c === ',')) {
      memberName(statement, names);
      statement = '';
    }
  }
  memberName(statement, names); // the last member of `{ a: string; b: string }`
  return names;
}

function memberName(statement, names) {
  const m = statement.match(/^\s*(?:readonly\s+|static\s+|private\s+|protected\s+|get\s+|set\s+)*(['"]?)([\w$-]+)\1\s*\??\s*(?:[:(]|\(\))/);
  if (m) names.add(m[2]);
}

/** The index after the balanced `<…>` at `at` (`=>` inside is no bracket), or `at` if there is none. */
function skipAngles(text, at) {
  while (/\s/.test(text[at])) at++;
  if (text[at] !== '<') return at;
  for (let depth = 0; at < text.length; at++) {
    if (text[at] === '<') depth += 1;
    else if (text[at] === '>' && text[at - 1] !== '=' && --depth === 0) return at + 1;
  }
  throw new Error('unbalanced <');
}

/** The declarations of a .d.ts file: classes, interfaces and type aliases by name, namespaces' as `Ns.Name`. */
function declarations(file) {
  const code = blank(read(...file), { blankStrings: false });
  const found = new Map();
  const scan = (text, prefix) => {
    const head = /\b(class|interface|namespace|type)\s+([\w$]+)/g;
    let m;
    while ((m = head.exec(text))) {
      const [, kind, name] = m;
      const rest = text.slice(skipAngles(text, head.lastIndex));
      const isAlias = kind === 'type' && /^\s*=/.test(rest);
      const base = rest.match(/^\s*extends\s+([\w$.]+)/)?.[1];
      head.lastIndex = text.length - rest.length;
      if (isAlias) {
        let end = head.lastIndex;
        for (let depth = 0; end < text.length && !(depth === 0 && text[end] === ';'); end++) {
          if (text[end] === '{') depth += 1;
          else if (text[end] === '}') depth -= 1;
        }
        const alias = text.slice(head.lastIndex, end);
        // Every property of the object types the alias joins.
        const names = new Set();
        for (const part of alias.matchAll(/\{/g)) for (const n of membersOf(body(alias, part.index))) names.add(n);
        found.set(prefix + name, { kind, names, base: null });
        head.lastIndex = end;
        continue;
      }
      const open = text.indexOf('{', head.lastIndex - 1);
      const inner = body(text, open);
      if (kind === 'namespace') scan(inner, `${prefix}${name}.`);
      else found.set(prefix + name, { kind, names: membersOf(inner), base: base ?? null });
      head.lastIndex = open + inner.length + 2;
    }
  };
  scan(code, '');
  return found;
}

/** The names declared on `name` and the types it extends. */
function declaredOn(decls, name) {
  const names = new Set();
  for (let d = decls.get(name); d; d = d.base ? decls.get(d.base) : null) for (const n of d.names) names.add(n);
  return names;
}

/** The methods and accessors an object has through its prototype chain (not Object's), and its own properties. */
function surfaceOf(object) {
  const names = new Set(Object.keys(object).filter((k) => !k.startsWith('_')));
  for (let p = Object.getPrototypeOf(object); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) if (k !== 'constructor') names.add(k);
  }
  return names;
}

const missing = (have, want) => [...want].filter((n) => !have.has(n)).sort();

const needPkg = () => assert.ok(existsSync(join(PKG, 'index.js')), 'pkg/ missing: run scripts/build-pkg');
const dts = () => declarations(['js', 'index.d.ts']);

test('surface: every export of pkg/index.js is declared in index.d.ts, and every declared value is exported', async () => {
  needPkg();
  const mod = await import(pathToFileURL(join(PKG, 'index.js')));
  const text = blank(read('js', 'index.d.ts'), { blankStrings: false });
  const declaredValues = new Set([...text.matchAll(/export\s+(?:declare\s+)?(?:function|class|const|let)\s+([\w$]+)/g)].map((m) => m[1]));
  const exported = new Set(Object.keys(mod).filter((k) => k !== 'default'));
  assert.deepEqual(missing(declaredValues, exported), [], 'exported by pkg/index.js, not declared in index.d.ts');
  assert.deepEqual(missing(exported, declaredValues), [], 'declared in index.d.ts, not exported by pkg/index.js');
  const defaults = declaredOn(new Map([['tabbit', { names: membersOf(body(text, text.indexOf('{', text.indexOf('declare const tabbit')))) }]]), 'tabbit');
  assert.deepEqual(missing(defaults, Object.keys(mod.default)), [], "keys of pkg/index.js's default export not in index.d.ts's `tabbit`");
  assert.deepEqual(missing(new Set(Object.keys(mod.default)), defaults), [], "index.d.ts's `tabbit` declares keys the default export lacks");
});

test('surface: every method and property of the exported classes is typed, and every typed one exists', async () => {
  needPkg();
  const mod = await import(pathToFileURL(join(PKG, 'index.js')));
  const decls = dts();
  const classes = Object.entries(mod).filter(([, v]) => typeof v === 'function' && /^class\b/.test(Function.prototype.toString.call(v)));
  assert.ok(classes.length >= 4, `expected Connection, Channel, ConfirmChannel and Emitter, found ${classes.map(([k]) => k)}`);
  for (const [name, Class] of classes) {
    assert.ok(decls.has(name), `class ${name} is exported but index.d.ts declares no ${name}`);
    const js = surfaceOf(Object.create(Class.prototype));
    const typed = declaredOn(decls, name);
    typed.delete('constructor');
    assert.deepEqual(missing(typed, js), [], `${name}: in pkg/index.js, not declared in index.d.ts`);
    assert.deepEqual(missing(js, typed), [], `${name}: declared in index.d.ts, not in pkg/index.js`);
  }
  // What conn.bridge() resolves to: bridge.js's Bridge, typed as `interface Bridge`.
  const { Bridge } = await import(pathToFileURL(join(PKG, 'bridge.js')));
  const bridge = new Bridge({ bridges: () => [], undeclare() {} }, 'b', () => {});
  assert.deepEqual(missing(declaredOn(decls, 'Bridge'), surfaceOf(bridge)), [], 'Bridge: in bridge.js, not in index.d.ts');
  assert.deepEqual(missing(surfaceOf(bridge), declaredOn(decls, 'Bridge')), [], 'Bridge: in index.d.ts, not in bridge.js');
});

test('surface: the callback API: its connection and channels as callback_api.d.ts types them', async () => {
  needPkg();
  const amqp = (await import(pathToFileURL(join(PKG, 'callback_api.js')))).default;
  const decls = declarations(['js', 'callback_api.d.ts']);
  const call = (fn) => new Promise((ok, fail) => fn((err, v) => (err ? fail(err) : ok(v))));
  const conn = await call((cb) => amqp.connect({ name: 'surface', storage: 'memory', mesh: false }, cb));
  try {
    const ch = await call((cb) => conn.createChannel(cb));
    const cch = await call((cb) => conn.createConfirmChannel(cb));
    for (const [name, object] of [['Connection', conn], ['Channel', ch], ['ConfirmChannel', cch]]) {
      const typed = declaredOn(decls, name);
      // Emitting<…>: the interfaces' shared base (not exported), declared once.
      for (const n of declaredOn(decls, 'Emitting')) typed.add(n);
      const js = surfaceOf(object);
      assert.deepEqual(missing(typed, js), [], `callback ${name}: in callback_api.js, not in callback_api.d.ts`);
      assert.deepEqual(missing(js, typed), [], `callback ${name}: in callback_api.d.ts, not in callback_api.js`);
    }
  } finally {
    await call((cb) => conn.close(cb));
  }
});

/**
 * The option names a function of the package's JS reads from its `options` parameter: names
 * destructured from it, `options.x`/`options?.x`, and `rest.x` of a `...rest` taken from it.
 */
function optionsRead(file) {
  const code = blank(read(...file), { blankStrings: true });
  const reads = new Map();
  const head = /^\s*(?:export\s+)?(?:async\s+)?(?:function\s*\*?\s*|\*\s*)?([\w$]+)\s*\(([^)]*)\)\s*\{/gm;
  let m;
  while ((m = head.exec(code))) {
    const [, fn, params] = m;
    if (!/\boptions\b/.test(params) || ['if', 'for', 'while', 'switch', 'catch'].includes(fn)) continue;
    const inner = body(code, head.lastIndex - 1);
    const names = new Set();
    for (const d of inner.matchAll(/\{([^{}]*)\}\s*=\s*options\b/g)) {
      for (const part of d[1].split(',')) {
        const n = part.trim().match(/^([\w$]+)/);
        if (n && !part.trim().startsWith('...')) names.add(n[1]);
      }
      const rest = d[1].match(/\.\.\.([\w$]+)/);
      if (rest) for (const r of inner.matchAll(new RegExp(`\\b${rest[1]}\\??\\.([\\w$]+)`, 'g'))) names.add(r[1]);
    }
    for (const r of inner.matchAll(/\boptions\??\.([\w$]+)/g)) names.add(r[1]);
    if (names.size) reads.set(fn, names);
  }
  return reads;
}

test("surface: every option the package's JS reads is declared in its Options interface", () => {
  const decls = dts();
  // Which interface types each function's `options`. A function that reads options and is not
  // listed here fails the test: list it, with the interface that declares its options.
  const typedBy = {
    connect: 'Options.Connect',
    consume: 'Options.Consume',
    messages: 'Options.Consume',
    get: 'Options.Get',
    outgoing: 'Options.Publish',
    notePersistent: 'Options.Publish',
    bridge: 'BridgeOptions',
    bridgeConfig: 'BridgeOptions',
  };
  const reads = new Map();
  const files = sourcesOf('index.js');
  assert.ok(files.includes('connection.js') && files.includes('bridge.js'), `index.js's modules not found: ${files}`);
  for (const file of files) {
    for (const [fn, names] of optionsRead(['js', file])) reads.set(fn, new Set([...(reads.get(fn) ?? []), ...names]));
  }
  assert.ok(reads.get('connect')?.has('storage'), `the parser found no options read by connect(): ${[...reads.keys()]}`);
  for (const [fn, names] of reads) {
    assert.ok(typedBy[fn], `${fn}() reads options ${[...names]}: add it to typedBy with the interface that declares them`);
    assert.deepEqual(missing(declaredOn(decls, typedBy[fn]), names), [], `${fn}() reads options that ${typedBy[fn]} does not declare`);
  }
  // bridge(): the options it accepts are listed once, in bridgeConfig's `known`.
  const known = read('js', 'bridge.js').match(/const known = \[([^\]]*)\]/);
  assert.ok(known, "bridge.js's list of known bridge options not found");
  const names = [...known[1].matchAll(/'([\w$]+)'/g)].map((k) => k[1]);
  assert.deepEqual(missing(declaredOn(decls, 'BridgeOptions'), names), [], 'bridge options bridge.js accepts, not in BridgeOptions');
  assert.deepEqual(missing(new Set(names), declaredOn(decls, 'BridgeOptions')), [], 'BridgeOptions declares options bridge.js refuses');
  // Its rules' fields.
  const bridgeJs = blank(read('js', 'bridge.js'), { blankStrings: true });
  for (const [rules, type] of [['outbound', 'BridgeOutbound'], ['inbound', 'BridgeInbound']]) {
    const at = bridgeJs.indexOf(`${rules}.forEach(`);
    const fields = new Set([...body(bridgeJs, bridgeJs.indexOf('{', at)).matchAll(/\brule\.(?:to\.)?([\w$]+)/g)].map((r) => r[1]));
    const typed = declaredOn(decls, type);
    if (type === 'BridgeInbound') for (const n of ['queue', 'exchange', 'routingKey']) typed.add(n); // `to`'s union, inline
    assert.ok(fields.size > 1, `no ${rules} rule fields found in bridge.js`);
    assert.deepEqual(missing(typed, fields), [], `${rules} rule fields bridge.js reads, not in ${type}`);
  }
});

test('surface: the option names the Rust binding reads are declared (while src/wasm/convert.rs converts by hand)', (t) => {
  const path = join(ROOT, 'src', 'wasm', 'convert.rs');
  const rust = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const keys = new Set([
    ...[...rust.matchAll(/\b(?:opt_bool|opt_string|opt_uint|get)\(\s*(?:options|opts),\s*"([\w$]+)"/g)].map((m) => m[1]),
    // publish's options, matched by name; the shorthands of queue arguments and limits.
    ...[...rust.matchAll(/^\s*"([\w$]+)"(?:\s*\|\s*"[\w$]+")*\s*=>/gm)].map((m) => m[1]),
    ...[...rust.matchAll(/\("([\w$]+)",\s*"x-[\w-]+"\)/g)].map((m) => m[1]),
  ]);
  if (keys.size === 0) return t.skip('src/wasm/convert.rs no longer reads options by name: the types of its options come from Rust');
  const decls = dts();
  const options = new Set();
  for (const [name, d] of decls) if (name.startsWith('Options.')) for (const n of d.names) options.add(n);
  assert.deepEqual(missing(options, keys), [], 'option names src/wasm/convert.rs reads that no Options interface declares');
});

test('surface: ReplyCode lists every code of the Rust error enum and every code the JS raises, and no other', () => {
  const rust = read('src', 'core', 'error.rs');
  const enumBody = rust.slice(rust.indexOf('pub enum ReplyCode'));
  const rustCodes = new Set([...body(enumBody, enumBody.indexOf('{')).matchAll(/=\s*(\d+)/g)].map((m) => Number(m[1])));
  assert.ok(rustCodes.has(404) && rustCodes.size >= 8, `parsed ${[...rustCodes]} from src/core/error.rs`);
  const jsCodes = new Set();
  for (const file of sourcesOf('index.js', 'callback_api.js')) {
    const code = read('js', file);
    for (const m of code.matchAll(/\bfailed\((?:[^()]|\([^()]*\))*?,\s*(\d{3})\s*\)/gs)) jsCodes.add(Number(m[1]));
  }
  assert.ok(jsCodes.has(540), `the JS's own codes (540 for no WebSocket) not found: ${[...jsCodes]}`);
  const dtsText = blank(read('js', 'index.d.ts'), { blankStrings: false });
  const union = dtsText.match(/export\s+type\s+ReplyCode\s*=\s*([^;]*);/);
  assert.ok(union, 'no `export type ReplyCode = …;` in index.d.ts');
  const typed = new Set(union[1].split('|').map((s) => Number(s.trim())));
  assert.deepEqual(missing(typed, rustCodes), [], 'codes of the Rust enum ReplyCode missing from index.d.ts');
  assert.deepEqual(missing(typed, jsCodes), [], "codes the package's JS raises missing from index.d.ts's ReplyCode");
  assert.deepEqual(missing(new Set([...rustCodes, ...jsCodes]), typed), [], 'codes in ReplyCode that nothing raises');
});
