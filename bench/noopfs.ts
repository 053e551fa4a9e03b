// The no-op ceiling: an in-memory filesystem on the same patched fuse-native binding and with the
// same mount options as PolyFS (src/fuse/index.ts), that does no work. It keeps a map of
// path -> attributes so that stat, readdir and rename behave, discards written data (only the size
// is kept) and answers reads with zeros up to the recorded size. Whatever PolyFS loses against this
// is PolyFS's own cost; whatever this loses against bindfs is the binding's and Node's cost.
//
//   node dist/bench/noopfs.js MOUNTPOINT
//
// Prints {"msg":"mounted"} on stderr when ready; SIGTERM/SIGINT unmount and exit.
// The mounting process serves requests on its JS thread: never touch the mount from here.

import { execFileSync } from 'node:child_process'
import * as path from 'node:path'

interface Ctx { uid: number; gid: number; pid: number; umask: number }
interface Stat {
  mode: number; uid: number; gid: number; size: number; dev: number; nlink: number; ino: number
  rdev: number; blksize: number; blocks: number
  atimeSec: number; atimeNsec: number; mtimeSec: number; mtimeNsec: number; ctimeSec: number; ctimeNsec: number
}
type Cb = (err: number) => void
type Time = { sec: number; nsec: number } | 'now' | 'omit'
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void
  unmount(cb: (err: Error | null) => void): void
}
type FuseCtor = new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => FuseInstance
// eslint-disable-next-line @typescript-eslint/no-var-requires
const Fuse: FuseCtor = require('fuse-native')

const ENOENT = -2
const EEXIST = -17
const ENOTDIR = -20
const EISDIR = -21
const ENOTEMPTY = -39
const S_IFDIR = 0o040000
const S_IFMT = 0o170000

interface Node { st: Stat; children: Set<string> | null }

function now(): { sec: number; nsec: number } {
  const ms = Date.now()
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 }
}

class NoopFs {
  private readonly nodes = new Map<string, Node>()
  private nextIno = 2
  private nextFh = 1
  private readonly fhs = new Map<number, string | null>()

  constructor() {
    this.nodes.set('/', { st: this.mkStat(S_IFDIR | 0o755, 0, 0), children: new Set() })
  }

  private mkStat(mode: number, uid: number, gid: number): Stat {
    const t = now()
    return {
      mode, uid, gid, size: (mode & S_IFMT) === S_IFDIR ? 4096 : 0, dev: 0, nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1,
      ino: this.nextIno++, rdev: 0, blksize: 4096, blocks: 0,
      atimeSec: t.sec, atimeNsec: t.nsec, mtimeSec: t.sec, mtimeNsec: t.nsec, ctimeSec: t.sec, ctimeNsec: t.nsec,
    }
  }

  private parent(p: string): Node | undefined {
    return this.nodes.get(path.posix.dirname(p))
  }

  private add(ctx: Ctx, p: string, mode: number): number {
    const dir = this.parent(p)
    if (!dir) return ENOENT
    if (!dir.children) return ENOTDIR
    if (this.nodes.has(p)) return EEXIST
    const isDir = (mode & S_IFMT) === S_IFDIR
    this.nodes.set(p, { st: this.mkStat(mode, ctx.uid, ctx.gid), children: isDir ? new Set() : null })
    dir.children.add(path.posix.basename(p))
    return 0
  }

  private remove(p: string): void {
    this.nodes.delete(p)
    this.parent(p)?.children?.delete(path.posix.basename(p))
  }

  private fileOf(p: string | null, fh: number): Node | undefined {
    const q = p ?? this.fhs.get(fh)
    return q == null ? undefined : this.nodes.get(q)
  }

