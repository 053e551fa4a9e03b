// Shared types of the filesystem layer: caller context, stat, mode bits.

/** Who is calling: every fs operation takes this first (from FUSE's fuse_get_context). */
export interface Ctx {
  readonly uid: number
  readonly gid: number
  readonly pid: number
  /** Supplementary groups when known (permission checks of access()). */
  readonly groups?: readonly number[]
}

export const ROOT_CTX: Ctx = { uid: 0, gid: 0, pid: 0 }

/** The fields an inode's stored attributes and its stat share. Times: seconds + nanoseconds. */
export interface InodeFields {
  mode: number
  uid: number
  gid: number
  nlink: number
  size: number
  rdev: number
  atimeSec: number
  atimeNsec: number
  mtimeSec: number
  mtimeNsec: number
  ctimeSec: number
  ctimeNsec: number
}

/** What getattr answers. */
export interface Stat extends InodeFields {
  ino: number
  blksize: number
  blocks: number
}

export interface StatFs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  favail: number
  namemax: number
}

export interface Timespec {
  sec: number
  nsec: number
}

/** utimens: a time, or 'now', or 'omit' (leave unchanged). */
export type TimeArg = Timespec | 'now' | 'omit'

export const S = {
  IFMT: 0o170000,
  IFSOCK: 0o140000,
  IFLNK: 0o120000,
  IFREG: 0o100000,
  IFBLK: 0o060000,
  IFDIR: 0o040000,
  IFCHR: 0o020000,
  IFIFO: 0o010000,
  ISUID: 0o4000,
  ISGID: 0o2000,
  ISVTX: 0o1000,
  IXGRP: 0o010,
} as const

export const isDir = (mode: number): boolean => (mode & S.IFMT) === S.IFDIR
export const isReg = (mode: number): boolean => (mode & S.IFMT) === S.IFREG

/** access() mask bits. */
export const R_OK = 4
export const W_OK = 2
export const X_OK = 1

export interface Clock {
  now(): Timespec
}

export const realClock: Clock = {
  now(): Timespec {
    const ms = performance.timeOrigin + performance.now()
    const sec = Math.floor(ms / 1000)
    return { sec, nsec: Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1e6)) }
  },
}
