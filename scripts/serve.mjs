// A small static file server for the demo page and the browser tests (Node standard library only).
//
//   import { serve } from './serve.mjs';
//   const { url, close } = await serve({ root, port: 0, host: '127.0.0.1' }); // port 0: any free port
//
// As a command:  node scripts/serve.mjs [--root DIR] [--port N] [--host H]
//   (defaults: the repository root, $PORT or 8080, 127.0.0.1)
//
// GET and HEAD only; `/` redirects to `/www/`; a directory URL serves its index.html; no listings;
// 404 for missing files and dot-files; paths that leave the root (also through symlinks) are refused.
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { dirname, extname, join, relative, resolve, sep, isAbsolute } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

const INDEX_PATH = '/www/';

function send(res, status, body, headers = {}) {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function inside(root, file) {
  const rel = relative(root, file);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

async function handle(root, req, res) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
  }
  let pathname;
  try {
    pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
  } catch {
    return send(res, 400, 'bad request\n');
  }
  if (pathname.includes('\0')) return send(res, 400, 'bad request\n');
  // No dot-files or dot-directories (.git, .ci, ...): 404 as if absent.
  if (pathname.split('/').some((part) => part.startsWith('.'))) return send(res, 404, 'not found\n');
  if (pathname === '/') return send(res, 302, `see ${INDEX_PATH}\n`, { Location: INDEX_PATH });

  let file = resolve(root, '.' + pathname);
  if (!inside(root, file)) return send(res, 403, 'forbidden\n');
  let info;
  try {
    file = await realpath(file);
    if (!inside(root, file)) return send(res, 403, 'forbidden\n');
    info = await stat(file);
    if (info.isDirectory()) {
      if (!pathname.endsWith('/')) {
        const query = new URL(req.url, 'http://localhost').search;
        return send(res, 301, 'moved\n', { Location: encodeURI(pathname + '/') + query });
      }
      file = join(file, 'index.html');
      info = await stat(file);
    }
    if (!info.isFile()) throw new Error('not a file');
  } catch {
    return send(res, 404, 'not found\n');
  }

  res.writeHead(200, {
    'Content-Type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'Content-Length': info.size,
    // no-cache, not no-store: always fetched fresh, and pages may still enter the back/forward cache.
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  });
  if (req.method === 'HEAD') return res.end();
  const stream = createReadStream(file);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}

/**
 * Serves `root` over HTTP. Resolves once listening, with the base `url` (ending in `/`) and
 * `close()`, which stops the server and drops open connections.
 * @param {{root?: string, port?: number, host?: string}} [options]
 * @returns {Promise<{url: string, port: number, server: import('node:http').Server, close: () => Promise<void>}>}
 */
export async function serve({ root = '.', port = 8080, host = '127.0.0.1' } = {}) {
  const realRoot = await realpath(resolve(root));
  const server = createServer((req, res) => {
    handle(realRoot, req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const actualPort = server.address().port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${actualPort}/`,
    port: actualPort,
    server,
    close: () =>
      new Promise((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

function parseArgs(argv) {
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const opts = { root: repoRoot, port: Number(process.env.PORT || 8080), host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const [key, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (key === '--root') opts.root = value();
    else if (key === '--port') opts.port = Number(value());
    else if (key === '--host') opts.host = value();
    else {
      console.error(`usage: node scripts/serve.mjs [--root DIR] [--port N] [--host H]`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    console.error(`serve: bad port`);
    process.exit(2);
  }
  return opts;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const opts = parseArgs(process.argv.slice(2));
  let running;
  try {
    running = await serve(opts);
  } catch (e) {
    console.error(`serve: cannot listen on ${opts.host}:${opts.port}: ${e.message}`);
    process.exit(1);
  }
  console.log(`tabbit demo: ${running.url}${INDEX_PATH.slice(1)}`);
  console.log(`(serving ${opts.root}; Ctrl-C to stop)`);
  const stop = () => running.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
