// One LevelDB batch without abstract-level's per-operation cloning and re-encoding. Our keys
// and values are Buffers already, so classic-level's own _batch does the same work for less
// CPU (the profile showed the cloning at a quarter of a metadata operation's time, and ~6% of a
// node's time under a sequential write). classic-level is pinned to an exact version.
// Every store write of a process goes through here (the Raft log, applied region data, the
// master's state, the local store), so this is where the store metrics are taken.
import type { ClassicLevel } from 'classic-level'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { counterCell, histogramCell, metrics } from '../observe/metrics'

export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer }

const syncedBatches = counterCell(metrics.storeBatches, { sync: 'true' })
const unsyncedBatches = counterCell(metrics.storeBatches, { sync: 'false' })
const batchOps = histogramCell(metrics.storeBatchOps)
const writtenBytes = counterCell(metrics.storeWrittenBytes)
const fsyncs = counterCell(metrics.storeFsyncs)
const syncSeconds = histogramCell(metrics.storeFsyncSeconds)

export function rawBatch(db: ClassicLevel<Buffer, Buffer>, ops: BatchOp[], sync: boolean): Promise<void> {
  const raw = db as unknown as { _batch(ops: BatchOp[], options: { sync: boolean }): Promise<void> }
  let bytes = 0
  for (const op of ops) bytes += op.type === 'put' ? op.key.length + op.value.length : op.key.length
  writtenBytes.inc(bytes)
  batchOps.observe(ops.length)
  if (!sync) {
    unsyncedBatches.inc()
    return raw._batch(ops, { sync })
  }
  syncedBatches.inc()
  fsyncs.inc()
  const t0 = performance.now()
  return raw._batch(ops, { sync }).then(() => syncSeconds.observe((performance.now() - t0) / 1000))
}

/** The Raft log segments (src/raft/segments.ts) count their writes and fdatasyncs here too, so
 * that the store metrics keep covering every durable write of the node. */
export function noteLogWrite(bytes: number, fsyncSeconds: number | undefined): void {
  writtenBytes.inc(bytes)
  if (fsyncSeconds === undefined) return
  fsyncs.inc()
  syncSeconds.observe(fsyncSeconds)
}

/** Bytes of a LevelDB database on disk: its tables as LevelDB counts them from its file
 * metadata (no stat per table, however many there are), plus every other file of its
 * directory (the write-ahead log, the manifest) and of `extraDirs`. Asynchronous: nothing
 * here blocks the event loop. */
export async function diskBytes(db: ClassicLevel<Buffer, Buffer>, extraDirs: readonly string[] = []): Promise<number> {
  let total = await db.approximateSize(Buffer.alloc(0), Buffer.from([0xff]))
  for (const dir of [db.location, ...extraDirs]) {
    for (const name of await readdir(dir)) {
      if (dir === db.location && (name.endsWith('.ldb') || name.endsWith('.sst'))) continue
      try {
        total += (await stat(join(dir, name))).size
      } catch {
        // removed meanwhile (a rotated log, a freed segment)
      }
    }
  }
  return total
}
