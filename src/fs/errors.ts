// Filesystem errors carry an errno name that reaches the kernel unchanged (src/fuse maps it
// to the negative number). Anything else thrown inside fs/ becomes EIO at the FUSE boundary.
import { constants } from 'node:os'

export type Errno = keyof typeof constants.errno

export class FsError extends Error {
  readonly errno: Errno
  constructor(errno: Errno, message?: string) {
    // ENOENT and friends are answers, not bugs: skip the stack capture on this hot path.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message ? `${errno}: ${message}` : errno)
    Error.stackTraceLimit = limit
    this.errno = errno
    this.name = 'FsError'
  }
}

export const fail = (errno: Errno, message?: string): never => {
  throw new FsError(errno, message)
}

/** The positive errno number for a name (e.g. ENOENT -> 2). */
export function errnoNumber(name: Errno): number {
  return constants.errno[name]
}
