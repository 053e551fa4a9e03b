// The tools suite (tools-suite.ts) through a `polyfs mount --local` process.
import { after, before } from 'node:test'
import { LocalMount, startLocalMount } from '../helpers/mount'
import { toolsSuite } from './tools-suite'

let m: LocalMount
before(async () => {
  m = await startLocalMount()
})
after(() => m?.cleanup())

toolsSuite(() => m.mnt)
