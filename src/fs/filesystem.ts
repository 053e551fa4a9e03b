// The POSIX filesystem over the KV interface. Paths are what libfuse's high-level API hands
// us ("/a/b"); each operation resolves the parent directory (cached path -> ino for
// directories), then works on one DENTRY and its directory's DIRSELF in one transaction.
// Permission checks along the path and on directories are the kernel's (the mount uses
// default_permissions); this layer applies the ownership rules it alone can: owners of new
// files, chmod/chown/utimens rights, set-ID clearing, and access().
import { BLOCK_SIZE, CHUNK_BLOCKS, KV, Kind, LocalKV, MAX_NAME_BYTES, Txn, keys } from '../kv'
import { Logger, logger } from '../util'
import { FsError, fail } from './errors'
import { CAPS_XATTR, FLUSH_BEHIND_BLOCKS, Loc, OpenFile, deleteBlocks, flushFile, loadFileNode, MAX_DIRTY_BLOCKS_PER_FILE, readData, truncateInTxn, writeData } from './files'
import { Node, getDirSelf, inGroup, killSuid, locate, lookupEntry, newAttrs, nodeOf, ownsOrRoot, permits, read, storeAttrs, toStat, touch } from './nodes'
import {
  Attrs,
  Dentry,
  DentryForm,
  DirSelf,
  FORMAT_VERSION,
  decodeCounter,
  decodeDentry,
  decodeDirSelf,
  decodeInode,
  decodeMeta,
  decodeOrphan,
  encodeCounter,
  encodeDentry,
  encodeDirSelf,
  encodeInode,
  encodeMeta,
  encodeOrphan,
} from './records'
import { Clock, Ctx, S, Stat, StatFs, TimeArg, isDir, realClock } from './types'

export const ROOT_INO = 1
const INO_BATCH = 1024
const DIR_CACHE_MAX = 65536
/** A directory entry's dtype for a directory. */
const DT_DIR = S.IFDIR >> 12
const XATTR_NAME_MAX = 255
const XATTR_VALUE_MAX = 64 * 1024
const XATTR_TOTAL_MAX = 256 * 1024
const SYMLINK_MAX = 4095
const XATTR_CREATE = 1
const XATTR_REPLACE = 2
/** The names libfuse gives unlinked-but-open files: ".fuse_hidden" + 16 hex digits. */
const HIDDEN_NAME = /\/\.fuse_hidden[0-9a-f]{16}$/

/** Stats a transaction wrote, by path and by inode (see FileSystem.fresh). */
type Written = { byPath: Map<string, Stat>; byIno: Map<number, Stat> }

interface Handle {
  file: OpenFile
  flags: number
  /** What its create committed. libfuse answers a create with the new file's attributes by
   * calling fgetattr on the handle before it replies; the kernel does not know the handle
   * before that reply, so the first fgetattr on a created handle is always that one, part of
   * the create itself, and is answered with these (no read of what was just written). */
  created?: Stat
}

export interface FsOptions {
  clock?: Clock
  log?: Logger
  /** Other mounts change the same store (a cluster): cache no directory paths, and leave
   * orphans alone at open (another mount may still have them open). */
  shared?: boolean
  /** Bytes read ahead of a sequential reader (docs/posix.md, "Read-ahead"); 0: none. The
   * default is 8 MiB on a shared store (a cluster: a read is a network round trip) and none
   * on a local one (a read is a LevelDB lookup in this process). */
  readAhead?: number
}

/** Leased reads; a directory entry's read leases its whole directory (docs/metadata-leases.md). */
const LEASED = { lease: true, rangeOf: keys.dentryRangeOf } as const

/** The default read-ahead on a cluster mount. */
export const READ_AHEAD_SHARED = 8 * 1024 * 1024

export class FileSystem {
  private readonly clock: Clock
  private readonly log: Logger
  private readonly dirCache = new Map<string, number>()
  private readonly open = new Map<number, OpenFile>() // ino -> open file
  private readonly handles = new Map<number, Handle>()
  /** Paths this mount opened files at -> the open file, while no rename or unlink through
   * this mount touched the path (only used to answer security.capability; see getxattr). */
  private readonly openPaths = new Map<string, OpenFile>()
  private capsListener: ((path: string, none: boolean) => void) | null = null
  /** libfuse's ".fuse_hidden" names of unlinked-but-open files -> ino (see hide()). */
  private readonly hidden = new Map<string, number>()
  private nextFh = 1
  private inoNext = 0
  private inoLimit = 0
  private inoAlloc: Promise<void> | null = null

  /**
   * Stats of the nodes the last transaction wrote (the new entry and its directory after a
   * create or mkdir, the directories after an unlink, rmdir or rename, the node after a
   * setattr), kept for the GETATTRs the kernel and libfuse send right after: a new entry's
   * lookup, and the parent directory's attributes for the next permission check. Valid while
   * no transaction has started since (gen) and none is running (busy); only for a store this
   * process owns alone (LocalKV), where every change passes through here.
   */
  private fresh: { byPath: Map<string, Stat>; byIno: Map<number, Stat>; gen: number } | null = null
  private gen = 0
  private busy = 0
  private readonly cacheStats: boolean
  private readonly shared: boolean
  private readonly readAhead: number
  /** kv, with every transaction counted for `fresh`. */
  private readonly store: KV

  private constructor(
    readonly kv: KV,
    opts: FsOptions,
  ) {
    this.clock = opts.clock ?? realClock
    this.log = opts.log ?? logger('fs')
    this.cacheStats = kv instanceof LocalKV
    this.shared = opts.shared === true
    this.readAhead = opts.readAhead ?? (this.shared ? READ_AHEAD_SHARED : 0)
    this.store = {
      // On a cluster, metadata read outside transactions may come from values the client
      // holds under a read lease (docs/metadata-leases.md); file data never does.
      get: (key) => kv.get(key, this.shared && key[8] !== Kind.BLOCK ? LEASED : undefined),
      getMany: (keys) => kv.getMany(keys, this.shared && keys.every((k) => k[8] !== Kind.BLOCK) ? LEASED : undefined),
      scan: (range) => kv.scan(range),
      sync: () => kv.sync(),
      close: () => kv.close(),
      usage: () => kv.usage(),
      txn: (fn, opts) => this.txn((tx) => fn(tx), opts),
    }
  }

