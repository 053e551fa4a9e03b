// A small in-memory filesystem on the patched fuse-native binding, used by the binding's tests
// (test/fuse-native/*.test.ts) and by bench.ts. Not part of PolyFS itself.
//
// Inode numbers start above 2^32 so that every stat exercises the 64-bit st_ino path; each
// handler call is recorded (op, ctx, path, fh, ...) so tests can check what the binding passed.

import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

// ---- Types of the patched fuse-native API (see docs/fuse-native.md) ----

export interface FuseContext { uid: number; gid: number; pid: number; umask: number }
export interface FuseStat {
  mode: number; uid: number; gid: number; size: number; dev: number; nlink: number; ino: number
  rdev: number; blksize: number; blocks: number
  atimeSec: number; atimeNsec: number; mtimeSec: number; mtimeNsec: number; ctimeSec: number; ctimeNsec: number
}
export type FuseTime = { sec: number; nsec: number } | 'now' | 'omit'
export type Cb = (err: number) => void
export type StatCb = (err: number, stat?: FuseStat) => void
export type FhCb = (err: number, fh?: number, stat?: FuseStat) => void
/** An op that makes an entry may answer with its stat: the binding then answers libfuse's
 * getattr/fgetattr of the new entry, made right after, in C (docs/fuse-native.md). */
export type EntryCb = (err: number, stat?: FuseStat) => void

export interface FuseOps {
  init?(ctx: FuseContext, cb: Cb): void
  access?(ctx: FuseContext, path: string, mode: number, cb: Cb): void
  statfs?(ctx: FuseContext, path: string, cb: (err: number, st?: Record<string, number>) => void): void
  getattr?(ctx: FuseContext, path: string, cb: StatCb): void
  fgetattr?(ctx: FuseContext, path: string | null, fh: number, cb: StatCb): void
  flush?(ctx: FuseContext, path: string | null, fh: number, cb: Cb): void
  fsync?(ctx: FuseContext, path: string | null, fh: number, datasync: number, cb: Cb): void
  fsyncdir?(ctx: FuseContext, path: string | null, fh: number, datasync: number, cb: Cb): void
  readdir?(ctx: FuseContext, path: string, cb: (err: number, names?: string[], stats?: FuseStat[]) => void): void
  truncate?(ctx: FuseContext, path: string, size: number, cb: Cb): void
  ftruncate?(ctx: FuseContext, path: string | null, fh: number, size: number, cb: Cb): void
  utimens?(ctx: FuseContext, path: string, atime: FuseTime, mtime: FuseTime, cb: Cb): void
  readlink?(ctx: FuseContext, path: string, cb: (err: number, target?: string) => void): void
  chown?(ctx: FuseContext, path: string, uid: number, gid: number, cb: Cb): void
  chmod?(ctx: FuseContext, path: string, mode: number, cb: Cb): void
  mknod?(ctx: FuseContext, path: string, mode: number, dev: number, cb: EntryCb): void
  setxattr?(ctx: FuseContext, path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb): void
  getxattr?(ctx: FuseContext, path: string, name: string, position: number, cb: (err: number, value?: Buffer) => void): void
  listxattr?(ctx: FuseContext, path: string, cb: (err: number, names?: string[]) => void): void
  removexattr?(ctx: FuseContext, path: string, name: string, cb: Cb): void
  open?(ctx: FuseContext, path: string, flags: number, cb: FhCb): void
  opendir?(ctx: FuseContext, path: string, flags: number, cb: FhCb): void
  read?(ctx: FuseContext, path: string | null, fh: number, buf: Buffer, len: number, offset: number, cb: (n: number) => void): void
  write?(ctx: FuseContext, path: string | null, fh: number, buf: Buffer, len: number, offset: number, cb: (n: number) => void): void
  release?(ctx: FuseContext, path: string | null, fh: number, cb: Cb): void
  releasedir?(ctx: FuseContext, path: string | null, fh: number, cb: Cb): void
  create?(ctx: FuseContext, path: string, mode: number, flags: number, cb: FhCb): void
  unlink?(ctx: FuseContext, path: string, cb: Cb): void
  rename?(ctx: FuseContext, src: string, dest: string, cb: Cb): void
  link?(ctx: FuseContext, src: string, dest: string, cb: EntryCb): void
  symlink?(ctx: FuseContext, target: string, linkPath: string, cb: EntryCb): void
  mkdir?(ctx: FuseContext, path: string, mode: number, cb: EntryCb): void
  rmdir?(ctx: FuseContext, path: string, cb: Cb): void
}

