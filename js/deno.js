// 'tabbit/deno': serveStomp(), a Web-STOMP endpoint over Deno.serve of a broker this Deno process
// hosts (docs/edge-deno.md). The STOMP protocol is in the wasm (conn.stompEndpoint(), which
// src/bridge/server.rs serves); this module only does the HTTP part: it upgrades WebSocket
// requests on one path and hands the sockets over.
import { connect } from './index.js';

/**
 * The WebSocket subprotocols of STOMP, the highest version first. As RabbitMQ's Web-STOMP
 * (rabbit_web_stomp_handler.erl, filter_stomp_protocols): the highest one the client offers is
 * chosen; a client that offers none is served without a subprotocol.
 */
const STOMP_PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

function failed(message, code = 406) {
  const e = new Error(message);
  e.code = code;
  return e;
}

/**
 * Connects to the broker (`connect()`'s options: storage, name, limits, wasm, …; `mesh` defaults
 * to false) and serves Web-STOMP on `ws://hostname:port/path` (port 15674 and path '/ws' by
 * default, as RabbitMQ's Web-STOMP). `authenticate`, `allowAnonymous` and `stompLimits` are
 * `conn.stompEndpoint()`'s options; `fetch(request)` answers other paths (default: 404);
 * `onListen` and `signal` go to Deno.serve.
 */
export async function serveStomp(options = {}) {
  if (typeof Deno !== 'object' || typeof Deno.serve !== 'function') {
    throw failed("serveStomp() runs in Deno (it serves with Deno.serve): elsewhere, use conn.stompEndpoint() with your server's WebSockets", 540);
  }
  if (typeof options !== 'object' || options === null) throw failed('serveStomp() takes options such as { storage, authenticate }');
  const {
    port = 15674, hostname, path = '/ws', authenticate, allowAnonymous, stompLimits, fetch, onListen, signal, ...connectOptions
  } = options;
  if (typeof path !== 'string' || !path.startsWith('/')) throw failed(`serveStomp(): 'path' must start with '/', as '/ws' (got ${path})`);
  if (fetch !== undefined && typeof fetch !== 'function') throw failed("serveStomp(): 'fetch' must be a function (request) => Response");
  const connection = await connect({ mesh: false, ...connectOptions });
  let endpoint;
  try {
    endpoint = connection.stompEndpoint({ authenticate, allowAnonymous, limits: stompLimits });
  } catch (e) {
    await connection.close();
    throw e;
  }
  const handler = (request) => {
    if (new URL(request.url).pathname !== path) {
      return fetch ? fetch(request) : new Response(`Not found: the Web-STOMP endpoint is ${path}\n`, { status: 404 });
    }
    if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
      return new Response(`${path} is a Web-STOMP endpoint: open a WebSocket to it, with subprotocol v12.stomp\n`, {
        status: 426,
        headers: { upgrade: 'websocket' },
      });
    }
    const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim());
    const protocol = STOMP_PROTOCOLS.find((p) => offered.includes(p));
    // The header is set here rather than with upgradeWebSocket's `protocol` option: deno 2.9.6
    // splits the offered list on ', ' only, and refuses a list written 'a,b' (as the npm
    // package ws writes it) with "not in the request's protocol list" (checked here).
    const { socket, response } = Deno.upgradeWebSocket(request);
    if (protocol) response.headers.set('sec-websocket-protocol', protocol);
    endpoint.accept(socket, request);
    return response;
  };
  let server;
  try {
    server = Deno.serve({ port, hostname, signal, ...(onListen ? { onListen } : {}) }, handler);
  } catch (e) {
    await connection.close();
    throw e;
  }
  let closing;
  return {
    connection,
    endpoint,
    server,
    /** Ends every STOMP session (an ERROR frame says the broker is closing), the server, and the connection. */
    close() {
      closing ??= (async () => {
        await connection.close();
        await server.shutdown();
      })();
      return closing;
    },
  };
}

export default { serveStomp };