  /**
   * Every transaction of the filesystem goes through here. `fn` may note the stats of what it
   * wrote in `written`; they become `fresh` if no other transaction started or ended while
   * this one ran (then they are exactly the state after it).
   */
  private async txn<T>(fn: (tx: Txn, written: Written) => Promise<T>, opts?: { sync?: boolean }): Promise<T> {
    const startGen = ++this.gen
    this.busy++
    let written: Written | null = null
    let ok = false
    try {
      const result = await this.kv.txn((tx) => {
        written = { byPath: new Map(), byIno: new Map() }
        return fn(tx, written)
      }, opts)
      ok = true
      return result
    } finally {
      const alone = ok && this.gen === startGen && this.busy === 1
      this.busy--
      this.gen++
      const w = written as Written | null
      this.fresh = alone && this.cacheStats && w && w.byPath.size + w.byIno.size > 0 ? { ...w, gen: this.gen } : null
    }
  }

  /** A stat the last transaction wrote, if nothing has changed since. */
  private freshStat(path: string | null, ino: number): Stat | null {
    const f = this.fresh
    if (!f || f.gen !== this.gen || this.busy !== 0) return null
    const st = path !== null ? f.byPath.get(path) : f.byIno.get(ino)
    return st ? { ...st } : null
  }

  /** Opens the filesystem on kv, formatting an empty store and freeing orphans of a crash. */
  static async open(kv: KV, opts: FsOptions = {}): Promise<FileSystem> {
    const fs = new FileSystem(kv, opts)
    await fs.formatOrCheck()
    if (!opts.shared) await fs.freeOrphans()
    return fs
  }

  /** Convenience: a filesystem on a local classic-level store in `dir`. */
  static async openLocal(dir: string, opts: FsOptions = {}): Promise<FileSystem> {
    return FileSystem.open(await LocalKV.open(dir), opts)
  }

  // ---------------------------------------------------------------- lifecycle

  private async formatOrCheck(): Promise<void> {
    const metaKey = keys.meta('format')
    await this.store.txn(async (tx) => {
      const existing = await read(tx, metaKey, decodeMeta)
      if (existing) {
        if (existing.format !== FORMAT_VERSION) {
          throw new Error(`store format ${existing.format} is not supported (this build reads format ${FORMAT_VERSION})`)
        }
        if (existing.blockSizeBytes !== BLOCK_SIZE || existing.chunkBlocks !== CHUNK_BLOCKS) {
          throw new Error(`store uses ${existing.blockSizeBytes}-byte blocks in chunks of ${existing.chunkBlocks}; this build uses ${BLOCK_SIZE} and ${CHUNK_BLOCKS}`)
        }
        return
      }
      const now = this.clock.now()
      tx.put(metaKey, encodeMeta({ format: FORMAT_VERSION, blockSizeBytes: BLOCK_SIZE, chunkBlocks: CHUNK_BLOCKS, createdSec: now.sec }))
      tx.put(keys.meta('inode-counter'), encodeCounter(ROOT_INO + 1))
      const attrs = newAttrs(S.IFDIR | 0o755, 0, 0, now)
      tx.put(keys.dirSelf(ROOT_INO), encodeDirSelf({ ino: ROOT_INO, parent: ROOT_INO, attrs }))
    }, { sync: true })
  }

  /** Files unlinked while open when the process died: nobody can have them open now. */
  private async freeOrphans(): Promise<void> {
    const range = keys.orphanRange()
    for (const { key, value } of await this.store.scan(range)) {
      decodeOrphan(value, key)
      const ino = key.readUInt32BE(key.length - 8) * 0x100000000 + key.readUInt32BE(key.length - 4)
      await this.store.txn(async (tx) => {
        const rec = await read(tx, keys.inode(ino), decodeInode)
        if (rec) deleteBlocks(tx, ino, rec.attrs.size)
        tx.del(keys.inode(ino))
        tx.del(key)
      })
      this.log.info({ ino }, 'freed orphaned inode')
    }
  }

  /** Commits everything buffered and closes the store. */
  async close(): Promise<void> {
    for (const f of this.open.values()) {
      try {
        await flushFile(this.store, f)
      } catch (err) {
        this.log.error({ ino: f.ino, err }, 'flush at close failed')
      }
    }
    await this.store.sync()
    await this.store.close()
  }

  // ---------------------------------------------------------------- paths

  /** "/a/b" -> ["/a", "b"] with the name checked. */
  private split(path: string): [string, Buffer] {
    const i = path.lastIndexOf('/')
    if (i < 0 || path === '/') fail('EINVAL', `not a child path: ${path}`)
    const name = Buffer.from(path.slice(i + 1), 'utf8')
    if (name.length === 0) fail('EINVAL', 'empty name')
    if (name.length > MAX_NAME_BYTES) fail('ENAMETOOLONG')
    return [i === 0 ? '/' : path.slice(0, i), name]
  }

  /**
   * The inode number of the directory at `path`. Local mode: remembered in dirCache (this
   * process is the only writer). Shared mode: every answer comes from reads of the cluster,
   * and dirCache holds only hints (see speculate).
   */
  private async dirIno(path: string): Promise<number> {
    if (path === '/') return ROOT_INO
    const cached = this.dirCache.get(path)
    if (!this.shared && cached !== undefined) return cached
    const [parentPath, name] = this.split(path)
    let entry: { ino: number; isDir: boolean } | undefined
    const guess = this.shared ? await this.speculate(path, false) : null
    if (guess) entry = guess.dentry && { ino: guess.dentry.ino, isDir: guess.dentry.dtype === DT_DIR }
    // The directory entry says whether it is a directory: its attributes are not needed here.
    else entry = await lookupEntry(this.store, await this.dirIno(parentPath), name)
    if (!entry || !entry.isDir) {
      this.dirCache.delete(path)
      fail(entry ? 'ENOTDIR' : 'ENOENT')
    }
    const { ino } = entry as { ino: number; isDir: boolean }
    if (cached !== ino) this.hint(path, ino)
    return ino
  }

