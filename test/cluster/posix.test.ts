// The first issue's POSIX suite, data-integrity test and tools (git, tar, cp, vim, sqlite3),
// through a client mount of a real 3-node cluster (3 replicas) on loopback.
import assert from 'node:assert/strict'
import { after, before } from 'node:test'
import { dumpLogs, fullyReplicated, startCluster } from '../helpers/cluster'
import { isMounted } from '../helpers/mount'
import { integritySuite } from '../fuse/integrity-suite'
import { posixSuite } from '../fuse/posix-suite'
import { toolsSuite } from '../fuse/tools-suite'

// Created at module level so that its cleanup is registered with the module's after().
const c = startCluster({ after })
let mnt = ''

before(async () => {
  for (let i = 0; i < 3; i++) c.addNode().start()
  try {
    await fullyReplicated(c)
    mnt = (await c.mount()).mnt
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

// Guard: every test must run against the live mount, never the bare directory under it.
const mounted = () => {
  assert.ok(mnt && isMounted(mnt), 'the cluster mount is not mounted')
  return mnt
}

posixSuite(mounted, { bigMiB: 128, manyFiles: 2_000 })
integritySuite(mounted, { ops: 1500 })
toolsSuite(mounted)
