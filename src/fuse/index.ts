// src/fuse: the only module that imports fuse-native. It checks the mountpoint, mounts with
// the options a database needs, and translates every callback into a call on src/fs and
// every error into the errno the kernel gets. It holds no filesystem logic of its own.
//   index.ts  mount(), the option set, the op table, errno mapping, clean unmount
// fuse-native is patched (patches/, docs/fuse-native.md): handlers get the caller context
// first, 64-bit inode numbers, nanosecond times, UTIME_NOW/UTIME_OMIT, no per-op timeout.
import { execFile } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { constants as osConstants } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { KvError } from '../kv'
import { CorruptRecordError, Ctx, FileSystem, FsError, Stat, TimeArg, errnoNumber } from '../fs'
import { counterCell, histogramCell, metrics, series, type CounterCell, type HistogramCell } from '../observe'
import { Logger, logger } from '../util'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const Fuse = require('fuse-native')

const run = promisify(execFile)

export interface MountOptions {
  /** Kernel attribute and entry cache lifetime, seconds (short: other hosts change things). */
  attrTimeoutSec?: number
  entryTimeoutSec?: number
  /** Let other users (containers) use the mount: on by default. */
  allowOther?: boolean
  /** The mountpoint may itself be a mount point and hold entries (Docker's propagated mount: a
   * bind mount whose old contents our mount hides); it must still exist and be a directory. */
  overMount?: boolean
  /** libfuse debug output on stderr. */
  debug?: boolean
  log?: Logger
}

export interface Mounted {
  readonly mountpoint: string
  /** Commits buffered data, syncs, unmounts and closes the filesystem. */
  close(): Promise<void>
}

type NativeCtx = { uid: number; gid: number; pid: number }
type Cb = (...args: any[]) => void

/** Why a mountpoint cannot be used, as a sentence for the CLI; null when it can. */
export async function checkMountpoint(mountpoint: string): Promise<string | null> {
  const problem = await checkDirectory(mountpoint)
  if (problem) return problem
  const mounts = await fsp.readFile('/proc/self/mounts', 'utf8')
  const abs = path.resolve(mountpoint)
  if (mounts.split('\n').some((l) => l.split(' ')[1] === abs)) return `mountpoint ${mountpoint} is busy: something is already mounted there`
  const entries = await fsp.readdir(mountpoint)
  if (entries.length > 0) return `mountpoint ${mountpoint} is not empty (${entries.length} entries); use an empty directory`
  return null
}

/** Why `mountpoint` is not an existing, live directory; null when it is. */
async function checkDirectory(mountpoint: string): Promise<string | null> {
  let st
  try {
    st = await fsp.stat(mountpoint)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return `mountpoint ${mountpoint} does not exist (create it first)`
    if (code === 'ENOTCONN') return `mountpoint ${mountpoint} is a dead FUSE mount; run: fusermount -u ${mountpoint}`
    return `mountpoint ${mountpoint} cannot be used: ${(err as Error).message}`
  }
  if (!st.isDirectory()) return `mountpoint ${mountpoint} is not a directory`
  return null
}

export async function mount(fs: FileSystem, mountpoint: string, opts: MountOptions = {}): Promise<Mounted> {
  const log = opts.log ?? logger('fuse')
  const problem = opts.overMount ? await checkDirectory(mountpoint) : await checkMountpoint(mountpoint)
  if (problem) throw new Error(problem)
  const mnt = path.resolve(mountpoint)
  const timing = process.env.POLYFS_OP_TIMING === '1' ? new OpTiming() : null
  const ops = makeOps(fs, log, timing)
  const fuse = new Fuse(mnt, ops, {
    allowOther: opts.allowOther ?? true,
    defaultPermissions: true,
    bigWrites: true,
    maxWrite: 128 * 1024,
    useIno: true,
    // Not hard_remove: with it the kernel's fstat of an unlinked open file reaches libfuse
    // without a path and fails; libfuse's hidden-name rename instead is handled by fs.hide().
    hardRemove: false,
    nullpathOk: true,
    attrTimeout: opts.attrTimeoutSec ?? 1,
    entryTimeout: opts.entryTimeoutSec ?? 1,
    negativeTimeout: 0,
    fsname: 'polyfs',
    subtype: 'polyfs',
    timeout: false,
    debug: opts.debug ?? false,
  })
  // security.capability of files open here, answered by the binding without a call in.
  fs.setCapsListener((p, none) => fuse.noCapabilities(p, none))
  await new Promise<void>((resolve, reject) => fuse.mount((err: Error | null) => (err ? reject(err) : resolve())))
  log.info({ mountpoint: mnt }, 'mounted')
  let closing: Promise<void> | null = null
  return {
    mountpoint: mnt,
    close() {
      closing ??= (async () => {
        // Everything acknowledged is made durable before the mount goes away.
        await fs.kv.sync().catch((err) => log.error({ err }, 'sync before unmount failed'))
        await unmount(mnt, log)
        await new Promise<void>((resolve) => fuse.unmount(() => resolve()))
        await fs.close()
        if (timing) log.info({ ops: timing.summary(), conflicts: (fs.kv as { conflicts?: number }).conflicts, cacheHits: (fs.kv as { cacheHits?: number }).cacheHits }, 'time inside handlers')
        log.info({ mountpoint: mnt }, 'unmounted')
      })()
      return closing
    },
  }
}