  private hint(path: string, ino: number): void {
    if (this.dirCache.size >= DIR_CACHE_MAX) this.dirCache.clear()
    this.dirCache.set(path, ino)
  }

  /**
   * Shared mode: the entry of `path` (not '/') read together with the entry of every
   * directory above it, in one getMany, from the hints of dirCache; with `withSelf` and a hint
   * that `path` is a directory, its own record too. Each read from a hint counts only when the
   * read above it confirms the hint (names the hinted inode, a directory). Null when a hint is
   * missing or proved wrong (the wrong one is dropped): the caller then resolves one component
   * after the other. Every read used is a linearizable read made during this call
   * (docs/posix.md, "Path resolution on a cluster mount").
   */
  private async speculate(path: string, withSelf: boolean): Promise<{ parent: number; dentryKey: Buffer; dentry: Dentry | undefined; self?: DirSelf } | null> {
    const names = path.split('/').slice(1)
    const dirs = [ROOT_INO]
    let prefix = ''
    for (let i = 0; i < names.length - 1; i++) {
      prefix += '/' + names[i]
      const h = this.dirCache.get(prefix)
      if (h === undefined) return null
      dirs.push(h)
    }
    // Nothing to send together: one read, as without hints.
    const selfHint = withSelf ? this.dirCache.get(path) : undefined
    if (names.length === 1 && selfHint === undefined) return null
    const ks = names.map((n, i) => keys.dentry(dirs[i] as number, Buffer.from(n, 'utf8')))
    if (selfHint !== undefined) ks.push(keys.dirSelf(selfHint))
    const vals = await this.store.getMany(ks)
    prefix = ''
    for (let i = 0; i < names.length - 1; i++) {
      prefix += '/' + names[i]
      const v = vals[i]
      const d = v && decodeDentry(v, ks[i] as Buffer)
      if (!d || d.ino !== dirs[i + 1] || d.dtype !== DT_DIR) {
        this.dirCache.delete(prefix)
        return null
      }
    }
    const last = names.length - 1
    const dentryKey = ks[last] as Buffer
    const v = vals[last]
    const dentry = v ? decodeDentry(v, dentryKey) : undefined
    const found = { parent: dirs[last] as number, dentryKey, dentry }
    if (!dentry || selfHint === undefined || dentry.ino !== selfHint || dentry.dtype !== DT_DIR) return found
    const sv = vals[last + 1]
    // An entry without its directory record: decided by the plain path (it reports it).
    return sv ? { ...found, self: decodeDirSelf(sv, ks[last + 1] as Buffer) } : found
  }

  /** Shared mode, outside a transaction: the node at `path` (not '/'), by speculate when the
   * hints allow, else one component after the other. */
  private async locateShared(path: string, parentPath: string, name: Buffer): Promise<Node | undefined> {
    const guess = await this.speculate(path, true)
    let node: Node | undefined
    if (guess) {
      const { parent, dentryKey, dentry, self } = guess
      node = dentry && (await nodeOf(this.store, parent, name, dentryKey, dentry, self))
    } else node = await locate(this.store, await this.dirIno(parentPath), name)
    if (node && node.dentry.dtype === DT_DIR) {
      if (this.dirCache.get(path) !== node.ino) this.hint(path, node.ino)
    } else this.dirCache.delete(path)
    return node
  }

  private forgetDir(path: string): void {
    const prefix = path + '/'
    this.dirCache.delete(path)
    for (const p of this.dirCache.keys()) if (p.startsWith(prefix)) this.dirCache.delete(p)
  }

  /** Node at path (root included); ENOENT when absent. */
  private async node(g: { get(key: Buffer): Promise<Buffer | undefined> }, path: string): Promise<Node> {
    if (path === '/') {
      const self = await getDirSelf(g, ROOT_INO)
      return { parent: ROOT_INO, name: Buffer.alloc(0), dentryKey: Buffer.alloc(0), dentry: { form: DentryForm.REF, ino: ROOT_INO, dtype: S.IFDIR >> 12 }, ino: ROOT_INO, attrs: self.attrs, where: 'dirself', self }
    }
    const hiddenIno = this.hidden.get(path)
    if (hiddenIno !== undefined) {
      const f = this.open.get(hiddenIno)
      if (!f) fail('ENOENT')
      return loadFileNode(g, f as OpenFile)
    }
    const [parentPath, name] = this.split(path)
    const node = this.shared && g === this.store ? await this.locateShared(path, parentPath, name) : await locate(g, await this.dirIno(parentPath), name)
    if (!node) fail('ENOENT')
    return node as Node
  }

  private async allocIno(): Promise<number> {
    while (this.inoNext >= this.inoLimit) {
      if (!this.inoAlloc) {
        this.inoAlloc = this.store
          .txn(async (tx) => {
            const key = keys.meta('inode-counter')
            const next = (await read(tx, key, decodeCounter)) ?? ROOT_INO + 1
            tx.put(key, encodeCounter(next + INO_BATCH))
            return next
          })
          .then((next) => {
            this.inoNext = next
            this.inoLimit = next + INO_BATCH
          })
          .finally(() => {
            this.inoAlloc = null
          })
      }
      await this.inoAlloc
    }
    return this.inoNext++
  }

  // ---------------------------------------------------------------- attributes

  private overlay(st: Stat): Stat {
    const f = this.open.get(st.ino)
    if (f && !isDir(st.mode)) {
      st.size = f.size
      st.blocks = Math.ceil(f.size / 512)
      if (f.mtime) {
        st.mtimeSec = st.ctimeSec = f.mtime.sec
        st.mtimeNsec = st.ctimeNsec = f.mtime.nsec
      }
    }
    return st
  }

  async getattr(ctx: Ctx, path: string): Promise<Stat> {
    const fresh = this.freshStat(path, 0)
    if (fresh) return this.overlay(fresh)
    const node = await this.node(this.store, path)
    return this.overlay(toStat(node.ino, node.attrs))
  }

