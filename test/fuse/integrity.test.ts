// The data-integrity suite (integrity-suite.ts) through a `polyfs mount --local` process.
import { after, before } from 'node:test'
import { LocalMount, startLocalMount } from '../helpers/mount'
import { integritySuite } from './integrity-suite'

let m: LocalMount
before(async () => {
  m = await startLocalMount()
})
after(() => m?.cleanup())

integritySuite(() => m.mnt, { ops: 3000 })
