// The transactional key-value interface the filesystem is written against (docs/kv.md).
// LocalKV implements it on one classic-level store; the cluster's client will implement it
// over regions. Keys and values are Buffers; ranges are [start, end).
import type { PatchRange } from './blockvalue'

export interface Entry {
  readonly key: Buffer
  readonly value: Buffer
}

export interface Range {
  readonly start: Buffer
  readonly end: Buffer
  /** At most this many entries (all of them when absent). */
  readonly limit?: number
}

/** Reads see the transaction's own writes; writes are buffered until commit. put and del keep
 * the key and value Buffers they are given (no copy): the caller must not change them after. */
export interface Txn {
  get(key: Buffer): Promise<Buffer | undefined>
  scan(range: Range): Promise<Entry[]>
  put(key: Buffer, value: Buffer): void
  del(key: Buffer): void
  /** Writes `ranges` into the block value at `key` where the store holds it (docs/kv.md,
   * "Partial block writes"): the merge reads the key (its version joins the read set) without
   * sending it to this client. The key may not be read, put or deleted in the same
   * transaction. Kept, not copied, like put's value. */
  patch(key: Buffer, ranges: readonly PatchRange[]): void
}

export interface TxnOptions {
  /** Attempts before giving up with CONFLICT (default 64). */
  readonly maxAttempts?: number
  /** Make this commit durable against power loss before resolving (a synced write). */
  readonly sync?: boolean
}

/** How a read outside a transaction may be answered. */
export interface ReadOptions {
  /** A store shared by several clients may answer from values it holds under a read lease
   * (docs/metadata-leases.md): as linearizable as a read at the leader. For small records read
   * often (entries, inodes), never file data. A store of one client ignores it. */
  readonly lease?: boolean
  /** With lease: the range a key belongs to (a directory entry's directory), for a lease on
   * the whole range, which also answers keys that do not exist (docs/metadata-leases.md,
   * "Directory leases"). A store of one client ignores it. */
  readonly rangeOf?: (key: Buffer) => { start: Buffer; end: Buffer } | undefined
}

export interface KV {
  get(key: Buffer, o?: ReadOptions): Promise<Buffer | undefined>
  /** A get of each key, made concurrently; the answers in the order of `keys` (docs/kv.md).
   * At most LIMITS.getManyKeys keys. */
  getMany(keys: readonly Buffer[], o?: ReadOptions): Promise<(Buffer | undefined)[]>
  scan(range: Range): Promise<Entry[]>
  /** Runs fn in a serializable transaction, re-running it on conflict; fn must only use tx. */
  txn<T>(fn: (tx: Txn) => Promise<T>, opts?: TxnOptions): Promise<T>
  /** Resolves when every commit acknowledged before the call is durable on disk. */
  sync(): Promise<void>
  close(): Promise<void>
  /** Bytes used and available for statfs. */
  usage(): Promise<{ usedBytes: number; freeBytes: number; totalBytes: number }>
}

export const KvErrorCode = {
  CONFLICT: 'CONFLICT',
  CLOSED: 'CLOSED',
  IO: 'IO',
  TOO_LARGE: 'TOO_LARGE',
  /** The cluster could not serve the operation in time (no leader, nodes unreachable). */
  UNAVAILABLE: 'UNAVAILABLE',
} as const
export type KvErrorCode = (typeof KvErrorCode)[keyof typeof KvErrorCode]

export class KvError extends Error {
  constructor(
    readonly code: KvErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`)
    this.name = 'KvError'
  }
}

export const LIMITS = {
  keyBytes: 4096,
  valueBytes: 1024 * 1024,
  txnWriteBytes: 64 * 1024 * 1024,
  defaultAttempts: 64,
  getManyKeys: 1024,
} as const
