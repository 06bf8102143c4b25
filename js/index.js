// tabbit's main module: amqplib's API over the broker compiled to wasm. `connect()` loads
// the wasm on first use. The classes only turn the binding's answers into promises and events;
// every decision is in Rust (src/wasm/channel.rs and below). This module re-exports the parts:
// loader.js (the wasm, panic recovery), emitter.js, structured.js (structured values),
// persistence.js (persistent storage), connection.js (connect, Connection, StompEndpoint),
// channel.js (Channel, ConfirmChannel). The package ships them bundled into this one module
// (scripts/build-pkg).
import { version } from './loader.js';
import { Emitter } from './emitter.js';
import { STRUCTURED, encodeValue, decodeValue } from './structured.js';
import { connect, Connection, StompEndpoint } from './connection.js';
import { Channel, ConfirmChannel } from './channel.js';

export { version, Emitter, STRUCTURED, encodeValue, decodeValue, connect, Connection, StompEndpoint, Channel, ConfirmChannel };

/** For `import amqp from 'tabbit'; amqp.connect(…)`, as with amqplib. */
export default { connect, version, encodeValue, decodeValue, STRUCTURED, Connection, Channel, ConfirmChannel, Emitter };
