// Types of 'tabbit/storage/durable-object' (js/storage/durable-object.js).
import type { StorageAdapter } from '../index.js';

/**
 * The part of a Durable Object's `ctx.storage` (Cloudflare's `DurableObjectStorage`) the
 * adapter uses; declared here so that the package needs no `@cloudflare/workers-types`.
 */
export interface DurableObjectStorageLike {
  /** SQLite-backed objects only; reading it throws on others. */
  readonly sql?: { exec(query: string, ...bindings: unknown[]): Iterable<Record<string, unknown>> };
  transactionSync?<T>(closure: () => T): T;
  transaction<T>(closure: (txn: any) => Promise<T>): Promise<T>;
  list(options?: { prefix?: string; startAfter?: string; limit?: number }): Promise<Map<string, unknown>>;
  sync(): Promise<void>;
}

export interface DurableObjectStorageOptions {
  /**
   * `'sql'`: one SQLite table (SQLite-backed classes: wrangler `new_sqlite_classes`);
   * `'kv'`: the key-value API (works on both kinds); `'auto'` (the default): `'sql'` where
   * `ctx.storage.sql` is available, else `'kv'`.
   */
  backend?: 'auto' | 'sql' | 'kv';
  /**
   * Names tabbit's table (`<prefix>_records`) or key prefix (`<prefix>:`), so that the object
   * can keep its own data beside it, or two brokers. 1-63 letters, digits or `_`, starting
   * with a letter. Default `'tabbit'`.
   */
  prefix?: string;
}

/** A tabbit `StorageAdapter` that keeps the broker's records in the Durable Object's storage. */
export interface DurableObjectStorageAdapter extends StorageAdapter {
  /** The backend in use. */
  readonly backend: 'sql' | 'kv';
}

/**
 * A `StorageAdapter` over a Durable Object's storage: each batch is written atomically
 * (`transactionSync` / `transaction`) and resolves after `ctx.storage.sync()`; values are cut
 * into chunks under the platform's size limits.
 *
 * @example
 * import { DurableObject } from 'cloudflare:workers';
 * import { connect } from 'tabbit';
 * import { durableObjectStorage } from 'tabbit/storage/durable-object';
 * import wasm from 'tabbit/tabbit_bg.wasm';
 * export class Broker extends DurableObject {
 *   conn = connect({ name: this.ctx.id.toString(), storage: durableObjectStorage(this.ctx.storage), wasm });
 * }
 */
export function durableObjectStorage(storage: DurableObjectStorageLike, options?: DurableObjectStorageOptions): DurableObjectStorageAdapter;

/** Bytes of a value per SQLite row. */
export const SQL_CHUNK: number;
/** Longest record key (UTF-8 bytes) on the SQLite backend. */
export const SQL_MAX_KEY: number;
/** Bytes of a value per key-value entry. */
export const KV_CHUNK: number;
/** Longest storage key (UTF-8 bytes) on the key-value backend. */
export const KV_MAX_KEY: number;
/** Keys per put() or delete() call on the key-value backend. */
export const KV_MAX_PER_CALL: number;
