// The POSIX suite (posix-suite.ts), through a real FUSE mount served by a real
// `polyfs mount --local` process.
import { after, before } from 'node:test'
import { LocalMount, startLocalMount } from '../helpers/mount'
import { posixSuite } from './posix-suite'

let m: LocalMount
before(async () => {
  m = await startLocalMount()
})
after(() => m?.cleanup())

posixSuite(() => m.mnt, { bigMiB: 1024, manyFiles: 10_000 })
