// src/fs: the POSIX filesystem, written once over the KV interface (no FUSE, no network).
//   filesystem.ts  FileSystem: every operation, path based, ctx first
//   nodes.ts       where an inode's attributes live; attribute and permission rules
//   files.ts       open files, write-back buffer, reads with crc32c checks, truncate
//   records.ts     the value codecs (docs/storage-format.md)
//   errors.ts      FsError with the errno that reaches the kernel
//   types.ts       Ctx, Stat, mode bits, Clock
export { FileSystem, ROOT_INO } from './filesystem'
export type { FsOptions } from './filesystem'
export { FsError, errnoNumber } from './errors'
export type { Errno } from './errors'
export { CorruptRecordError } from './records'
import * as records from './records'
/** The record codecs, as one namespace (tests, tools). */
export { records }
export { ROOT_CTX, S, realClock } from './types'
export type { Clock, Ctx, Stat, StatFs, TimeArg, Timespec } from './types'
