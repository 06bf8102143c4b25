// A worker that serves Web-STOMP from the package's Durable Object class, TabbitBroker
// ('tabbit/durable-object': pkg/durable-object.js, as scripts/build-pkg ships it), on
// hibernatable WebSockets. tests/node/edge-do-stomp.test.mjs and bench/edge-stomp.mjs drive it:
//
//   GET  /ws        a WebSocket upgrade: STOMP, handed to the object `main` (users alice/secret, bob/hunter2)
//   POST /evict     evicts the object from memory with its sockets kept open (hibernated), as the
//                   runtime does with an idle object: workerd:unsafe's evict() (workerd's
//                   src/workerd/api/unsafe.h: "simulating the runtime tearing it down when it goes
//                   idle"; needs the compatibility flag unsafe_module and `workerd serve --experimental`)
//   GET  /stats     the broker's stats (over RPC)
//   /lean/ws, /lean/evict, /lean/stats   the same on LeanBroker, the class with
//                   `keepAliveWhileUnacked: false` (an object holding unacked deliveries does not
//                   keep itself in memory, so evict() can take it as a deploy or a crash would)
//
// Anything else gets a 404 without touching the object, so that "is workerd up" probes wake none.
import { TabbitBroker } from './pkg/durable-object.js';
import unsafe from 'workerd:unsafe';

const users = new Map([
  ['alice', 'secret'],
  ['bob', 'hunter2'],
]);

export class Broker extends TabbitBroker {
  static options = {
    stompPath: '/ws',
    authenticate: (login, passcode) => users.get(login) === passcode,
    stompLimits: { maxSubscriptions: 8 },
  };
}

/** Broker that may hibernate with deliveries unacked (do-stomp-run.mjs declares both classes). */
export class LeanBroker extends Broker {
  static options = { ...Broker.options, keepAliveWhileUnacked: false };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const lean = url.pathname.startsWith('/lean/');
    const pathname = lean ? url.pathname.slice('/lean'.length) : url.pathname;
    const ns = lean ? env.BROKER_LEAN : env.BROKER;
    if (!ns) return new Response(`no binding for ${lean ? 'LeanBroker' : 'Broker'} in this config\n`, { status: 404 });
    const stub = () => ns.get(ns.idFromName('main'));
    // The object serves STOMP on its stompPath, '/ws'.
    if (pathname === '/ws') return stub().fetch(lean ? new Request(new URL('/ws', url), request) : request);
    if (pathname === '/stats') return Response.json(await stub().stats());
    if (pathname === '/evict' && request.method === 'POST') {
      try {
        await unsafe.evict(stub());
        return new Response('evicted\n');
      } catch (e) {
        return new Response(`${e?.message ?? e}\n`, { status: 409 });
      }
    }
    return new Response('GET /ws (STOMP), POST /evict, GET /stats, each also under /lean/\n', { status: 404 });
  },
};