export interface FuseOptions {
  allowOther?: boolean; defaultPermissions?: boolean; bigWrites?: boolean; maxWrite?: number; maxRead?: number
  useIno?: boolean; hardRemove?: boolean; nullpathOk?: boolean
  attrTimeout?: number; entryTimeout?: number; negativeTimeout?: number
  fsname?: string; subtype?: string; timeout?: false | number | Record<string, number | false>
  debug?: boolean; force?: boolean; mkdir?: boolean; autoUnmount?: boolean
}

export interface FuseInstance {
  mount(cb: (err: Error | null) => void): void
  unmount(cb: (err: Error | null) => void): void
  /** `path` has no security.capability (true) / forget that (false); see docs/fuse-native.md. */
  noCapabilities(path: string, none: boolean): void
}
export type FuseCtor = new (mnt: string, ops: FuseOps, opts?: FuseOptions) => FuseInstance

// eslint-disable-next-line @typescript-eslint/no-var-requires
export const Fuse: FuseCtor = require('fuse-native')

// ---- errno ----
export const E = {
  EPERM: -1, ENOENT: -2, EIO: -5, EBADF: -9, EACCES: -13, EEXIST: -17, ENOTDIR: -20, EISDIR: -21,
  EINVAL: -22, ERANGE: -34, ENOTEMPTY: -39, ENODATA: -61
} as const

// ---- the in-memory filesystem ----

export interface Inode {
  ino: number; mode: number; uid: number; gid: number; nlink: number; rdev: number
  data: Buffer; size: number; target?: string
  children?: Map<string, Inode>
  xattrs: Map<string, Buffer>
  atimeSec: number; atimeNsec: number; mtimeSec: number; mtimeNsec: number; ctimeSec: number; ctimeNsec: number
}

export interface Call { op: string; ctx: FuseContext; path: string | null; fh?: number; len?: number; offset?: number; args?: unknown[] }

export const FIRST_INO = 2 ** 32 + 7 // above 32 bits on purpose

function nowTs (): { sec: number; nsec: number } {
  const ms = Date.now()
  const sec = Math.floor(ms / 1000)
  return { sec, nsec: (ms - sec * 1000) * 1e6 }
}

export class MemFs {
  root: Inode
  nextIno = FIRST_INO
  fhs = new Map<number, Inode>()
  nextFh = 1
  calls: Call[] = []
  record = true
  /** Answer create, mkdir, mknod, symlink and link with the new entry's stat. */
  answerStats = false
  /** Per-op interception: return true to take over the answer (the hook then calls cb). */
  hooks: Partial<Record<string, (args: unknown[], cb: (...a: unknown[]) => void) => boolean>> = {}

  constructor () {
    this.root = this.newInode(0o040755, 0, 0)
    this.root.children = new Map()
    this.root.nlink = 2
  }

  newInode (mode: number, uid: number, gid: number): Inode {
    const t = nowTs()
    return {
      ino: this.nextIno++, mode, uid, gid, nlink: 1, rdev: 0, data: Buffer.alloc(0), size: 0, xattrs: new Map(),
      atimeSec: t.sec, atimeNsec: t.nsec, mtimeSec: t.sec, mtimeNsec: t.nsec, ctimeSec: t.sec, ctimeNsec: t.nsec
    }
  }

  lookup (p: string): Inode | undefined {
    if (p === '/') return this.root
    let node: Inode | undefined = this.root
    for (const part of p.split('/').slice(1)) {
      if (!node || !node.children) return undefined
      node = node.children.get(part)
    }
    return node
  }

  parentOf (p: string): { dir: Inode | undefined; name: string } {
    const i = p.lastIndexOf('/')
    return { dir: this.lookup(i === 0 ? '/' : p.slice(0, i)), name: p.slice(i + 1) }
  }