  ops(): Record<string, unknown> {
    const getattr = (_c: Ctx, p: string, cb: (err: number, st?: Stat) => void) => {
      const n = this.nodes.get(p)
      if (!n) return cb(ENOENT)
      cb(0, n.st)
    }
    const open = (_c: Ctx, p: string, _flags: number, cb: (err: number, fh?: number) => void) => {
      if (!this.nodes.has(p)) return cb(ENOENT)
      const fh = this.nextFh++
      this.fhs.set(fh, p)
      cb(0, fh)
    }
    return {
      init: (_c: Ctx, cb: Cb) => cb(0),
      getattr,
      fgetattr: (_c: Ctx, p: string | null, fh: number, cb: (err: number, st?: Stat) => void) => {
        const n = this.fileOf(p, fh)
        if (!n) return cb(ENOENT)
        cb(0, n.st)
      },
      access: (_c: Ctx, p: string, _mode: number, cb: Cb) => cb(this.nodes.has(p) ? 0 : ENOENT),
      statfs: (_c: Ctx, _p: string, cb: (err: number, s?: Record<string, number>) => void) =>
        cb(0, { bsize: 4096, frsize: 4096, blocks: 1 << 24, bfree: 1 << 23, bavail: 1 << 23, files: 1 << 20, ffree: 1 << 20, favail: 1 << 20, fsid: 0, flag: 0, namemax: 255 }),
      readdir: (_c: Ctx, p: string, cb: (err: number, names?: string[], stats?: Stat[]) => void) => {
        const n = this.nodes.get(p)
        if (!n) return cb(ENOENT)
        if (!n.children) return cb(ENOTDIR)
        cb(0, ['.', '..', ...n.children])
      },
      open,
      opendir: open,
      create: (c: Ctx, p: string, mode: number, _flags: number, cb: (err: number, fh?: number) => void) => {
        const err = this.add(c, p, mode & ~c.umask)
        if (err && err !== EEXIST) return cb(err)
        open(c, p, 0, cb)
      },
      mknod: (c: Ctx, p: string, mode: number, _dev: number, cb: Cb) => cb(this.add(c, p, mode & ~c.umask)),
      mkdir: (c: Ctx, p: string, mode: number, cb: Cb) => {
        const err = this.add(c, p, S_IFDIR | (mode & ~c.umask & 0o7777))
        if (!err) this.parent(p)!.st.nlink++
        cb(err)
      },
      read: (_c: Ctx, p: string | null, fh: number, buf: Buffer, len: number, off: number, cb: (n: number) => void) => {
        const n = this.fileOf(p, fh)
        if (!n) return cb(ENOENT)
        const k = Math.max(0, Math.min(len, n.st.size - off))
        if (k > 0) buf.fill(0, 0, k)
        cb(k)
      },
      write: (_c: Ctx, p: string | null, fh: number, _buf: Buffer, len: number, off: number, cb: (n: number) => void) => {
        const n = this.fileOf(p, fh)
        if (!n) return cb(ENOENT)
        if (off + len > n.st.size) {
          n.st.size = off + len
          n.st.blocks = Math.ceil(n.st.size / 512)
        }
        cb(len)
      },
      flush: (_c: Ctx, _p: string | null, _fh: number, cb: Cb) => cb(0),
      fsync: (_c: Ctx, _p: string | null, _fh: number, _ds: number, cb: Cb) => cb(0),
      fsyncdir: (_c: Ctx, _p: string | null, _fh: number, _ds: number, cb: Cb) => cb(0),
      release: (_c: Ctx, _p: string | null, fh: number, cb: Cb) => {
        this.fhs.delete(fh)
        cb(0)
      },
      releasedir: (_c: Ctx, _p: string | null, fh: number, cb: Cb) => {
        this.fhs.delete(fh)
        cb(0)
      },
      truncate: (_c: Ctx, p: string, size: number, cb: Cb) => {
        const n = this.nodes.get(p)
        if (!n) return cb(ENOENT)
        n.st.size = size
        cb(0)
      },
      ftruncate: (_c: Ctx, p: string | null, fh: number, size: number, cb: Cb) => {
        const n = this.fileOf(p, fh)
        if (!n) return cb(ENOENT)
        n.st.size = size
        cb(0)
      },
      utimens: (_c: Ctx, p: string, atime: Time, mtime: Time, cb: Cb) => {
        const n = this.nodes.get(p)
        if (!n) return cb(ENOENT)
        const t = now()
        if (atime !== 'omit') ({ sec: n.st.atimeSec, nsec: n.st.atimeNsec } = atime === 'now' ? t : atime)
        if (mtime !== 'omit') ({ sec: n.st.mtimeSec, nsec: n.st.mtimeNsec } = mtime === 'now' ? t : mtime)
        cb(0)
      },
      chmod: (_c: Ctx, p: string, mode: number, cb: Cb) => {
        const n = this.nodes.get(p)
        if (!n) return cb(ENOENT)
        n.st.mode = (n.st.mode & S_IFMT) | (mode & 0o7777)
        cb(0)
      },
      chown: (_c: Ctx, p: string, uid: number, gid: number, cb: Cb) => {
        const n = this.nodes.get(p)
        if (!n) return cb(ENOENT)
        if (uid !== -1 && uid !== 0xffffffff) n.st.uid = uid
        if (gid !== -1 && gid !== 0xffffffff) n.st.gid = gid
        cb(0)
      },
      unlink: (_c: Ctx, p: string, cb: Cb) => {
        const n = this.nodes.get(p)
        if (!n) return cb(ENOENT)
        if (n.children) return cb(EISDIR)
        this.remove(p)
        cb(0)
      },
      rmdir: (_c: Ctx, p: string, cb: Cb) => {
        const n = this.nodes.get(p)
        if (!n) return cb(ENOENT)
        if (!n.children) return cb(ENOTDIR)
        if (n.children.size > 0) return cb(ENOTEMPTY)
        this.remove(p)
        const d = this.parent(p)
        if (d) d.st.nlink--
        cb(0)
      },
      rename: (_c: Ctx, from: string, to: string, cb: Cb) => {
        const n = this.nodes.get(from)
        if (!n) return cb(ENOENT)
        const dest = this.parent(to)
        if (!dest || !dest.children) return cb(ENOENT)
        const old = this.nodes.get(to)
        if (old?.children && old.children.size > 0) return cb(ENOTEMPTY)
        this.remove(from)
        this.nodes.set(to, n)
        dest.children.add(path.posix.basename(to))
        if (n.children && n.children.size > 0) {
          // Move the subtree's keys along (O(all nodes); the benchmark renames empty directories).
          const prefix = from + '/'
          for (const [k, v] of [...this.nodes]) {
            if (k.startsWith(prefix)) {
              this.nodes.delete(k)
              this.nodes.set(to + k.slice(from.length), v)
            }
          }
        }
        cb(0)
      },
    }
  }
}

