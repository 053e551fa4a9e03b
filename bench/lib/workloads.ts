// The workloads: fio for the data rows, bench/lib/meta-worker.ts (a separate process) for the
// metadata rows, bench/lib/dbrows.ts for SQLite and PostgreSQL. Each row is bounded in count (sizes) and in time (fio --runtime, worker limit).
import * as path from 'node:path'
import { dropCaches, run, sleep } from './proc'

export interface Sizes {
  /** Sequential file size, bytes. */
  seqBytes: number
  /** Time cap of each sequential fio job, seconds (fio stops early; bandwidth stays valid). */
  seqRuntimeSec: number
  /** Runtime of each random fio job, seconds; also capped at one pass over the file. */
  randRuntimeSec: number
  files: number
  dirs: number
  /** Time cap of each metadata phase, ms. */
  metaLimitMs: number
  /** Operations of each phase of the untimed warm-up pass before the metadata rows, and its time cap per phase, ms. */
  warmupOps: number
  warmupLimitMs: number
}

export const FULL: Sizes = { seqBytes: 1 << 30, seqRuntimeSec: 180, randRuntimeSec: 30, files: 10_000, dirs: 2_000, metaLimitMs: 60_000, warmupOps: 2_000, warmupLimitMs: 10_000 }
export const QUICK: Sizes = { seqBytes: 256 << 20, seqRuntimeSec: 30, randRuntimeSec: 4, files: 2_000, dirs: 1_000, metaLimitMs: 15_000, warmupOps: 1_000, warmupLimitMs: 5_000 }

export type Unit = 'MB/s' | 'IOPS' | 'ops/s' | 'rows/s' | 'tps'
export interface RowDef { id: string; label: string; unit: Unit; kind: 'data' | 'meta' | 'db' }

export const ROWS: RowDef[] = [
  { id: 'seqwrite', label: 'seq write 1 MiB blocks (+end fsync)', unit: 'MB/s', kind: 'data' },
  { id: 'seqread', label: 'seq read 1 MiB blocks (cold)', unit: 'MB/s', kind: 'data' },
  { id: 'randwrite', label: '4 KiB rand write, fsync each', unit: 'IOPS', kind: 'data' },
  { id: 'randread', label: '4 KiB rand read (cold)', unit: 'IOPS', kind: 'data' },
  { id: 'randverify', label: '4 KiB rand write, crc32c verified cold', unit: 'IOPS', kind: 'data' },
  { id: 'create', label: 'create+write 4 KiB+close', unit: 'ops/s', kind: 'meta' },
  { id: 'stat', label: 'stat', unit: 'ops/s', kind: 'meta' },
  { id: 'read', label: 'open+read 4 KiB+close', unit: 'ops/s', kind: 'meta' },
  { id: 'delete', label: 'unlink', unit: 'ops/s', kind: 'meta' },
  { id: 'mkdir', label: 'mkdir', unit: 'ops/s', kind: 'meta' },
  { id: 'rename', label: 'rename dir', unit: 'ops/s', kind: 'meta' },
  { id: 'rmdir', label: 'rmdir', unit: 'ops/s', kind: 'meta' },
  { id: 'sqlite-delete', label: 'SQLite inserts, rollback journal, sync=FULL', unit: 'rows/s', kind: 'db' },
  { id: 'sqlite-wal', label: 'SQLite inserts, WAL, sync=FULL', unit: 'rows/s', kind: 'db' },
  { id: 'pgbench', label: 'pgbench -c 4 -j 2 (PostgreSQL 15, fsync on)', unit: 'tps', kind: 'db' },
]

export interface Measure {
  value: number | null
  /** What was actually done (bytes or ops) and in how long: a truncated phase is visible. */
  done: number
  seconds: number
  /** What the row asked for (bytes or ops) when it is bounded by count; done < requested: stopped at its time cap. */
  requested?: number
  error?: string
  /** What else the row measured on the way (pgbench: how long initdb and pgbench -i took). */
  note?: string
}

/** Called right before and right after a data row's fio job (after the cache drop). */
export interface RowHooks {
  before?(row: string): Promise<void>
  after?(row: string, m: Measure): Promise<void>
}

type Log = (s: string) => void

interface FioJob { error: number; read: FioDir; write: FioDir; job_runtime: number }
interface FioDir { io_bytes: number; bw_bytes: number; iops: number; runtime: number }

async function fio(name: string, file: string, args: string[], timeoutSec: number): Promise<{ job: FioJob } | { error: string }> {
  const r = await run(
    'fio',
    [`--name=${name}`, `--filename=${file}`, '--ioengine=psync', '--direct=0', '--fallocate=none', '--output-format=json', '--group_reporting', ...args],
    (timeoutSec + 120) * 1000,
  )
  // fio may print "laying out"/warnings before the JSON document.
  const i = r.stdout.indexOf('{')
  try {
    const doc = JSON.parse(r.stdout.slice(i)) as { jobs: FioJob[] }
    const job = doc.jobs[0]
    if (!job) return { error: 'fio: no job in output' }
    if (job.error) return { error: `fio error ${job.error}: ${r.stderr.trim().slice(0, 300)}` }
    return { job }
  } catch {
    return { error: `fio exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}` }
  }
}

