// The secret gate: no handler runs, and nothing changes, for a call without the right secret.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encode, RpcClients, RpcError, type RaftBatch } from '../../src/rpc'
import { startWaypoint } from '../../src/waypoint'
import { waitFor } from '../helpers/mount'
import { clients, quiet, rawClient, rawClientStream, rawUnary, SECRET, secretMetadata, startServer } from './helpers'

const isCode = (code: string) => (err: unknown) => err instanceof RpcError && err.code === code

test('rpc auth: SetMaster with a wrong secret is UNAUTHENTICATED and registers nothing', async (t) => {
  const wp = await startWaypoint({ listen: '127.0.0.1:0', secret: SECRET, holdMs: 0, logger: quiet })
  t.after(() => wp.close())
  const wrong = clients(t, { secret: 'not-the-secret' })
  const set = { clusterId: 'c1', leader: { nodeId: 1, address: '127.0.0.1:1' }, term: 1, members: [] }
  await assert.rejects(wrong.waypoint(wp.address).setMaster(set), (err: unknown) => isCode('UNAUTHENTICATED')(err) && /wrong x-polyfs-secret/.test((err as RpcError).details))
  await assert.rejects(wrong.waypoint(wp.address).claim({ claimant: 'x' }), isCode('UNAUTHENTICATED'))
  const right = clients(t)
  assert.equal((await right.waypoint(wp.address).getMaster({})).known, false)
  // And the right secret does change things: the gate is the only difference.
  assert.deepEqual(await right.waypoint(wp.address).setMaster(set), {})
  assert.equal((await right.waypoint(wp.address).getMaster({})).known, true)
})

test('rpc auth: a call without the secret metadata is UNAUTHENTICATED and says the secret is missing', async (t) => {
  let calls = 0
  const { address } = await startServer(t, (s) =>
    s.addWaypoint({
      getMaster: async () => (calls++, { known: false }),
      setMaster: async () => (calls++, {}),
      claim: async () => (calls++, {}),
    }),
  )
  const raw = rawClient(t, address)
  const r = await rawUnary(raw, '/polyfs.v1.Waypoint/GetMaster', Buffer.alloc(0), secretMetadata(null))
  assert.equal(r.code, 'UNAUTHENTICATED')
  assert.match(r.details, /missing x-polyfs-secret/)
  assert.equal(calls, 0)
  assert.equal((await rawUnary(raw, '/polyfs.v1.Waypoint/GetMaster', Buffer.alloc(0), secretMetadata())).code, 'OK')
  assert.equal(calls, 1)
})

test('rpc auth: every unary service refuses a wrong secret before its handler', async (t) => {
  let calls = 0
  const count = async () => (calls++, {})
  const { address } = await startServer(t, (s) => {
    s.addMaster({ join: count, heartbeat: count, getClusterMap: count })
    s.addNodeAdmin({ masterChanged: count, changeReplicas: count, status: count })
    s.addKv({ handle: count })
  })
  const wrong = clients(t, { secret: 'wrong' })
  const attempts = [
    wrong.master(address).join({ nodeId: 1 }),
    wrong.master(address).heartbeat({}),
    wrong.master(address).getClusterMap({}),
    wrong.admin(address).masterChanged({}),
    wrong.admin(address).changeReplicas({}),
    wrong.admin(address).status({}),
    wrong.kvUnary(address).call({ id: 1 }),
  ]
  for (const r of await Promise.allSettled(attempts)) assert.ok(r.status === 'rejected' && isCode('UNAUTHENTICATED')(r.reason))
  assert.equal(calls, 0)
})

test('rpc auth: a Kv.Session with a wrong secret is refused as a whole; its handler never runs', async (t) => {
  let calls = 0
  const { address } = await startServer(t, (s) => s.addKv({ handle: async (req) => (calls++, { id: req.id }) }))
  const wrong = clients(t, { secret: 'wrong' })
  const all = await Promise.allSettled([1, 2, 3].map((i) => wrong.kv(address).call({ regionId: i })))
  for (const r of all) {
    assert.equal(r.status, 'rejected')
    assert.ok(isCode('UNAUTHENTICATED')((r as PromiseRejectedResult).reason))
  }
  assert.equal(calls, 0)
  const right = clients(t)
  assert.equal((await right.kv(address).call({ regionId: 1 })).error, undefined)
  assert.equal(calls, 1)
})

test('rpc auth: a RaftTransport.Stream with a wrong secret is refused; onBatch never runs', async (t) => {
  const got: RaftBatch[] = []
  const { address } = await startServer(t, (s) => s.addRaft({ onBatch: (b) => got.push(b) }))
  const raw = rawClient(t, address)
  const wrong = rawClientStream(raw, '/polyfs.v1.RaftTransport/Stream', secretMetadata('wrong'))
  wrong.call.write(encode('RaftBatch', { clusterId: 'c', fromNode: 1, toNode: 2 }))
  wrong.call.end()
  assert.equal((await wrong.status).code, 'UNAUTHENTICATED')
  assert.equal(got.length, 0)

  // Through RpcClients too: the batch is dropped, and the right secret gets through.
  const bad = new RpcClients({ secret: 'wrong', logger: quiet })
  t.after(() => bad.close())
  bad.raft(address).send({ clusterId: 'bad' })
  const good = clients(t)
  good.raft(address).send({ clusterId: 'good' })
  await waitFor(() => got.length > 0, 5000, 'the good batch')
  assert.deepEqual(
    got.map((b) => b.clusterId),
    ['good'],
  )
})
