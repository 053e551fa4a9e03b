// Finding an inode's attributes and writing them back, wherever they live (DENTRY inline,
// DIRSELF for directories, INODE for multi-link and orphaned files), plus the attribute and
// permission rules shared by every operation.
import { keys } from '../kv'
import { FsError } from './errors'
import {
  Attrs,
  CorruptRecordError,
  Dentry,
  DentryForm,
  DirSelf,
  decodeDentry,
  decodeDirSelf,
  decodeInode,
  encodeDentry,
  encodeDirSelf,
  encodeInode,
} from './records'
import { Ctx, S, Stat, Timespec, isDir } from './types'

/** Anything with a get: the KV itself or a transaction. */
export interface Getter {
  get(key: Buffer): Promise<Buffer | undefined>
}

export interface Putter {
  put(key: Buffer, value: Buffer): void
}

/** A name in a directory and the inode it points to, with its current attributes. */
export interface Node {
  parent: number
  name: Buffer
  dentryKey: Buffer
  dentry: Dentry
  ino: number
  attrs: Attrs
  /** Where attrs are stored. */
  where: 'dentry' | 'dirself' | 'inode'
  /** The directory's own record, for directories. */
  self?: DirSelf
}

/** Reads a record and decodes it; a corrupt record becomes EIO with the key in the message. */
export async function read<T>(g: Getter, key: Buffer, decode: (b: Buffer, k: Buffer) => T): Promise<T | undefined> {
  const buf = await g.get(key)
  if (buf === undefined) return undefined
  return decode(buf, key)
}

export async function getDirSelf(g: Getter, ino: number): Promise<DirSelf> {
  const key = keys.dirSelf(ino)
  const self = await read(g, key, decodeDirSelf)
  if (!self) throw new FsError('ENOENT', `directory ${ino} has no DIRSELF record`)
  return self
}

export async function getInode(g: Getter, ino: number): Promise<Attrs> {
  const key = keys.inode(ino)
  const rec = await read(g, key, decodeInode)
  if (!rec) throw new CorruptRecordError(key, `inode ${ino} is referenced but missing`)
  return rec.attrs
}

/** Looks a name up in a directory; undefined when absent. */
export async function locate(g: Getter, parent: number, name: Buffer): Promise<Node | undefined> {
  const dentryKey = keys.dentry(parent, name)
  const dentry = await read(g, dentryKey, decodeDentry)
  if (!dentry) return undefined
  return nodeOf(g, parent, name, dentryKey, dentry)
}

/** The node a directory entry names: its attributes from the entry itself (a file with one
 * link), its directory's own record, or its inode. `self`, when given, is that directory
 * record already read (a speculative read the caller checked against `dentry.ino`). */
export async function nodeOf(g: Getter, parent: number, name: Buffer, dentryKey: Buffer, dentry: Dentry, self?: DirSelf): Promise<Node> {
  const base = { parent, name, dentryKey, dentry, ino: dentry.ino }
  if (dentry.form === DentryForm.INLINE) return { ...base, attrs: dentry.attrs, where: 'dentry' }
  if (dentry.dtype === S.IFDIR >> 12) {
    const rec = self ?? (await read(g, keys.dirSelf(dentry.ino), decodeDirSelf))
    if (!rec) throw new CorruptRecordError(keys.dirSelf(dentry.ino), `directory ${dentry.ino} is referenced but missing`)
    return { ...base, attrs: rec.attrs, where: 'dirself', self: rec }
  }
  return { ...base, attrs: await getInode(g, dentry.ino), where: 'inode' }
}

/** The inode number and type of `name` in `parent` from its directory entry alone (one read;
 * path resolution needs no attributes), or undefined when absent. */
export async function lookupEntry(g: Getter, parent: number, name: Buffer): Promise<{ ino: number; isDir: boolean } | undefined> {
  const dentry = await read(g, keys.dentry(parent, name), decodeDentry)
  if (!dentry) return undefined
  return { ino: dentry.ino, isDir: dentry.dtype === S.IFDIR >> 12 }
}

/** Writes a node's attributes back to where they live. */
export function storeAttrs(tx: Putter, node: Node): void {
  switch (node.where) {
    case 'dentry':
      tx.put(node.dentryKey, encodeDentry({ form: DentryForm.INLINE, ino: node.ino, dtype: node.dentry.dtype, attrs: node.attrs }))
      return
    case 'dirself': {
      const self = node.self as DirSelf
      tx.put(keys.dirSelf(node.ino), encodeDirSelf({ ...self, attrs: node.attrs }))
      return
    }
    case 'inode':
      tx.put(keys.inode(node.ino), encodeInode(node.ino, node.attrs))
      return
  }
}

export function newAttrs(mode: number, uid: number, gid: number, now: Timespec): Attrs {
  return {
    mode,
    uid,
    gid,
    nlink: isDir(mode) ? 2 : 1,
    size: 0,
    rdev: 0,
    atimeSec: now.sec,
    atimeNsec: now.nsec,
    mtimeSec: now.sec,
    mtimeNsec: now.nsec,
    ctimeSec: now.sec,
    ctimeNsec: now.nsec,
    target: Buffer.alloc(0),
    xattrs: new Map(),
  }
}

export function touch(a: Attrs, now: Timespec, m: boolean, c: boolean): void {
  if (m) {
    a.mtimeSec = now.sec
    a.mtimeNsec = now.nsec
  }
  if (c) {
    a.ctimeSec = now.sec
    a.ctimeNsec = now.nsec
  }
}

export function toStat(ino: number, a: Attrs): Stat {
  return {
    ino,
    mode: a.mode,
    uid: a.uid,
    gid: a.gid,
    nlink: a.nlink,
    size: a.size,
    rdev: a.rdev,
    blksize: 128 * 1024,
    blocks: Math.ceil(a.size / 512),
    atimeSec: a.atimeSec,
    atimeNsec: a.atimeNsec,
    mtimeSec: a.mtimeSec,
    mtimeNsec: a.mtimeNsec,
    ctimeSec: a.ctimeSec,
    ctimeNsec: a.ctimeNsec,
  }
}

export function inGroup(ctx: Ctx, gid: number): boolean {
  return ctx.gid === gid || (ctx.groups !== undefined && ctx.groups.includes(gid))
}

/** POSIX permission check of `mask` (R_OK|W_OK|X_OK bits) for the caller. */
export function permits(ctx: Ctx, a: Attrs, mask: number): boolean {
  if (ctx.uid === 0) return (mask & 1) === 0 || isDir(a.mode) || (a.mode & 0o111) !== 0
  let bits: number
  if (ctx.uid === a.uid) bits = (a.mode >> 6) & 7
  else if (inGroup(ctx, a.gid)) bits = (a.mode >> 3) & 7
  else bits = a.mode & 7
  return (bits & mask) === mask
}

/** Owner of the file or root: who may chmod, utimens to explicit times, set ownership. */
export function ownsOrRoot(ctx: Ctx, a: Attrs): boolean {
  return ctx.uid === 0 || ctx.uid === a.uid
}

/** Clears set-user-ID, and set-group-ID when group-executable (Linux's should_remove_suid). */
export function killSuid(a: Attrs): void {
  if (isDir(a.mode)) return
  a.mode &= ~S.ISUID
  if ((a.mode & (S.ISGID | S.IXGRP)) === (S.ISGID | S.IXGRP)) a.mode &= ~S.ISGID
}