const fioErr = (e: string): Measure => ({ value: null, done: 0, seconds: 0, error: e })

/** The data rows, in order, on one mounted directory. Returns row id -> measure. */
export async function dataRows(dir: string, s: Sizes, want: Set<string>, log: Log, hooks: RowHooks = {}): Promise<Record<string, Measure>> {
  const out: Record<string, Measure> = {}
  const file = path.join(dir, 'fio.seq')
  const size = `--size=${s.seqBytes}`
  // The sequential write lays the file down for every later data row, so it always runs.
  log('  seqwrite')
  await dropCaches()
  await hooks.before?.('seqwrite')
  let r = await fio('seqwrite', file, ['--rw=write', '--bs=1M', size, '--end_fsync=1', `--runtime=${s.seqRuntimeSec}`], s.seqRuntimeSec)
  if ('error' in r) {
    out.seqwrite = fioErr(r.error)
    return out
  }
  // fio's write runtime includes the end_fsync.
  out.seqwrite = { value: r.job.write.bw_bytes / 1e6, done: r.job.write.io_bytes, seconds: r.job.write.runtime / 1000, requested: s.seqBytes }
  await hooks.after?.('seqwrite', out.seqwrite)
  if (r.job.write.io_bytes < s.seqBytes) {
    // Capped by runtime: the later rows still need a full-size file.
    log(`  seqwrite stopped at ${r.job.write.io_bytes} bytes (runtime cap); later rows use a file of that size`)
  }
  const have = `--size=${Math.max(4096, Math.floor(r.job.write.io_bytes / 4096) * 4096)}`
  if (want.has('seqread')) {
    log('  seqread')
    await dropCaches()
    r = await fio('seqread', file, ['--rw=read', '--bs=1M', have, `--runtime=${s.seqRuntimeSec}`], s.seqRuntimeSec)
    out.seqread = 'error' in r ? fioErr(r.error) : { value: r.job.read.bw_bytes / 1e6, done: r.job.read.io_bytes, seconds: r.job.read.runtime / 1000, requested: Number(have.slice(7)) }
  }
  // Random rows: at most one pass over the file (no block twice) and at most randRuntimeSec.
  const rand = ['--bs=4k', have, `--io_size=${have.slice(7)}`, `--runtime=${s.randRuntimeSec}`, '--randrepeat=1']
  if (want.has('randread')) {
    log('  randread')
    await dropCaches()
    r = await fio('randread', file, ['--rw=randread', ...rand], s.randRuntimeSec)
    out.randread = 'error' in r ? fioErr(r.error) : { value: r.job.read.iops, done: r.job.read.io_bytes / 4096, seconds: r.job.read.runtime / 1000 }
  }
  if (want.has('randwrite')) {
    log('  randwrite')
    await dropCaches()
    r = await fio('randwrite', file, ['--rw=randwrite', '--fsync=1', ...rand], s.randRuntimeSec)
    out.randwrite = 'error' in r ? fioErr(r.error) : { value: r.job.write.iops, done: r.job.write.io_bytes / 4096, seconds: r.job.write.runtime / 1000 }
  }
  if (want.has('randverify')) {
    log('  randverify')
    out.randverify = await randVerify(path.join(dir, 'fio.verify'), s)
  }
  return out
}

/** Bytes the verify row writes and reads back: a whole pass, so no time cap (fio verifies every
 * block it would have written). */
const verifyBytes = (s: Sizes) => Math.min(128 << 20, Math.max(16 << 20, s.seqBytes / 8))

/**
 * fio writes random 4 KiB blocks, each with a crc32c header (verify=crc32c), and fsyncs at the
 * end; then the caches are dropped and a second fio (verify_only, the same seed) reads every
 * block back and checks it. The figure is the write's IOPS; the note says what the read-back
 * found. A mismatch is the row's error: fio exits with a verify error.
 */