/** fusermount -u, and a lazy unmount when something still holds the mount busy. */
async function unmount(mnt: string, log: Logger): Promise<void> {
  try {
    await run('fusermount', ['-u', mnt])
  } catch (err) {
    log.warn({ mountpoint: mnt, err: (err as Error).message }, 'mount busy; detaching lazily')
    await run('fusermount', ['-uz', mnt]).catch(() => undefined)
  }
}

/** Negative errno for the kernel. Unexpected errors are logged once and become EIO. */
function toErrno(err: unknown, op: string, log: Logger): number {
  if (err instanceof FsError) return -errnoNumber(err.errno)
  if (err instanceof CorruptRecordError) {
    log.error({ op, key: err.key?.toString('hex'), err: err.message }, 'corrupt record')
    return -errnoNumber('EIO')
  }
  if (err instanceof KvError && err.code === 'TOO_LARGE') return -errnoNumber('EFBIG')
  if (err instanceof KvError && err.code === 'IO' && /no space|ENOSPC/i.test(err.message)) {
    log.error({ op, err: err.message }, 'store is full')
    return -errnoNumber('ENOSPC')
  }
  log.error({ op, err: err instanceof Error ? err.stack : String(err) }, 'operation failed')
  return -errnoNumber('EIO')
}

function ctxOf(c: NativeCtx): Ctx {
  return { uid: c.uid, gid: c.gid, pid: c.pid }
}

function toTime(t: { sec: number; nsec: number } | 'now' | 'omit'): TimeArg {
  return t
}

/** POLYFS_OP_TIMING=1: per-op count and mean time inside our handlers, logged at unmount. */
class OpTiming {
  private readonly ops = new Map<string, { n: number; ns: number }>()
  record(op: string, ns: number): void {
    const e = this.ops.get(op) ?? { n: 0, ns: 0 }
    e.n++
    e.ns += ns
    this.ops.set(op, e)
  }
  summary(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const [op, e] of this.ops) out[op] = `${e.n} x ${(e.ns / e.n / 1000).toFixed(1)} us`
    return out
  }
}

/** Errno number -> name (the first name of numbers with two, e.g. EAGAIN for EWOULDBLOCK): the
 * result label of polyfs_fuse_operations_total, bounded by the errno table. */
const ERRNO_NAMES = new Map<number, string>()
for (const [name, n] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name)

/** One op's metric cells, made once per op name: recording is a few adds (observe/metrics.ts). */
class OpMetrics {
  readonly ok: CounterCell
  readonly seconds: HistogramCell
  private readonly errors = new Map<number, CounterCell>()
  constructor(readonly op: string) {
    this.ok = counterCell(metrics.fuseOps, { op, result: 'ok' })
    this.seconds = histogramCell(metrics.fuseSeconds, { op })
  }
  /** An answer: 0 or a byte count (ok), or a negative errno. t0 from performance.now(). */
  done(t0: number, result: number): void {
    this.seconds.observe((performance.now() - t0) / 1000)
    if (result >= 0) this.ok.inc()
    else this.error(-result).inc()
    series.noteFuse()
  }
  private error(errno: number): CounterCell {
    let c = this.errors.get(errno)
    if (!c) this.errors.set(errno, (c = counterCell(metrics.fuseOps, { op: this.op, result: ERRNO_NAMES.get(errno) ?? 'other' })))
    return c
  }
}

const readBytes = counterCell(metrics.fuseReadBytes)
const writtenBytes = counterCell(metrics.fuseWriteBytes)