  async fgetattr(ctx: Ctx, fh: number): Promise<Stat> {
    const h = this.handle(fh)
    const created = this.createdStat(fh)
    if (created) return created
    const f = h.file
    const fresh = this.freshStat(null, f.ino)
    if (fresh) return this.overlay(fresh)
    const node = await loadFileNode(this.store, f)
    return this.overlay(toStat(f.ino, node.attrs))
  }

  async access(ctx: Ctx, path: string, mask: number): Promise<void> {
    const node = await this.node(this.store, path)
    if (mask !== 0 && !permits(ctx, node.attrs, mask)) fail('EACCES')
  }

  /** Runs `change` on the node at path in a transaction and stores the result. */
  private async setattr(path: string, change: (node: Node) => void | Promise<void>): Promise<void> {
    await this.flushOpen(path)
    const node = await this.txn(async (tx, w) => {
      const n = await this.node(tx, path)
      await change(n)
      storeAttrs(tx, n)
      if (!this.hidden.has(path)) w.byPath.set(path, toStat(n.ino, n.attrs))
      return n
    })
    const f = this.openPaths.get(path)
    if (f && f.ino === node.ino) f.caps = node.attrs.xattrs.get(CAPS_XATTR) ?? null
  }

  /** Commits buffered writes of the file at path first, so attribute changes apply after them. */
  private async flushOpen(path: string): Promise<void> {
    if (this.open.size === 0 || path === '/') return
    const [parentPath, name] = this.split(path)
    const parent = this.dirCache.get(parentPath) ?? (parentPath === '/' ? ROOT_INO : undefined)
    for (const f of this.open.values()) {
      if (f.loc && (parent === undefined || f.loc.parent === parent) && f.loc.name.equals(name)) await flushFile(this.store, f)
    }
  }

  async chmod(ctx: Ctx, path: string, mode: number): Promise<void> {
    await this.setattr(path, (node) => {
      if (!ownsOrRoot(ctx, node.attrs)) fail('EPERM')
      let perm = mode & 0o7777
      // A non-root caller outside the file's group cannot set set-group-ID (Linux's rule).
      if (ctx.uid !== 0 && !inGroup(ctx, node.attrs.gid) && !isDir(node.attrs.mode)) perm &= ~S.ISGID
      node.attrs.mode = (node.attrs.mode & S.IFMT) | perm
      touch(node.attrs, this.clock.now(), false, true)
    })
  }

  /** uid/gid of -1 (0xffffffff) mean "leave unchanged". */
  async chown(ctx: Ctx, path: string, uid: number, gid: number): Promise<void> {
    const keepUid = uid === -1 || uid === 0xffffffff
    const keepGid = gid === -1 || gid === 0xffffffff
    await this.setattr(path, (node) => {
      const a = node.attrs
      const newUid = keepUid ? a.uid : uid
      const newGid = keepGid ? a.gid : gid
      if (ctx.uid !== 0) {
        if (newUid !== a.uid) fail('EPERM')
        if (newGid !== a.gid && (ctx.uid !== a.uid || !inGroup(ctx, newGid))) fail('EPERM')
        if (keepUid && keepGid && ctx.uid !== a.uid) fail('EPERM')
      }
      if (!keepUid || !keepGid) killSuid(a)
      a.uid = newUid
      a.gid = newGid
      touch(a, this.clock.now(), false, true)
    })
  }

  async utimens(ctx: Ctx, path: string, atime: TimeArg, mtime: TimeArg): Promise<void> {
    await this.setattr(path, (node) => this.applyTimes(ctx, node.attrs, atime, mtime))
  }

  private applyTimes(ctx: Ctx, a: Attrs, atime: TimeArg, mtime: TimeArg): void {
    const explicit = (atime !== 'now' && atime !== 'omit') || (mtime !== 'now' && mtime !== 'omit')
    if (!ownsOrRoot(ctx, a)) {
      // Setting times to "now" needs write permission; explicit times need ownership.
      if (explicit || !permits(ctx, a, 2)) fail(explicit ? 'EPERM' : 'EACCES')
    }
    const now = this.clock.now()
    if (atime !== 'omit') {
      const t = atime === 'now' ? now : atime
      a.atimeSec = t.sec
      a.atimeNsec = t.nsec
    }
    if (mtime !== 'omit') {
      const t = mtime === 'now' ? now : mtime
      a.mtimeSec = t.sec
      a.mtimeNsec = t.nsec
    }
    touch(a, now, false, true)
  }

  async statfs(ctx: Ctx): Promise<StatFs> {
    const u = await this.store.usage()
    const bsize = 4096
    const files = 1 << 30
    return {
      bsize,
      frsize: bsize,
      blocks: Math.floor(u.totalBytes / bsize),
      bfree: Math.floor(u.freeBytes / bsize),
      bavail: Math.floor(u.freeBytes / bsize),
      files,
      ffree: files,
      favail: files,
      namemax: MAX_NAME_BYTES,
    }
  }

  // ---------------------------------------------------------------- directories

  async readdir(ctx: Ctx, path: string): Promise<{ names: string[]; stats: Stat[] }> {
    const node = await this.node(this.store, path)
    if (!isDir(node.attrs.mode)) fail('ENOTDIR')
    const self = node.self as DirSelf
    const names = ['.', '..']
    const stats: Stat[] = [toStat(node.ino, node.attrs), { ...toStat(self.parent, node.attrs), mode: S.IFDIR }]
    const range = keys.dentryRange(node.ino)
    const prefixLen = range.start.length
    for (const { key, value } of await this.store.scan(range)) {
      const d = decodeDentry(value, key)
      names.push(key.subarray(prefixLen).toString('utf8'))
      if (d.form === DentryForm.INLINE) stats.push(this.overlay(toStat(d.ino, d.attrs)))
      else stats.push({ ...toStat(d.ino, newAttrs(d.dtype << 12, 0, 0, { sec: 0, nsec: 0 })), nlink: 1 })
    }
    return { names, stats }
  }