  stat (n: Inode): FuseStat {
    return {
      mode: n.mode, uid: n.uid, gid: n.gid, size: n.size, dev: 0, nlink: n.nlink, ino: n.ino, rdev: n.rdev,
      blksize: 4096, blocks: Math.ceil(n.size / 512),
      atimeSec: n.atimeSec, atimeNsec: n.atimeNsec, mtimeSec: n.mtimeSec, mtimeNsec: n.mtimeNsec,
      ctimeSec: n.ctimeSec, ctimeNsec: n.ctimeNsec
    }
  }

  touchC (n: Inode): void { const t = nowTs(); n.ctimeSec = t.sec; n.ctimeNsec = t.nsec }
  touchMC (n: Inode): void { const t = nowTs(); n.mtimeSec = n.ctimeSec = t.sec; n.mtimeNsec = n.ctimeNsec = t.nsec }

  setSize (n: Inode, size: number): void {
    if (size > n.data.length) {
      const d = Buffer.alloc(Math.max(size, n.data.length * 2))
      n.data.copy(d, 0, 0, n.size)
      n.data = d
    } else if (size < n.size) {
      n.data.fill(0, size, n.size)
    }
    n.size = size
  }

  private node (p: string | null, fh?: number): Inode | undefined {
    if (fh !== undefined && fh !== 0 && this.fhs.has(fh)) return this.fhs.get(fh)
    return p === null ? undefined : this.lookup(p)
  }

  private addEntry (p: string, n: Inode): number {
    const { dir, name } = this.parentOf(p)
    if (!dir || !dir.children) return E.ENOENT
    if (dir.children.has(name)) return E.EEXIST
    dir.children.set(name, n)
    this.touchMC(dir)
    return 0
  }

