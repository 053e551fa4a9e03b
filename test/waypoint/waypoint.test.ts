// The waypoint over gRPC, in process and as the real `polyfs waypoint` command.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { test } from 'node:test'
import pino from 'pino'
import { RpcClients } from '../../src/rpc'
import { startWaypoint } from '../../src/waypoint'
import { POLYFS, waitFor, type Cleanup } from '../helpers/mount'

const SECRET = 'wp-secret'
const quiet = pino({ level: 'silent' })
const leader = { nodeId: 1, address: '127.0.0.1:7001' }

function rpc(t: Cleanup): RpcClients {
  const c = new RpcClients({ secret: SECRET, logger: quiet })
  t.after(() => c.close())
  return c
}

test('waypoint: registration, hold period and claims over gRPC (manual clock)', async (t) => {
  let nowMs = 1_000_000
  const wp = await startWaypoint({ listen: '127.0.0.1:0', secret: SECRET, holdMs: 3000, masterExpiryMs: 30_000, logger: quiet, clock: () => nowMs })
  t.after(() => wp.close())
  const api = rpc(t).waypoint(wp.address)

  assert.deepEqual(await api.claim({ claimant: 'claimant-a', address: '127.0.0.21:7001', ttlMs: 1000 }), { granted: false, holder: '', masterKnown: false }, 'hold period')
  nowMs += 3000
  assert.equal((await api.claim({ claimant: 'claimant-a', address: '127.0.0.21:7001', ttlMs: 1000 })).granted, true)
  assert.equal((await api.claim({ claimant: 'claimant-b', address: '127.0.0.22:7002', ttlMs: 1000 })).holder, 'claimant-a')

  assert.deepEqual(await api.setMaster({ clusterId: 'c1', leader, term: 2, members: [leader] }), {})
  assert.deepEqual(await api.getMaster({}), { known: true, clusterId: 'c1', leader, term: 2, members: [leader] })
  assert.deepEqual(await api.claim({ claimant: 'claimant-b', address: '127.0.0.22:7002' }), { granted: false, holder: '', masterKnown: true })
  assert.equal((await api.setMaster({ clusterId: 'c2', leader, term: 9 })).error?.code, 'CLUSTER_MISMATCH')
  assert.equal((await api.setMaster({ clusterId: 'c1', leader, term: 1 })).error?.code, 'NOT_LEADER')

  nowMs += 30_001
  assert.equal((await api.getMaster({})).known, false, 'expired')
  await assert.rejects(api.claim({ claimant: '' }), (err: Error & { code?: string }) => err.code === 'INVALID_ARGUMENT')
})

/** Spawns `polyfs waypoint`; collects stderr; killed by PID in t.after if still running. */
function spawnWaypoint(t: Cleanup, args: string[], env: NodeJS.ProcessEnv): { proc: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [POLYFS, 'waypoint', ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  })
  return { proc, stderr: () => err, exited }
}

test('waypoint: `polyfs waypoint` logs its address, answers, and exits 0 on SIGTERM', async (t) => {
  const env = { ...process.env, POLYFS_SECRET: SECRET }
  const w = spawnWaypoint(t, ['--listen', '127.0.0.1:0', '--log-level', 'info'], env)
  let address = ''
  await waitFor(
    () => {
      const line = w.stderr().split('\n').find((l) => l.includes('"waypoint listening"'))
      if (line) address = JSON.parse(line).address
      return address !== '' || w.proc.exitCode !== null
    },
    10_000,
    'the waypoint to log its address',
  )
  assert.match(address, /^127\.0\.0\.1:\d+$/, w.stderr())
  const api = rpc(t).waypoint(address)
  assert.equal((await api.getMaster({})).known, false)
  assert.deepEqual(await api.setMaster({ clusterId: 'c1', leader, term: 1 }), {})
  assert.equal((await api.getMaster({})).clusterId, 'c1')
  w.proc.kill('SIGTERM')
  assert.equal(await w.exited, 0, w.stderr())
})

test('waypoint: `polyfs waypoint` without a secret exits 1 and says how to give one', async (t) => {
  const env = { ...process.env }
  delete env.POLYFS_SECRET
  const w = spawnWaypoint(t, ['--listen', '127.0.0.1:0'], env)
  assert.equal(await w.exited, 1)
  assert.match(w.stderr(), /no cluster secret: set POLYFS_SECRET or pass --secret/)
})
