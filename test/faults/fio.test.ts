// fio with verify=crc32c across a node kill: random 4 KiB direct writes (an fsync every 16)
// through one client mount of a 3-node cluster while the region leader is killed -9, fio's own
// read-back verify in the same run, and a verify-only pass through a second mount (nothing
// served from the first client's memory). Seeded: fio's random offsets come from POLYFS_SEED.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { dumpLogs, fullyReplicated, startNodes } from '../helpers/cluster'
import { testSeed, waitFor } from '../helpers/mount'

const job = (file: string, seed: number, extra: string[]) => [
  '--name=verify',
  `--filename=${file}`,
  '--size=16M',
  '--bs=4k',
  '--rw=randwrite',
  '--ioengine=psync',
  '--direct=1',
  '--fsync=16',
  '--verify=crc32c',
  '--verify_fatal=1',
  // No <job>-<n>-verify.state file in the working directory.
  '--verify_state_save=0',
  `--randseed=${seed}`,
  '--output-format=terse',
  ...extra,
]

test('faults: fio verify=crc32c across a kill -9 of the region leader, read back through another mount', { timeout: 10 * 60_000 }, async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (POLYFS_SEED=${seed} replays it)`)
  const c = startNodes(t, 3)
  try {
    await fullyReplicated(c)
    const a = (await c.mount()).mnt
    const b = (await c.mount()).mnt
    const fio = spawn('fio', job(path.join(a, 'fio.dat'), seed, ['--do_verify=1']), { stdio: ['ignore', 'pipe', 'pipe'] })
    t.after(() => {
      if (fio.exitCode === null) fio.kill('SIGKILL')
    })
    let out = ''
    fio.stdout.on('data', (d: Buffer) => (out += d.toString()))
    fio.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const done = new Promise<number>((res) => fio.once('exit', (code) => res(code ?? -1)))
    // Kill the region leader once fio is writing: its file has grown, read through the other mount.
    const file = path.join(b, 'fio.dat')
    await waitFor(() => fio.exitCode !== null || (fs.existsSync(file) && fs.statSync(file).size > 0), 60_000, 'fio writing')
    assert.equal(fio.exitCode, null, `fio stopped early:\n${out.slice(-2000)}`)
    const m = await c.map()
    const leader = (m?.nodes ?? []).find((n) => n.nodeId === m?.regions?.[0]?.leader)?.address
    const victim = c.nodes.find((n) => n.address === leader)
    assert.ok(victim, 'a region leader')
    await victim.kill9()
    t.diagnostic(`killed ${victim.name}, the region leader, while fio wrote`)
    victim.start()
    let exited = false
    void done.then(() => (exited = true))
    await waitFor(() => exited, 8 * 60_000, 'fio to finish')
    assert.equal(await done, 0, `fio write+verify failed:\n${out.slice(-2000)}`)
    // The same blocks, checked through another client: they are in the cluster.
    const again = spawnSync('fio', job(path.join(b, 'fio.dat'), seed, ['--verify_only']), { encoding: 'utf8', timeout: 5 * 60_000 })
    assert.equal(again.status, 0, `fio verify through the second mount failed:\n${(again.stdout + again.stderr).slice(-2000)}`)
  } catch (err) {
    console.error(dumpLogs(c, 30))
    throw err
  }
})