  /** Makes a new entry `path` whose inode is built by `make` (given the new ino and parent). */
  private async makeEntry(ctx: Ctx, path: string, mode: number, fill?: (attrs: Attrs) => void): Promise<{ ino: number; node: Node }> {
    const [parentPath, name] = this.split(path)
    const parent = await this.dirIno(parentPath)
    const ino = await this.allocIno()
    const node = await this.txn(async (tx, w) => {
      const self = await getDirSelf(tx, parent)
      if (await tx.get(keys.dentry(parent, name))) fail('EEXIST')
      const now = this.clock.now()
      const sgid = (self.attrs.mode & S.ISGID) !== 0
      const attrs = newAttrs(mode, ctx.uid, sgid ? self.attrs.gid : ctx.gid, now)
      if (sgid && isDir(mode)) attrs.mode |= S.ISGID
      if (fill) fill(attrs)
      const dtype = (mode & S.IFMT) >> 12
      let n: Node
      if (isDir(mode)) {
        const child: DirSelf = { ino, parent, attrs }
        tx.put(keys.dirSelf(ino), encodeDirSelf(child))
        const dentry = { form: DentryForm.REF, ino, dtype } as const
        tx.put(keys.dentry(parent, name), encodeDentry(dentry))
        self.attrs.nlink++
        n = { parent, name, dentryKey: keys.dentry(parent, name), dentry, ino, attrs, where: 'dirself', self: child }
      } else {
        const dentry = { form: DentryForm.INLINE, ino, dtype, attrs } as const
        tx.put(keys.dentry(parent, name), encodeDentry(dentry))
        n = { parent, name, dentryKey: keys.dentry(parent, name), dentry, ino, attrs, where: 'dentry' }
      }
      self.attrs.size++
      touch(self.attrs, now, true, true)
      tx.put(keys.dirSelf(parent), encodeDirSelf(self))
      const st = toStat(ino, attrs)
      w.byPath.set(path, st)
      w.byIno.set(ino, st)
      w.byPath.set(parentPath, toStat(parent, self.attrs))
      return n
    })
    return { ino, node }
  }

  // mkdir, mknod, symlink and link answer with the new entry's attributes as their transaction
  // committed them: libfuse asks for them right after the op, before it replies to the kernel,
  // and the mount answers that question with these (docs/posix.md, "answers that carry a stat").

  async mkdir(ctx: Ctx, path: string, mode: number): Promise<Stat> {
    const { ino, node } = await this.makeEntry(ctx, path, S.IFDIR | (mode & 0o7777))
    return toStat(ino, node.attrs)
  }

  async mknod(ctx: Ctx, path: string, mode: number, rdev: number): Promise<Stat> {
    const type = mode & S.IFMT
    if (type === S.IFDIR || type === S.IFLNK) fail('EINVAL')
    const m = (type === 0 ? S.IFREG : type) | (mode & 0o7777)
    const { ino, node } = await this.makeEntry(ctx, path, m, (a) => {
      if (type === S.IFCHR || type === S.IFBLK) a.rdev = rdev
    })
    return toStat(ino, node.attrs)
  }

  async symlink(ctx: Ctx, target: string, path: string): Promise<Stat> {
    const t = Buffer.from(target, 'utf8')
    if (t.length > SYMLINK_MAX) fail('ENAMETOOLONG')
    const { ino, node } = await this.makeEntry(ctx, path, S.IFLNK | 0o777, (a) => {
      a.target = t
      a.size = t.length
    })
    return toStat(ino, node.attrs)
  }

  async readlink(ctx: Ctx, path: string): Promise<string> {
    const node = await this.node(this.store, path)
    if ((node.attrs.mode & S.IFMT) !== S.IFLNK) fail('EINVAL')
    return node.attrs.target.toString('utf8')
  }

  async rmdir(ctx: Ctx, path: string): Promise<void> {
    if (path === '/') fail('EBUSY')
    const [parentPath, name] = this.split(path)
    const parent = await this.dirIno(parentPath)
    await this.txn(async (tx, w) => {
      const node = await locate(tx, parent, name)
      if (!node) fail('ENOENT')
      const n = node as Node
      if (!isDir(n.attrs.mode)) fail('ENOTDIR')
      if (n.attrs.size > 0) fail('ENOTEMPTY') // the entry count is kept in the same transactions as the entries
      const self = await getDirSelf(tx, parent)
      tx.del(n.dentryKey)
      tx.del(keys.dirSelf(n.ino))
      self.attrs.size--
      self.attrs.nlink--
      touch(self.attrs, this.clock.now(), true, true)
      tx.put(keys.dirSelf(parent), encodeDirSelf(self))
      w.byPath.set(parentPath, toStat(parent, self.attrs))
    })
    this.forgetDir(path)
  }

  /**
   * In tx: removes one link to the non-directory `node` (its DENTRY is deleted by the caller).
   * The last link of a file still open leaves an INODE record and an ORPHAN marker, freed at
   * the last release (or at the next start after a crash). Returns the ino when orphaned.
   */
  private async dropLink(tx: Txn, node: Node, now: { sec: number; nsec: number }): Promise<number | null> {
    const a = node.attrs
    a.nlink--
    touch(a, now, false, true)
    const isOpen = (this.open.get(node.ino)?.refs ?? 0) > 0
    if (a.nlink > 0) {
      tx.put(keys.inode(node.ino), encodeInode(node.ino, a))
      return null
    }
    if (isOpen) {
      tx.put(keys.inode(node.ino), encodeInode(node.ino, a))
      tx.put(keys.orphan(node.ino), encodeOrphan())
      return node.ino
    }
    if (node.where === 'inode') tx.del(keys.inode(node.ino))
    deleteBlocks(tx, node.ino, a.size)
    return null
  }

  private markOrphan(ino: number | null): void {
    if (ino === null) return
    const f = this.open.get(ino)
    if (f) {
      f.loc = null
      f.unlinked = true
    }
  }