  ops (): FuseOps {
    const self = this
    const rec = (op: string, ctx: FuseContext, p: string | null, extra: Partial<Call> = {}): void => {
      if (self.record) self.calls.push({ op, ctx, path: p, ...extra })
    }
    const made = (err: number, n: Inode, cb: EntryCb): void => {
      if (err === 0 && self.answerStats) cb(0, self.stat(n))
      else cb(err)
    }
    // Runs a hook if a test installed one for this op.
    const hooked = (op: string, args: unknown[], cb: (...a: unknown[]) => void): boolean => {
      const h = self.hooks[op]
      return h ? h(args, cb) : false
    }
    return {
      init (ctx, cb) { cb(0) },
      statfs (ctx, p, cb) {
        rec('statfs', ctx, p)
        cb(0, { bsize: 4096, frsize: 4096, blocks: 2 ** 40, bfree: 2 ** 39, bavail: 2 ** 39, files: 2 ** 36, ffree: 2 ** 35, favail: 2 ** 35, fsid: 1, flag: 0, namemax: 255 })
      },
      getattr (ctx, p, cb) {
        rec('getattr', ctx, p)
        if (hooked('getattr', [ctx, p], cb as (...a: unknown[]) => void)) return
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        cb(0, self.stat(n))
      },
      fgetattr (ctx, p, fh, cb) {
        rec('fgetattr', ctx, p, { fh })
        const n = self.node(p, fh)
        if (!n) return cb(E.ENOENT)
        cb(0, self.stat(n))
      },
      access (ctx, p, mode, cb) { rec('access', ctx, p); cb(self.lookup(p) ? 0 : E.ENOENT) },
      readdir (ctx, p, cb) {
        rec('readdir', ctx, p)
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        if (!n.children) return cb(E.ENOTDIR)
        const names = ['.', '..', ...n.children.keys()]
        const stats = [self.stat(n), self.stat(n), ...[...n.children.values()].map(c => self.stat(c))]
        cb(0, names, stats)
      },
      opendir (ctx, p, flags, cb) { rec('opendir', ctx, p); cb(self.lookup(p) ? 0 : E.ENOENT, 0) },
      releasedir (ctx, p, fh, cb) { rec('releasedir', ctx, p, { fh }); cb(0) },
      fsyncdir (ctx, p, fh, datasync, cb) { rec('fsyncdir', ctx, p, { fh }); cb(0) },
      open (ctx, p, flags, cb) {
        rec('open', ctx, p, { args: [flags] })
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        const fh = self.nextFh++
        self.fhs.set(fh, n)
        cb(0, fh)
      },
      create (ctx, p, mode, flags, cb) {
        rec('create', ctx, p, { args: [mode, flags] })
        const n = self.newInode(mode, ctx.uid, ctx.gid)
        const err = self.addEntry(p, n)
        if (err) return cb(err)
        const fh = self.nextFh++
        self.fhs.set(fh, n)
        if (self.answerStats) cb(0, fh, self.stat(n))
        else cb(0, fh)
      },
      release (ctx, p, fh, cb) { rec('release', ctx, p, { fh }); self.fhs.delete(fh); cb(0) },
      flush (ctx, p, fh, cb) { rec('flush', ctx, p, { fh }); cb(0) },
      fsync (ctx, p, fh, datasync, cb) {
        rec('fsync', ctx, p, { fh, args: [datasync] })
        if (hooked('fsync', [ctx, p, fh, datasync], cb as (...a: unknown[]) => void)) return
        cb(0)
      },
      read (ctx, p, fh, buf, len, offset, cb) {
        rec('read', ctx, p, { fh, len, offset })
        const n = self.node(p, fh)
        if (!n) return cb(E.EBADF)
        if (offset >= n.size) return cb(0)
        const end = Math.min(n.size, offset + len)
        n.data.copy(buf, 0, offset, end)
        cb(end - offset)
      },
      write (ctx, p, fh, buf, len, offset, cb) {
        rec('write', ctx, p, { fh, len, offset })
        const n = self.node(p, fh)
        if (!n) return cb(E.EBADF)
        if (offset + len > n.size) self.setSize(n, offset + len)
        buf.copy(n.data, offset, 0, len) // copy now: buf is unusable after cb
        self.touchMC(n)
        cb(len)
      },
      truncate (ctx, p, size, cb) {
        rec('truncate', ctx, p, { args: [size] })
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        self.setSize(n, size); self.touchMC(n); cb(0)
      },
      ftruncate (ctx, p, fh, size, cb) {
        rec('ftruncate', ctx, p, { fh, args: [size] })
        const n = self.node(p, fh)
        if (!n) return cb(E.EBADF)
        self.setSize(n, size); self.touchMC(n); cb(0)
      },
      utimens (ctx, p, atime, mtime, cb) {
        rec('utimens', ctx, p, { args: [atime, mtime] })
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        const now = nowTs()
        if (atime !== 'omit') { const t = atime === 'now' ? now : atime; n.atimeSec = t.sec; n.atimeNsec = t.nsec }
        if (mtime !== 'omit') { const t = mtime === 'now' ? now : mtime; n.mtimeSec = t.sec; n.mtimeNsec = t.nsec }
        self.touchC(n)
        cb(0)
      },
      chmod (ctx, p, mode, cb) {
        rec('chmod', ctx, p, { args: [mode] })
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        n.mode = (n.mode & 0o170000) | (mode & 0o7777); self.touchC(n); cb(0)
      },
      chown (ctx, p, uid, gid, cb) {
        rec('chown', ctx, p, { args: [uid, gid] })
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        if (uid !== 0xffffffff) n.uid = uid
        if (gid !== 0xffffffff) n.gid = gid
        self.touchC(n); cb(0)
      },
      mknod (ctx, p, mode, dev, cb) {
        rec('mknod', ctx, p, { args: [mode, dev] })
        const n = self.newInode(mode, ctx.uid, ctx.gid)
        n.rdev = dev
        made(self.addEntry(p, n), n, cb)
      },
      mkdir (ctx, p, mode, cb) {
        rec('mkdir', ctx, p, { args: [mode] })
        const n = self.newInode(0o040000 | (mode & 0o7777), ctx.uid, ctx.gid)
        n.children = new Map(); n.nlink = 2
        made(self.addEntry(p, n), n, cb)
      },
      symlink (ctx, target, linkPath, cb) {
        rec('symlink', ctx, linkPath, { args: [target] })
        const n = self.newInode(0o120777, ctx.uid, ctx.gid)
        n.target = target; n.size = Buffer.byteLength(target)
        made(self.addEntry(linkPath, n), n, cb)
      },
      readlink (ctx, p, cb) {
        rec('readlink', ctx, p)
        const n = self.lookup(p)
        if (!n || n.target === undefined) return cb(E.EINVAL)
        cb(0, n.target)
      },
      link (ctx, src, dest, cb) {
        rec('link', ctx, src, { args: [dest] })
        const n = self.lookup(src)
        if (!n) return cb(E.ENOENT)
        const err = self.addEntry(dest, n)
        if (err) return cb(err)
        n.nlink++; self.touchC(n); made(0, n, cb)
      },
      unlink (ctx, p, cb) {
        rec('unlink', ctx, p)
        const { dir, name } = self.parentOf(p)
        const n = dir?.children?.get(name)
        if (!dir || !n) return cb(E.ENOENT)
        dir.children!.delete(name)
        n.nlink--; self.touchC(n); self.touchMC(dir); cb(0)
      },
      rmdir (ctx, p, cb) {
        rec('rmdir', ctx, p)
        const { dir, name } = self.parentOf(p)
        const n = dir?.children?.get(name)
        if (!dir || !n) return cb(E.ENOENT)
        if (!n.children) return cb(E.ENOTDIR)
        if (n.children.size) return cb(E.ENOTEMPTY)
        dir.children!.delete(name); self.touchMC(dir); cb(0)
      },
      rename (ctx, src, dest, cb) {
        rec('rename', ctx, src, { args: [dest] })
        const a = self.parentOf(src)
        const b = self.parentOf(dest)
        const n = a.dir?.children?.get(name(a))
        if (!n || !b.dir?.children) return cb(E.ENOENT)
        a.dir!.children!.delete(a.name)
        b.dir.children.set(b.name, n)
        self.touchC(n); cb(0)
        function name (x: { name: string }): string { return x.name }
      },
      setxattr (ctx, p, nm, value, position, flags, cb) {
        rec('setxattr', ctx, p, { args: [nm, flags] })
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        n.xattrs.set(nm, Buffer.from(value)) // copy: value is unusable after cb
        cb(0)
      },
      getxattr (ctx, p, nm, position, cb) {
        rec('getxattr', ctx, p, { args: [nm] })
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        const v = n.xattrs.get(nm)
        if (!v) return cb(E.ENODATA)
        cb(0, v)
      },
      listxattr (ctx, p, cb) {
        rec('listxattr', ctx, p)
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        cb(0, [...n.xattrs.keys()])
      },
      removexattr (ctx, p, nm, cb) {
        rec('removexattr', ctx, p, { args: [nm] })
        const n = self.lookup(p)
        if (!n) return cb(E.ENOENT)
        cb(n.xattrs.delete(nm) ? 0 : E.ENODATA)
      }
    }
  }
}

