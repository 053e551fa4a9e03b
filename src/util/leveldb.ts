// One LevelDB batch without abstract-level's per-operation cloning and re-encoding. Our keys
// and values are Buffers already, so classic-level's own _batch does the same work for less
// CPU (the profile showed the cloning at a quarter of a metadata operation's time, and ~6% of a
// node's time under a sequential write). classic-level is pinned to an exact version.
import type { ClassicLevel } from 'classic-level'

export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }

export function rawBatch(db: ClassicLevel<Buffer, Buffer>, ops: BatchOp[], sync: boolean): Promise<void> {
  const raw = db as unknown as { _batch(ops: BatchOp[], options: { sync: boolean }): Promise<void> }
  return raw._batch(ops, { sync })
}