  /**
   * libfuse (without hard_remove) keeps an unlinked file that is still open reachable under a
   * new name, ".fuse_hidden<16 hex>", by renaming it there, and unlinks that name after the
   * last release. We treat that rename as the unlink it stands for: the entry goes away at
   * once (readdir and rmdir never see it), the inode becomes an orphan kept for its open
   * handles, and the hidden name resolves to it in memory until libfuse unlinks it.
   */
  private async hide(ctx: Ctx, from: string, to: string): Promise<void> {
    const { ino } = await this.removeName(from, 'EINVAL')
    const f = this.open.get(ino)
    if (f) {
      f.loc = null
      this.hidden.set(to, ino)
    }
  }

  async unlink(ctx: Ctx, path: string): Promise<void> {
    this.forgetOpenPaths(path, false)
    if (this.hidden.delete(path)) return
    await this.removeName(path, 'EISDIR')
  }

  /**
   * Removes the name at path (never a directory: `dirErrno` then) and one link of its inode,
   * in one transaction with the directory's entry count and times. Returns the inode and
   * whether it became an orphan (unlinked while open).
   */
  private async removeName(path: string, dirErrno: 'EISDIR' | 'EINVAL'): Promise<{ ino: number; orphan: number | null }> {
    const [parentPath, name] = this.split(path)
    const parent = await this.dirIno(parentPath)
    const f0 = this.findOpenAt(parent, name)
    if (f0) await flushFile(this.store, f0) // the INODE record then holds the final size
    const result = await this.txn(async (tx, w) => {
      const node = await locate(tx, parent, name)
      if (!node) fail('ENOENT')
      const n = node as Node
      if (isDir(n.attrs.mode)) fail(dirErrno)
      const self = await getDirSelf(tx, parent)
      const now = this.clock.now()
      tx.del(n.dentryKey)
      const orphan = await this.dropLink(tx, n, now)
      self.attrs.size--
      touch(self.attrs, now, true, true)
      tx.put(keys.dirSelf(parent), encodeDirSelf(self))
      w.byPath.set(parentPath, toStat(parent, self.attrs))
      return { ino: n.ino, orphan }
    })
    this.markOrphan(result.orphan)
    return result
  }

  private findOpenAt(parent: number, name: Buffer): OpenFile | undefined {
    for (const f of this.open.values()) if (f.loc && f.loc.parent === parent && f.loc.name.equals(name)) return f
    return undefined
  }

  async rename(ctx: Ctx, from: string, to: string): Promise<void> {
    if (from === to) return
    this.forgetOpenPaths(from, true)
    this.forgetOpenPaths(to, true)
    if (HIDDEN_NAME.test(to)) return this.hide(ctx, from, to)
    if (to.startsWith(from + '/')) fail('EINVAL', 'cannot move a directory into itself')
    if (from === '/' || to === '/') fail('EBUSY')
    const [fromDir, fromName] = this.split(from)
    const [toDir, toName] = this.split(to)
    const fromParent = await this.dirIno(fromDir)
    const toParent = await this.dirIno(toDir)
    for (const f of [this.findOpenAt(fromParent, fromName), this.findOpenAt(toParent, toName)]) if (f) await flushFile(this.store, f)
    const result = await this.txn(async (tx, w) => {
      const src = await locate(tx, fromParent, fromName)
      if (!src) fail('ENOENT')
      const s = src as Node
      const dst = await locate(tx, toParent, toName)
      const srcDir = isDir(s.attrs.mode)
      if (dst) {
        if (dst.ino === s.ino) return { moved: null, orphan: null, replacedDir: false }
        if (srcDir && !isDir(dst.attrs.mode)) fail('ENOTDIR')
        if (!srcDir && isDir(dst.attrs.mode)) fail('EISDIR')
        if (isDir(dst.attrs.mode) && dst.attrs.size > 0) fail('ENOTEMPTY')
      }
      const now = this.clock.now()
      const fromSelf = await getDirSelf(tx, fromParent)
      const toSelf = toParent === fromParent ? fromSelf : await getDirSelf(tx, toParent)
      let orphan: number | null = null
      if (dst) {
        if (isDir(dst.attrs.mode)) {
          tx.del(keys.dirSelf(dst.ino))
          toSelf.attrs.nlink--
        } else {
          orphan = await this.dropLink(tx, dst, now)
        }
        toSelf.attrs.size--
      }
      tx.del(s.dentryKey)
      const newKey = keys.dentry(toParent, toName)
      touch(s.attrs, now, false, true)
      if (s.where === 'dentry') {
        tx.put(newKey, encodeDentry({ form: DentryForm.INLINE, ino: s.ino, dtype: s.dentry.dtype, attrs: s.attrs }))
      } else {
        tx.put(newKey, encodeDentry({ form: DentryForm.REF, ino: s.ino, dtype: s.dentry.dtype }))
        if (s.where === 'dirself') {
          const self = s.self as DirSelf
          tx.put(keys.dirSelf(s.ino), encodeDirSelf({ ino: s.ino, parent: toParent, attrs: s.attrs }))
          self.parent = toParent
        } else {
          tx.put(keys.inode(s.ino), encodeInode(s.ino, s.attrs))
        }
      }
      fromSelf.attrs.size--
      toSelf.attrs.size++
      if (srcDir && fromParent !== toParent) {
        fromSelf.attrs.nlink--
        toSelf.attrs.nlink++
      }
      touch(fromSelf.attrs, now, true, true)
      touch(toSelf.attrs, now, true, true)
      tx.put(keys.dirSelf(fromParent), encodeDirSelf(fromSelf))
      if (toSelf !== fromSelf) tx.put(keys.dirSelf(toParent), encodeDirSelf(toSelf))
      w.byPath.set(fromDir, toStat(fromParent, fromSelf.attrs))
      w.byPath.set(toDir, toStat(toParent, toSelf.attrs))
      w.byPath.set(to, toStat(s.ino, s.attrs))
      return { moved: s.where === 'dentry' ? s.ino : null, orphan, replacedDir: dst !== undefined && isDir(dst.attrs.mode) }
    })
    this.forgetDir(from)
    if (result.replacedDir) this.forgetDir(to)
    this.markOrphan(result.orphan)
    if (result.moved !== null) {
      const f = this.open.get(result.moved)
      if (f) f.loc = { parent: toParent, name: toName }
    }
  }