// ---- mounting helpers for tests ----

function isMounted (mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === mnt)
}

export interface Mounted { mnt: string; dir: string; fuse: FuseInstance; memfs: MemFs; unmount(): Promise<void> }

/** Mounts a fresh MemFs on a new temp dir. Always pair with t.after(() => m.unmount()). */
export async function mountMemFs (opts: FuseOptions = {}, memfs = new MemFs()): Promise<Mounted> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyfs-fusenative-'))
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(mnt)
  const fuse = new Fuse(mnt, memfs.ops(), opts)
  let unmounted = false
  const unmount = async (): Promise<void> => {
    if (unmounted) return
    unmounted = true
    await new Promise<void>(resolve => fuse.unmount(() => resolve()))
    // Whatever happened above, never leave a mount or a temp dir behind.
    if (isMounted(mnt)) spawnSync('fusermount', ['-u', mnt])
    if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt])
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    await new Promise<void>((resolve, reject) => fuse.mount(err => err ? reject(err) : resolve()))
  } catch (err) {
    await unmount()
    throw err
  }
  return { mnt, dir, fuse, memfs, unmount }
}

/** Polls cond() until it holds, yielding to the event loop between tries; bounded. */
export async function waitFor (cond: () => boolean, what: string, limitMs = 10000): Promise<void> {
  const end = Date.now() + limitMs
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what)
    await new Promise(resolve => setImmediate(resolve))
  }
}
