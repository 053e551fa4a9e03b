// Bad input never crashes the server: garbage bodies, oversized messages, throwing handlers.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encode, RpcError, type RaftBatch } from '../../src/rpc'
import { clients, rawBidi, rawClient, rawClientStream, rawUnary, secretMetadata, startServer } from './helpers'

const GARBAGE = Buffer.from([0x0a, 0xff, 0x01, 0x02]) // field 1, length 255, then 2 bytes
const isCode = (code: string, details?: RegExp) => (err: unknown) => err instanceof RpcError && err.code === code && (!details || details.test(err.details))

test('rpc malformed: a garbage body to a unary method is INVALID_ARGUMENT; the next good call is answered', async (t) => {
  let calls = 0
  const { address } = await startServer(t, (s) =>
    s.addWaypoint({
      getMaster: async () => (calls++, { known: false }),
      setMaster: async () => (calls++, {}),
      claim: async () => (calls++, {}),
    }),
  )
  const raw = rawClient(t, address)
  const r = await rawUnary(raw, '/polyfs.v1.Waypoint/SetMaster', GARBAGE, secretMetadata())
  assert.equal(r.code, 'INVALID_ARGUMENT')
  assert.match(r.details, /^malformed polyfs\.v1\.SetMasterRequest: /)
  assert.equal(calls, 0)
  assert.equal((await clients(t).waypoint(address).getMaster({})).known, false)
  assert.equal(calls, 1)
})

test('rpc malformed: garbage on a Kv.Session ends that stream with INVALID_ARGUMENT; a new session works', async (t) => {
  const { address } = await startServer(t, (s) => s.addKv({ handle: async (req) => ({ id: req.id, found: true }) }))
  const raw = rawClient(t, address)
  const s = rawBidi(raw, '/polyfs.v1.Kv/Session', secretMetadata())
  s.call.write(encode('KvRequest', { id: 7 }))
  s.call.write(GARBAGE)
  const status = await s.status
  assert.equal(status.code, 'INVALID_ARGUMENT')
  assert.match(status.details, /malformed polyfs\.v1\.KvRequest/)
  assert.equal((await clients(t).kv(address).call({ regionId: 1 })).found, true)
})

test('rpc malformed: garbage on a RaftTransport.Stream ends it with INVALID_ARGUMENT after the good batches before it', async (t) => {
  const got: RaftBatch[] = []
  const { address } = await startServer(t, (s) => s.addRaft({ onBatch: (b) => got.push(b) }))
  const raw = rawClient(t, address)
  const s = rawClientStream(raw, '/polyfs.v1.RaftTransport/Stream', secretMetadata())
  s.call.write(encode('RaftBatch', { fromNode: 1 }))
  s.call.write(GARBAGE)
  s.call.write(encode('RaftBatch', { fromNode: 2 }))
  const status = await s.status
  assert.equal(status.code, 'INVALID_ARGUMENT')
  assert.deepEqual(
    got.map((b) => b.fromNode),
    [1],
  )
})

test('rpc malformed: a message over maxMessageBytes is RESOURCE_EXHAUSTED, unary and on a session; the server goes on', async (t) => {
  const { address } = await startServer(t, (s) => s.addKv({ handle: async (req) => ({ id: req.id, value: req.get?.key }) }), { maxMessageBytes: 64 * 1024 })
  const c = clients(t) // the client allows 64 MiB: the server's limit is the one tested
  const big = { regionId: 1, get: { key: Buffer.alloc(100 * 1024, 1) } }
  await assert.rejects(c.kvUnary(address).call({ id: 1, ...big }), isCode('RESOURCE_EXHAUSTED'))
  await assert.rejects(c.kv(address).call(big), isCode('RESOURCE_EXHAUSTED'))
  const small = { regionId: 1, get: { key: Buffer.from('ok') } }
  assert.equal((await c.kvUnary(address).call({ id: 2, ...small })).value.toString(), 'ok')
  assert.equal((await c.kv(address).call(small)).value.toString(), 'ok')
})

test('rpc malformed: a handler that throws is INTERNAL with its message; a thrown RpcError keeps its status', async (t) => {
  const { address } = await startServer(t, (s) =>
    s.addWaypoint({
      getMaster: async () => {
        throw new Error('boom')
      },
      setMaster: () => {
        throw new Error('sync boom') // not even async: still a status, not a crash
      },
      claim: async () => {
        throw new RpcError('INVALID_ARGUMENT', 'no claimant')
      },
    }),
  )
  const wp = clients(t).waypoint(address)
  await assert.rejects(wp.getMaster({}), isCode('INTERNAL', /^boom$/))
  await assert.rejects(wp.setMaster({}), isCode('INTERNAL', /^sync boom$/))
  await assert.rejects(wp.claim({}), isCode('INVALID_ARGUMENT', /no claimant/))
})

test('rpc malformed: a kv handler that throws answers that request with error INTERNAL; the session goes on', async (t) => {
  const { address } = await startServer(t, (s) =>
    s.addKv({
      handle: async (req) => {
        if (req.regionId === 666) throw new Error('region exploded')
        return { id: req.id, found: true }
      },
    }),
  )
  const kv = clients(t).kv(address)
  const [bad, good] = await Promise.all([kv.call({ regionId: 666 }), kv.call({ regionId: 1 })])
  assert.equal(bad.error?.code, 'INTERNAL')
  assert.match(bad.error?.message ?? '', /region exploded/)
  assert.equal(good.found, true)
})

test('rpc malformed: an unknown method is UNIMPLEMENTED', async (t) => {
  const { address } = await startServer(t, () => undefined)
  const r = await rawUnary(rawClient(t, address), '/polyfs.v1.Waypoint/GetMaster', Buffer.alloc(0), secretMetadata())
  assert.equal(r.code, 'UNIMPLEMENTED')
})
