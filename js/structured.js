// Structured values: publish(…, value, { structured: true }) sends any structured-cloneable
// value, encoded by encodeValue(); a consumer or get() with `structured` gets it back decoded
// (decodeValue) as `msg.value`. Content type STRUCTURED.
import { failed } from './errors.js';

/** The contentType of a message whose content is a structured value. */
export const STRUCTURED = 'application/x-tabbit-structured';

const T = { undef: 0, nul: 1, f: 2, t: 3, num: 4, big: 5, str: 6, date: 7, re: 8, arr: 9, obj: 10, map: 11, set: 12, buf: 13, view: 14, err: 15, ref: 16 };
const VIEWS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView];
const ERRORS = ['Error', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError', 'TypeError', 'URIError'];
const text = { enc: new TextEncoder(), dec: new TextDecoder() };

/**
 * Encodes what structuredClone() copies, as bytes: primitives (bigint included), Date, RegExp,
 * Array, plain objects, Map, Set, ArrayBuffer, typed arrays, DataView and Error, with shared
 * references and cycles kept. Anything else (a function, a symbol, a Blob, a DOM node) throws 406.
 */
export function encodeValue(value) {
  let buf = new Uint8Array(256);
  let dv = new DataView(buf.buffer);
  let at = 0;
  const seen = new Map();
  const room = (n) => {
    if (at + n <= buf.length) return;
    const next = new Uint8Array(Math.max(buf.length * 2, at + n));
    next.set(buf);
    buf = next;
    dv = new DataView(buf.buffer);
  };
  const byte = (b) => (room(1), (buf[at++] = b));
  const uint = (n) => {
    room(4);
    dv.setUint32(at, n);
    at += 4;
  };
  const bytes = (u8) => (uint(u8.length), room(u8.length), buf.set(u8, at), (at += u8.length));
  const str = (s) => bytes(text.enc.encode(s));
  const put = (v) => {
    switch (typeof v) {
      case 'undefined': return byte(T.undef);
      case 'boolean': return byte(v ? T.t : T.f);
      case 'number': return (byte(T.num), room(8), dv.setFloat64(at, v), (at += 8));
      case 'bigint': return (byte(T.big), str(v.toString()));
      case 'string': return (byte(T.str), str(v));
      case 'object': break;
      default: throw failed(`a ${typeof v} cannot be a structured message's content (it cannot be cloned)`, 406);
    }
    if (v === null) return byte(T.nul);
    if (seen.has(v)) return (byte(T.ref), uint(seen.get(v)));
    seen.set(v, seen.size);
    if (v instanceof Date) return (byte(T.date), room(8), dv.setFloat64(at, v.getTime()), (at += 8));
    if (v instanceof RegExp) return (byte(T.re), str(v.source), str(v.flags));
    if (v instanceof ArrayBuffer) return (byte(T.buf), bytes(new Uint8Array(v)));
    if (ArrayBuffer.isView(v)) {
      const kind = VIEWS.findIndex((K) => v instanceof K);
      if (kind < 0) throw failed(`a ${v.constructor?.name} cannot be a structured message's content`, 406);
      return (byte(T.view), byte(kind), bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
    }
    if (v instanceof Error) {
      return (byte(T.err), str(ERRORS.includes(v.name) ? v.name : 'Error'), str(String(v.message)), str(v.stack ?? ''));
    }
    if (Array.isArray(v)) {
      byte(T.arr);
      uint(v.length);
      for (let i = 0; i < v.length; i++) put(v[i]);
      return;
    }
    if (v instanceof Map) {
      byte(T.map);
      uint(v.size);
      for (const [k, x] of v) (put(k), put(x));
      return;
    }
    if (v instanceof Set) {
      byte(T.set);
      uint(v.size);
      for (const x of v) put(x);
      return;
    }
    const proto = Object.getPrototypeOf(v);
    const plain = proto === Object.prototype || proto === null;
    if (!plain && (typeof v.constructor !== 'function' || /^(Blob|File|ImageData|ImageBitmap|MessagePort|Node|Window|WeakMap|WeakSet|Promise)$/.test(v.constructor.name) || typeof Node === 'function' && v instanceof Node)) {
      throw failed(`a ${v.constructor?.name ?? 'value of this kind'} cannot be a structured message's content`, 406);
    }
    const keys = Object.keys(v);
    byte(T.obj);
    uint(keys.length);
    for (const k of keys) (str(k), put(v[k]));
  };
  put(value);
  return buf.slice(0, at);
}

/** Decodes encodeValue()'s bytes; throws 406 on bytes it did not write. */
export function decodeValue(bytes) {
  // A plain view: a Buffer's slice() shares its memory, where Uint8Array's copies.
  bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const refs = [];
  const bad = () => failed('not a structured value: the bytes are cut short or corrupt', 406);
  const need = (n) => {
    if (at + n > bytes.length) throw bad();
  };
  const byte = () => (need(1), bytes[at++]);
  const uint = () => (need(4), (at += 4), dv.getUint32(at - 4));
  const raw = () => {
    const n = uint();
    need(n);
    return bytes.subarray(at, (at += n));
  };
  const str = () => text.dec.decode(raw());
  const f64 = () => (need(8), (at += 8), dv.getFloat64(at - 8));
  const keep = (v) => (refs.push(v), v);
  const get = () => {
    switch (byte()) {
      case T.undef: return undefined;
      case T.nul: return null;
      case T.f: return false;
      case T.t: return true;
      case T.num: return f64();
      case T.big: return BigInt(str());
      case T.str: return str();
      case T.date: return keep(new Date(f64()));
      case T.re: return keep(new RegExp(str(), str()));
      case T.buf: return keep(raw().slice().buffer);
      case T.view: {
        const K = VIEWS[byte()];
        if (!K) throw bad();
        const b = raw().slice().buffer;
        const n = K === DataView ? b.byteLength : b.byteLength / K.BYTES_PER_ELEMENT;
        if (!Number.isInteger(n)) throw bad();
        return keep(K === DataView ? new DataView(b) : new K(b));
      }
      case T.err: {
        const name = str();
        const E = globalThis[ERRORS.includes(name) ? name : 'Error'];
        const e = keep(new E(str()));
        e.stack = str();
        return e;
      }
      case T.arr: {
        const n = uint();
        need(n);
        const a = keep(new Array(n));
        for (let i = 0; i < n; i++) a[i] = get();
        return a;
      }
      case T.map: {
        const n = uint();
        const m = keep(new Map());
        for (let i = 0; i < n; i++) m.set(get(), get());
        return m;
      }
      case T.set: {
        const n = uint();
        const s = keep(new Set());
        for (let i = 0; i < n; i++) s.add(get());
        return s;
      }
      case T.obj: {
        const n = uint();
        const o = keep({});
        for (let i = 0; i < n; i++) {
          const k = str();
          Object.defineProperty(o, k, { value: get(), enumerable: true, writable: true, configurable: true });
        }
        return o;
      }
      case T.ref: {
        const i = uint();
        if (i >= refs.length) throw bad();
        return refs[i];
      }
      default:
        throw bad();
    }
  };
  const v = get();
  if (at !== bytes.length) throw bad();
  return v;
}

/** Publish options without `structured`, and the content to send. */
export function outgoing(content, options) {
  if (!options?.structured) return [content, options];
  const { structured, ...rest } = options;
  if (rest.contentType !== undefined && rest.contentType !== STRUCTURED) {
    throw failed(`a structured message's contentType is '${STRUCTURED}': leave contentType out`, 406);
  }
  return [encodeValue(content), { ...rest, contentType: STRUCTURED }];
}

/** With `structured`, a message that carries a structured value gets it decoded as `value`. */
export function incoming(msg, structured) {
  if (structured && msg && msg.properties.contentType === STRUCTURED) msg.value = decodeValue(msg.content);
  return msg;
}