function main(): void {
  const mnt = process.argv[2]
  if (!mnt) {
    process.stderr.write('usage: node dist/bench/noopfs.js MOUNTPOINT\n')
    process.exit(2)
  }
  const abs = path.resolve(mnt)
  // The option set of src/fuse/index.ts mount(), so that both stacks see the same kernel behaviour.
  const fuse = new Fuse(abs, new NoopFs().ops(), {
    allowOther: true,
    defaultPermissions: true,
    bigWrites: true,
    maxWrite: 128 * 1024,
    useIno: true,
    hardRemove: true,
    nullpathOk: true,
    attrTimeout: 1,
    entryTimeout: 1,
    negativeTimeout: 0,
    fsname: 'noopfs',
    subtype: 'noopfs',
    timeout: false,
  })
  fuse.mount((err) => {
    if (err) {
      process.stderr.write(JSON.stringify({ msg: 'mount failed', err: err.message }) + '\n')
      process.exit(1)
    }
    process.stderr.write(JSON.stringify({ msg: 'mounted', mountpoint: abs, pid: process.pid }) + '\n')
  })
  let stopping = false
  const stop = () => {
    if (stopping) process.exit(130)
    stopping = true
    try {
      execFileSync('fusermount', ['-u', abs], { stdio: 'ignore' })
    } catch {
      try {
        execFileSync('fusermount', ['-uz', abs], { stdio: 'ignore' })
      } catch {
        // already gone
      }
    }
    fuse.unmount(() => process.exit(0))
    setTimeout(() => process.exit(0), 3000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  setInterval(() => undefined, 1 << 30)
}

main()
