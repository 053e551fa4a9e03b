// src/util: small shared pieces with no knowledge of any role.
//   log.ts      pino logger with a component field
//   leveldb.ts  a LevelDB batch without abstract-level's cloning
//   malloc.ts   glibc malloc settings for the processes PolyFS starts
//   heap.ts     V8's heap setting for the same processes
export { logger, rootLogger, setLogLevel } from './log'
export type { Logger } from './log'
export { rawBatch } from './leveldb'
export type { BatchOp } from './leveldb'
export { MALLOC_TUNABLES, withMallocTuning } from './malloc'
export { HEAP_FLAGS } from './heap'