function makeOps(fs: FileSystem, log: Logger, timing: OpTiming | null): Record<string, (...args: any[]) => void> {
  // Each op: run the fs call, answer cb(0, result) or cb(-errno), and count it.
  const wrap = <A extends unknown[], R>(op: string, call: (ctx: Ctx, ...args: A) => Promise<R>, reply: (cb: Cb, r: R) => void = (cb) => cb(0)) => {
    const m = new OpMetrics(op)
    return (c: NativeCtx, ...rest: unknown[]) => {
      const t0 = performance.now()
      let cb = rest.pop() as Cb
      if (timing) {
        const start = process.hrtime.bigint()
        const inner = cb
        cb = (...a: unknown[]) => {
          timing.record(op, Number(process.hrtime.bigint() - start))
          inner(...a)
        }
      }
      let p: Promise<R>
      try {
        p = call(ctxOf(c), ...(rest as A))
      } catch (err) {
        const e = toErrno(err, op, log)
        m.done(t0, e)
        cb(e)
        return
      }
      p.then(
        (r) => {
          m.done(t0, 0)
          reply(cb, r)
        },
        (err) => {
          const e = toErrno(err, op, log)
          m.done(t0, e)
          cb(e)
        },
      )
    }
  }
  const stat = (cb: Cb, st: Stat) => cb(0, st)
  const path = (p: string | null): string => {
    if (p === null) throw new FsError('ENOENT', 'no path for an unlinked file')
    return p
  }
  // read/write answer with a byte count or a negative errno in the first argument.
  const io = (op: string, call: (ctx: Ctx, fh: number, buf: Buffer, len: number, off: number) => Promise<number>, bytes: CounterCell) => {
    const m = new OpMetrics(op)
    return (c: NativeCtx, _p: string | null, fh: number, buf: Buffer, len: number, off: number, cb: Cb) => {
      const t0 = performance.now()
      const start = timing ? process.hrtime.bigint() : 0n
      call(ctxOf(c), fh, buf, len, off).then(
        (n) => {
          m.done(t0, n)
          if (n > 0) bytes.inc(n)
          if (timing) timing.record(op, Number(process.hrtime.bigint() - start))
          cb(n)
        },
        (err) => {
          const e = toErrno(err, op, log)
          m.done(t0, e)
          if (timing) timing.record(op, Number(process.hrtime.bigint() - start))
          cb(e)
        },
      )
    }
  }
  return {
    init: (_c: NativeCtx, cb: Cb) => cb(0),
    getattr: wrap('getattr', (ctx, p: string) => fs.getattr(ctx, p), stat),
    fgetattr: wrap('fgetattr', (ctx, p: string | null, fh: number) => (fh ? fs.fgetattr(ctx, fh) : fs.getattr(ctx, path(p))), stat),
    access: wrap('access', (ctx, p: string, mode: number) => fs.access(ctx, p, mode)),
    statfs: wrap('statfs', (ctx) => fs.statfs(ctx), (cb, s) => cb(0, s)),
    readdir: wrap('readdir', (ctx, p: string) => fs.readdir(ctx, p), (cb, r) => cb(0, r.names, r.stats)),
    open: wrap('open', (ctx, p: string, flags: number) => fs.openFile(ctx, p, flags), (cb, fh) => cb(0, fh)),
    // The new handle's (or entry's) attributes go with the answer: the binding answers
    // libfuse's fgetattr/getattr of it, made right after, in C (docs/fuse-native.md).
    create: wrap('create', (ctx, p: string, mode: number, flags: number) => fs.create(ctx, p, mode, flags), (cb, fh) => cb(0, fh, fs.createdStat(fh) ?? undefined)),
    read: io('read', (ctx, fh, buf, len, off) => fs.read(ctx, fh, buf, len, off), readBytes),
    write: io('write', (ctx, fh, buf, len, off) => fs.write(ctx, fh, buf, len, off), writtenBytes),
    flush: wrap('flush', (ctx, _p: string | null, fh: number) => fs.flush(ctx, fh)),
    fsync: wrap('fsync', (ctx, _p: string | null, fh: number) => fs.fsync(ctx, fh)),
    fsyncdir: wrap('fsyncdir', () => fs.fsyncdir()),
    release: wrap('release', (ctx, _p: string | null, fh: number) => fs.release(ctx, fh)),
    truncate: wrap('truncate', (ctx, p: string, size: number) => fs.truncate(ctx, p, size)),
    ftruncate: wrap('ftruncate', (ctx, _p: string | null, fh: number, size: number) => fs.ftruncate(ctx, fh, size)),
    utimens: wrap('utimens', (ctx, p: string, atime, mtime) => fs.utimens(ctx, p, toTime(atime as TimeArg), toTime(mtime as TimeArg))),
    readlink: wrap('readlink', (ctx, p: string) => fs.readlink(ctx, p), (cb, t) => cb(0, t)),
    chown: wrap('chown', (ctx, p: string, uid: number, gid: number) => fs.chown(ctx, p, uid, gid)),
    chmod: wrap('chmod', (ctx, p: string, mode: number) => fs.chmod(ctx, p, mode)),
    mknod: wrap('mknod', (ctx, p: string, mode: number, dev: number) => fs.mknod(ctx, p, mode, dev), stat),
    setxattr: wrap('setxattr', (ctx, p: string, name: string, value: Buffer, _pos: number, flags: number) => fs.setxattr(ctx, p, name, value, flags)),
    getxattr: wrap('getxattr', (ctx, p: string, name: string) => fs.getxattr(ctx, p, name), (cb, v) => cb(0, v)),
    listxattr: wrap('listxattr', (ctx, p: string) => fs.listxattr(ctx, p), (cb, names) => cb(0, names)),
    removexattr: wrap('removexattr', (ctx, p: string, name: string) => fs.removexattr(ctx, p, name)),
    unlink: wrap('unlink', (ctx, p: string) => fs.unlink(ctx, p)),
    rename: wrap('rename', (ctx, from: string, to: string) => fs.rename(ctx, from, to)),
    link: wrap('link', (ctx, existing: string, p: string) => fs.link(ctx, existing, p), stat),
    symlink: wrap('symlink', (ctx, target: string, p: string) => fs.symlink(ctx, target, p), stat),
    mkdir: wrap('mkdir', (ctx, p: string, mode: number) => fs.mkdir(ctx, p, mode), stat),
    rmdir: wrap('rmdir', (ctx, p: string) => fs.rmdir(ctx, p)),
  }
}