  async link(ctx: Ctx, existing: string, path: string): Promise<Stat> {
    const [srcDir, srcName] = this.split(existing)
    const [dstDir, dstName] = this.split(path)
    const srcParent = await this.dirIno(srcDir)
    const dstParent = await this.dirIno(dstDir)
    const f0 = this.findOpenAt(srcParent, srcName)
    if (f0) await flushFile(this.store, f0)
    const { ino, attrs } = await this.store.txn(async (tx) => {
      const src = await locate(tx, srcParent, srcName)
      if (!src) fail('ENOENT')
      const s = src as Node
      if (isDir(s.attrs.mode)) fail('EPERM')
      if (await tx.get(keys.dentry(dstParent, dstName))) fail('EEXIST')
      const now = this.clock.now()
      s.attrs.nlink++
      touch(s.attrs, now, false, true)
      // The attributes move to (or stay in) the INODE record; both names point to it.
      tx.put(keys.inode(s.ino), encodeInode(s.ino, s.attrs))
      if (s.where === 'dentry') tx.put(s.dentryKey, encodeDentry({ form: DentryForm.REF, ino: s.ino, dtype: s.dentry.dtype }))
      tx.put(keys.dentry(dstParent, dstName), encodeDentry({ form: DentryForm.REF, ino: s.ino, dtype: s.dentry.dtype }))
      const self = await getDirSelf(tx, dstParent)
      self.attrs.size++
      touch(self.attrs, now, true, true)
      tx.put(keys.dirSelf(dstParent), encodeDirSelf(self))
      return { ino: s.ino, attrs: s.attrs }
    })
    const f = this.open.get(ino)
    if (f) f.loc = null
    return this.overlay(toStat(ino, attrs))
  }

  // ---------------------------------------------------------------- files

  private handle(fh: number): Handle {
    const h = this.handles.get(fh)
    if (!h) fail('EBADF')
    return h as Handle
  }

  private addHandle(ino: number, loc: Loc, size: number, flags: number): number {
    let f = this.open.get(ino)
    if (!f) {
      f = new OpenFile(ino, loc, size)
      f.onCaps = (x) => this.publishCaps(x)
      this.open.set(ino, f)
    } else {
      f.dropAhead() // close-to-open: what this open reads was committed before it, not before the last one
    }
    f.refs++
    const fh = this.nextFh
    this.nextFh = this.nextFh >= 0xfffffffe ? 1 : this.nextFh + 1
    this.handles.set(fh, { file: f, flags })
    return fh
  }

  async create(ctx: Ctx, path: string, mode: number, flags: number): Promise<number> {
    const { ino, node } = await this.makeEntry(ctx, path, S.IFREG | (mode & 0o7777))
    const fh = this.addHandle(ino, { parent: node.parent, name: node.name }, 0, flags)
    const h = this.handle(fh)
    h.created = toStat(ino, node.attrs)
    this.noteOpenPath(path, h.file, node.attrs.xattrs.get(CAPS_XATTR) ?? null)
    return fh
  }

  /**
   * The attributes a created handle's create committed, once (see Handle.created): the mount
   * takes them to answer libfuse's fgetattr of the new handle without a call back into JS;
   * later questions about the handle ask the store.
   */
  createdStat(fh: number): Stat | null {
    const h = this.handles.get(fh)
    const created = h?.created
    if (!h || !created) return null
    h.created = undefined
    return this.overlay({ ...created })
  }

  async openFile(ctx: Ctx, path: string, flags: number): Promise<number> {
    const node = await this.node(this.store, path)
    if (isDir(node.attrs.mode)) fail('EISDIR')
    const loc: Loc = node.where === 'dentry' ? { parent: node.parent, name: node.name } : null
    const fh = this.addHandle(node.ino, loc, node.attrs.size, flags)
    this.noteOpenPath(path, this.handle(fh).file, node.attrs.xattrs.get(CAPS_XATTR) ?? null)
    return fh
  }

  private noteOpenPath(path: string, f: OpenFile, caps: Buffer | null): void {
    if (HIDDEN_NAME.test(path)) return
    f.caps = caps
    this.forgetOpenPath(path)
    this.openPaths.set(path, f)
    f.openPaths.add(path)
    this.capsListener?.(path, f.caps === null)
  }

  private forgetOpenPath(path: string): void {
    const f = this.openPaths.get(path)
    if (!f) return
    f.openPaths.delete(path)
    this.openPaths.delete(path)
    this.capsListener?.(path, false)
  }

  /**
   * The mount's mirror of what getxattr answers from memory for security.capability: told
   * `(path, true)` while `path` names a file open here that is known to have none, and
   * `(path, false)` as soon as that stops being so (a capability seen, the path forgotten by a
   * rename or unlink, the file closed). The mount then answers that getxattr without calling
   * in (docs/fuse-native.md); the answer is the one getxattr below would give.
   */
  setCapsListener(fn: ((path: string, none: boolean) => void) | null): void {
    this.capsListener = fn
  }

  /** An open file's caps changed: tell the listener for each path that maps to it. */
  private publishCaps(f: OpenFile): void {
    const l = this.capsListener
    if (!l) return
    for (const p of f.openPaths) if (this.openPaths.get(p) === f) l(p, f.caps === null)
  }

  /** A rename or unlink through this mount changes what `path` (and, for a directory, what is
   * under it) names. */
  private forgetOpenPaths(path: string, directory: boolean): void {
    if (this.openPaths.size === 0) return
    this.forgetOpenPath(path)
    if (!directory) return
    const prefix = path + '/'
    for (const p of [...this.openPaths.keys()]) if (p.startsWith(prefix)) this.forgetOpenPath(p)
  }

  async read(ctx: Ctx, fh: number, buf: Buffer, len: number, offset: number): Promise<number> {
    return readData(this.store, this.handle(fh).file, buf, len, offset, this.readAhead)
  }