async function randVerify(file: string, s: Sizes): Promise<Measure> {
  const bytes = verifyBytes(s)
  const args = ['--rw=randwrite', '--bs=4k', `--size=${bytes}`, '--randrepeat=1', '--verify=crc32c', '--verify_fatal=1', '--verify_state_save=0']
  const budget = Math.max(60, s.seqRuntimeSec)
  await dropCaches()
  const w = await fio('randverify-write', file, [...args, '--do_verify=0', '--end_fsync=1'], budget)
  if ('error' in w) return fioErr(w.error)
  await dropCaches()
  const v = await fio('randverify-read', file, [...args, '--verify_only'], budget)
  if ('error' in v) return { ...fioErr(`read-back verify FAILED: ${v.error}`), done: w.job.write.io_bytes / 4096 }
  const blocks = w.job.write.io_bytes / 4096
  const readSec = v.job.job_runtime / 1000
  return {
    value: w.job.write.iops,
    done: blocks,
    seconds: w.job.write.runtime / 1000,
    requested: bytes / 4096,
    note: `${blocks.toLocaleString('en-US')} blocks written and read back cold, every crc32c matched (read-back ${readSec > 0 ? Math.round(blocks / readSec).toLocaleString('en-US') : '?'} blocks/s)`,
  }
}

const META_ORDER = ['create', 'stat', 'read', 'delete', 'mkdir', 'rename', 'rmdir'] as const

/**
 * An untimed pass of every metadata phase (at most warmupOps each, warmupLimitMs each) in a
 * directory of its own, removed by its own delete and rmdir phases, before the timed rows: the
 * same for every system. A long-running file server is measured, not its first seconds (a
 * JIT's warm-up, for PolyFS; caches filling, for any of them), as fio's ramp_time does for
 * data. bench/README.md.
 */
async function warmUp(dir: string, s: Sizes, log: Log): Promise<void> {
  if (s.warmupOps <= 0) return
  const worker = path.join(__dirname, 'meta-worker.js')
  const wdir = path.join(dir, 'warmup')
  if ((await run('mkdir', [wdir], 10_000)).code !== 0) return
  log(`  metadata warm-up (untimed, up to ${s.warmupOps} ops or ${s.warmupLimitMs / 1000} s per phase)`)
  let n = s.warmupOps
  for (const phase of META_ORDER) {
    if (phase === 'create' || phase === 'mkdir') n = s.warmupOps
    const r = await run(process.execPath, [worker, phase, wdir, String(n), String(s.warmupLimitMs)], s.warmupLimitMs + 60_000)
    try {
      const j = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { ops: number }
      if (phase === 'create' || phase === 'mkdir' || phase === 'rename') n = j.ops
    } catch {
      log(`  warm-up ${phase}: worker exit ${r.code}: ${r.stderr.trim().slice(0, 200)}`)
    }
  }
  // Whatever a capped phase left behind (files not deleted, directories not removed).
  await run('rm', ['-rf', wdir], 120_000)
}

/**
 * The metadata rows in one fresh directory. Every phase starts cold: sync, drop caches, and wait
 * out the 1 s FUSE attribute/entry timeouts, so stat and lookup reach the filesystem.
 */
export async function metaRows(dir: string, s: Sizes, want: Set<string>, log: Log): Promise<Record<string, Measure>> {
  const out: Record<string, Measure> = {}
  const worker = path.join(__dirname, 'meta-worker.js')
  const mdir = path.join(dir, 'meta')
  const mk = await run('mkdir', [mdir], 10_000)
  if (mk.code !== 0) {
    for (const p of META_ORDER) if (want.has(p)) out[p] = { value: null, done: 0, seconds: 0, error: `mkdir: ${mk.stderr.trim()}` }
    return out
  }
  await warmUp(dir, s, log)
  let files = s.files
  let dirs = s.dirs
  for (const phase of META_ORDER) {
    // Phases that set up names for later ones always run (create for stat/read/delete, etc.).
    const needed = want.has(phase) || (phase === 'create' && ['stat', 'read', 'delete'].some((p) => want.has(p))) ||
      (phase === 'delete') || (phase === 'mkdir' && ['rename', 'rmdir'].some((p) => want.has(p))) ||
      (phase === 'rename' && want.has('rmdir'))
    if (!needed) continue
    const isDir = phase === 'mkdir' || phase === 'rename' || phase === 'rmdir'
    const count = isDir ? dirs : files
    log(`  ${phase} x${count}`)
    await dropCaches()
    await sleep(1100)
    const r = await run(process.execPath, [worker, phase, mdir, String(count), String(s.metaLimitMs)], s.metaLimitMs + 60_000)
    let m: Measure
    try {
      const j = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { ops: number; seconds: number; errors: number; firstError: string | null }
      m = { value: j.ops / j.seconds, done: j.ops, seconds: j.seconds, requested: count }
      if (j.errors) m.error = `${j.errors} errors, first: ${j.firstError}`
      // Later phases act on the names that exist.
      if (phase === 'create') files = j.ops
      if (phase === 'mkdir') dirs = j.ops
      if (phase === 'rename') dirs = j.ops
    } catch {
      m = { value: null, done: 0, seconds: r.ms / 1000, error: `worker exit ${r.code}: ${r.stderr.trim().slice(0, 300)}` }
    }
    if (want.has(phase)) out[phase] = m
  }
  return out
}
