// src/kv: the transactional key-value layer the filesystem stands on.
//   keys.ts   the whole key layout (table at its head) and block math
//   types.ts  the KV / Txn interface, errors and limits (docs/kv.md)
//   local.ts  LocalKV: one classic-level store, optimistic transactions, group commit
//   wal.ts    LocalKV's write-ahead log: two preallocated files, fdatasync, recovery
//   remote.ts ClusterKV: the same interface over a cluster (routing, leaders, retries)
//   blockvalue.ts the block value layout and the merge of a partial block write (Txn.patch)
export { LocalKV } from './local'
export { ClusterKV } from './remote'
export type { ClusterKVOptions } from './remote'
export { KvError, KvErrorCode, LIMITS } from './types'
export type { Entry, KV, Range, ReadOptions, Txn, TxnOptions } from './types'
export { BLOCK_SIZE, CHUNK_BLOCKS, Kind, MAX_NAME_BYTES, blockSpan, hexKey, isBlockKey, keys, makeKey, murmur3, parseKey, prefixEnd, rangeMayHoldBlocks, readU64, u64 } from './keys'
export { BLOCK_PATCH_MAX, BLOCK_VALUE_HEADER, BLOCK_VALUE_TYPE, BLOCK_VALUE_VERSION, PatchError, checkPatch, encodeBlockValue, mergePatch, patchRange } from './blockvalue'
export type { PatchRange } from './blockvalue'
export { crc32cCombine, valueCrc } from './crc'