  async write(ctx: Ctx, fh: number, buf: Buffer, len: number, offset: number): Promise<number> {
    const h = this.handle(fh)
    const f = h.file
    if (h.flags & 0o2000) offset = f.size // O_APPEND
    const n = await writeData(this.store, f, buf, len, offset, this.clock.now())
    if (ctx.uid !== 0) f.killSuid = true
    if (f.pendingBlocks >= MAX_DIRTY_BLOCKS_PER_FILE) await flushFile(this.store, f)
    else if (f.pendingBlocks >= FLUSH_BEHIND_BLOCKS && !f.flushing) {
      // Write-behind: commit what is buffered while the writer goes on filling the next
      // batch. A failure puts the blocks back (flushFile), so the next flush, fsync or close
      // retries them and reports the error there.
      flushFile(this.store, f).catch((err) => this.log.warn({ ino: f.ino, err: (err as Error).message }, 'write-behind commit failed; its blocks stay buffered and the next flush, fsync or close retries them'))
    }
    return n
  }

  async flush(ctx: Ctx, fh: number): Promise<void> {
    await flushFile(this.store, this.handle(fh).file)
  }

  /** One synced commit of the buffered data, or a sync when nothing is buffered. */
  async fsync(ctx: Ctx, fh: number): Promise<void> {
    await flushFile(this.store, this.handle(fh).file, true)
  }

  async fsyncdir(): Promise<void> {
    await this.store.sync()
  }

  async release(ctx: Ctx, fh: number): Promise<void> {
    const h = this.handle(fh)
    this.handles.delete(fh)
    const f = h.file
    if (--f.refs > 0) return
    try {
      await flushFile(this.store, f)
    } finally {
      if (f.refs === 0) {
        this.open.delete(f.ino)
        for (const p of f.openPaths) {
          if (this.openPaths.get(p) !== f) continue
          this.openPaths.delete(p)
          this.capsListener?.(p, false)
        }
        f.openPaths.clear()
      }
    }
    if (f.unlinked) {
      await this.store.txn(async (tx) => {
        const rec = await read(tx, keys.inode(f.ino), decodeInode)
        deleteBlocks(tx, f.ino, Math.max(f.size, rec?.attrs.size ?? 0))
        tx.del(keys.inode(f.ino))
        tx.del(keys.orphan(f.ino))
      })
    }
  }

  async truncate(ctx: Ctx, path: string, size: number): Promise<void> {
    if (size < 0) fail('EINVAL')
    await this.flushOpen(path)
    const node = await this.store.txn(async (tx) => {
      const n = await this.node(tx, path)
      if (isDir(n.attrs.mode)) fail('EISDIR')
      await truncateInTxn(tx, n, size, this.clock.now())
      storeAttrs(tx, n)
      return n
    })
    const f = this.open.get(node.ino)
    if (f) {
      f.size = size
      f.clean.clear()
      f.dropAhead()
    }
  }

  async ftruncate(ctx: Ctx, fh: number, size: number): Promise<void> {
    if (size < 0) fail('EINVAL')
    const f = this.handle(fh).file
    await flushFile(this.store, f)
    await this.store.txn(async (tx) => {
      const n = await loadFileNode(tx, f)
      await truncateInTxn(tx, n, size, this.clock.now())
      storeAttrs(tx, n)
    })
    f.size = size
    f.clean.clear()
    f.dropAhead()
  }

  // ---------------------------------------------------------------- xattrs

  private checkXattrName(name: string): void {
    const n = Buffer.byteLength(name)
    if (n === 0) fail('EINVAL')
    if (n > XATTR_NAME_MAX) fail('ERANGE')
    if (!/^(user|trusted|security)\./.test(name)) fail('EOPNOTSUPP')
  }

  async setxattr(ctx: Ctx, path: string, name: string, value: Buffer, flags: number): Promise<void> {
    this.checkXattrName(name)
    if (value.length > XATTR_VALUE_MAX) fail('E2BIG')
    await this.setattr(path, (node) => {
      const a = node.attrs
      if (name.startsWith('user.') && !ownsOrRoot(ctx, a) && !permits(ctx, a, 2)) fail('EACCES')
      if (name.startsWith('trusted.') && ctx.uid !== 0) fail('EPERM')
      const exists = a.xattrs.has(name)
      if (flags & XATTR_CREATE && exists) fail('EEXIST')
      if (flags & XATTR_REPLACE && !exists) fail('ENODATA')
      a.xattrs.set(name, Buffer.from(value))
      let total = 0
      for (const [k, v] of a.xattrs) total += k.length + v.length
      if (total > XATTR_TOTAL_MAX) fail('ENOSPC')
      touch(a, this.clock.now(), false, true)
    })
  }

  async getxattr(ctx: Ctx, path: string, name: string): Promise<Buffer> {
    if (!/^(user|trusted|security)\./.test(name)) fail('ENODATA')
    if (name === CAPS_XATTR) {
      // Asked by the kernel before every write: answer for a file open here from what its
      // open and its last commit saw (changes made through other mounts show after the next
      // flush, as file data does: close-to-open).
      const caps = this.openPaths.get(path)?.caps
      if (caps === null) fail('ENODATA')
      if (caps) return Buffer.from(caps)
    }
    const node = await this.node(this.store, path)
    const v = node.attrs.xattrs.get(name)
    if (!v) fail('ENODATA')
    return v as Buffer
  }

  async listxattr(ctx: Ctx, path: string): Promise<string[]> {
    const node = await this.node(this.store, path)
    return [...node.attrs.xattrs.keys()]
  }

  async removexattr(ctx: Ctx, path: string, name: string): Promise<void> {
    this.checkXattrName(name)
    await this.setattr(path, (node) => {
      if (!node.attrs.xattrs.delete(name)) fail('ENODATA')
      touch(node.attrs, this.clock.now(), false, true)
    })
  }

  /** Number of open inodes and handles (tests and status). */
  stats(): { openFiles: number; handles: number } {
    return { openFiles: this.open.size, handles: this.handles.size }
  }
}

export { FsError }
