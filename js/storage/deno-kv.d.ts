// Types of 'tabbit/storage/deno-kv' (js/storage/deno-kv.js): a StorageAdapter over Deno KV.
import type { StorageAdapter } from '../index.js';

/** A Deno KV key part, as `Deno.KvKeyPart` (bigints are not taken in a prefix). */
export type DenoKvKeyPart = string | number | boolean | Uint8Array;

/**
 * What the adapter uses of a `Deno.Kv` (from `Deno.openKv(path?)`, with `--unstable-kv`); the
 * arguments are loose so that Deno's own `Deno.Kv` type fits.
 */
export interface DenoKvLike {
  atomic(): {
    check(check: any): unknown;
    set(key: any, value: any): unknown;
    delete(key: any): unknown;
    commit(): Promise<{ ok: boolean; versionstamp?: string }>;
  };
  list(selector: any, options?: any): AsyncIterable<{ key: readonly unknown[]; value: unknown }>;
}

export interface DenoKvStorageOptions {
  /**
   * Where the broker's records live in the KV. Default `['tabbit']`. Two brokers on one KV need
   * two prefixes: the second one to load() a prefix makes the first one's writes fail.
   */
  prefix?: readonly DenoKvKeyPart[];
}

/** Deno KV's limits in Deno 2.x, which the adapter keeps within (values chunked, big batches staged). */
export declare const DENO_KV_LIMITS: Readonly<{
  /** Largest value, bytes: 65,536. */
  valueBytes: number;
  /** Largest key, encoded: 2,048 bytes. */
  keyBytes: number;
  /** Mutations in one atomic commit: 1,000. */
  mutations: number;
  /** Checks in one atomic commit: 100. */
  checks: number;
  /** Bytes of one atomic commit: 819,200. */
  commitBytes: number;
  /** Bytes of the keys set by one atomic commit: 81,920. */
  commitKeyBytes: number;
}>;

/**
 * A `StorageAdapter` for `connect({ storage })` over a Deno KV: each batch atomic and durable
 * (committed) before its write resolves, whatever its size.
 *
 *     const kv = await Deno.openKv('./broker.kv');
 *     const conn = await connect({ storage: denoKvStorage(kv) });
 */
export declare function denoKvStorage(kv: DenoKvLike, options?: DenoKvStorageOptions): StorageAdapter;
