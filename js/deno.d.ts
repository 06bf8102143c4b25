// Types of 'tabbit/deno' (js/deno.js): serveStomp(), a Web-STOMP endpoint over Deno.serve.
import type { Options, Connection, StompEndpoint, StompEndpointOptions, StompLimits } from './index.js';

export interface ServeStompOptions extends Options.Connect {
  /** Default 15674, RabbitMQ's Web-STOMP port. */
  port?: number;
  /** Default: Deno.serve's (0.0.0.0). */
  hostname?: string;
  /** Where the WebSocket is upgraded (default '/ws', as RabbitMQ's Web-STOMP). */
  path?: string;
  authenticate?: StompEndpointOptions['authenticate'];
  allowAnonymous?: boolean;
  /** The endpoint's limits (`limits` is the broker's, as for connect()). */
  stompLimits?: StompLimits;
  /** Answers requests to other paths (default: 404). */
  fetch?: (request: Request) => Response | Promise<Response>;
  /** Deno.serve's onListen (default: Deno's, which logs the address). */
  onListen?: (addr: { hostname: string; port: number }) => void;
  signal?: AbortSignal;
}

export interface StompServer {
  /** The connection the endpoint serves from: the same broker, for the JS API. */
  connection: Connection;
  endpoint: StompEndpoint;
  /** Deno.serve's server (`addr`, `finished`, `shutdown()`). */
  server: { readonly addr: { hostname: string; port: number }; readonly finished: Promise<void>; shutdown(): Promise<void> };
  /** Ends every STOMP session (each gets an ERROR saying the broker is closing), then the connection and the server. */
  close(): Promise<void>;
}

/**
 * Connects to the broker with `options` (`mesh` false by default) and serves Web-STOMP over
 * Deno.serve. Throws 406 unless `authenticate` or `allowAnonymous: true` is given.
 */
export declare function serveStomp(options: ServeStompOptions): Promise<StompServer>;

declare const _default: { serveStomp: typeof serveStomp };
export default _default;
