// Kv.Session: many calls over one stream, matched by id, bounded, with deadlines, and a new
// stream after the old one failed.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RpcError, type KvRequest, type KvResponse, type Init } from '../../src/rpc'
import { waitFor } from '../helpers/mount'
import { clients, startServer } from './helpers'

const isCode = (code: string) => (err: unknown) => err instanceof RpcError && err.code === code

/** A kv handler whose answers the test releases by hand. */
function heldHandler() {
  const held: { req: KvRequest; release(res?: Init<KvResponse>): void }[] = []
  let sessions = 0
  const handler = {
    handle: (req: KvRequest) => new Promise<Init<KvResponse>>((resolve) => held.push({ req, release: (res) => resolve(res ?? { id: req.id, value: req.get?.key }) })),
  }
  return { held, handler, sessions: () => sessions, countSession: () => sessions++ }
}

test('kv session: concurrent calls answered out of order each get their own response', async (t) => {
  const h = heldHandler()
  const { address } = await startServer(t, (s) => s.addKv(h.handler))
  const kv = clients(t).kv(address)
  const n = 100
  const calls = Array.from({ length: n }, (_, i) => kv.call({ regionId: 1, get: { key: Buffer.from(`k${i}`) } }))
  await waitFor(() => h.held.length === n, 5000, `${n} requests at the server`)
  assert.equal(new Set(h.held.map((x) => x.req.id)).size, n, 'ids are unique')
  for (const x of [...h.held].reverse()) x.release() // answer in reverse order
  const res = await Promise.all(calls)
  res.forEach((r, i) => assert.equal(r.value.toString(), `k${i}`))
})

test('kv session: a slow request does not hold up the others', async (t) => {
  const h = heldHandler()
  const { address } = await startServer(t, (s) =>
    s.addKv({
      handle: (req) => (req.regionId === 1 ? h.handler.handle(req) : Promise.resolve({ id: req.id, found: true })),
    }),
  )
  const kv = clients(t).kv(address)
  const slow = kv.call({ regionId: 1, get: { key: Buffer.from('slow') } })
  await waitFor(() => h.held.length === 1, 5000, 'the slow request at the server')
  for (let i = 0; i < 10; i++) assert.equal((await kv.call({ regionId: 2 })).found, true)
  h.held[0].release()
  assert.equal((await slow).value.toString(), 'slow')
})

test('kv session: a call past its deadline rejects DEADLINE_EXCEEDED and a late answer is ignored', async (t) => {
  const h = heldHandler()
  const { address } = await startServer(t, (s) => s.addKv(h.handler))
  const kv = clients(t).kv(address)
  await assert.rejects(kv.call({ regionId: 1 }, { timeoutMs: 100 }), isCode('DEADLINE_EXCEEDED'))
  h.held[0].release() // arrives after the deadline: dropped, nothing breaks
  const next = kv.call({ regionId: 2, get: { key: Buffer.from('next') } })
  await waitFor(() => h.held.length === 2, 5000, 'the next request')
  h.held[1].release()
  assert.equal((await next).value.toString(), 'next')
})

test('kv session: the client bounds calls in flight; beyond them calls wait in a bounded FIFO', async (t) => {
  const h = heldHandler()
  const { address } = await startServer(t, (s) => s.addKv(h.handler))
  const kv = clients(t, { kvMaxInFlight: 2, kvMaxQueued: 1 }).kv(address)
  const a = kv.call({ regionId: 1 })
  const b = kv.call({ regionId: 2 })
  const c = kv.call({ regionId: 3 }) // waits for a slot
  await assert.rejects(kv.call({ regionId: 4 }), isCode('RESOURCE_EXHAUSTED'))
  await waitFor(() => h.held.length === 2, 5000, 'two requests at the server')
  h.held[0].release()
  await waitFor(() => h.held.length === 3, 5000, 'the queued request sent once a slot freed')
  assert.deepEqual(
    h.held.map((x) => x.req.regionId),
    [1, 2, 3],
  )
  h.held[1].release()
  h.held[2].release()
  await Promise.all([a, b, c])
})

test('kv session: the server answers BUSY beyond its per-stream bound instead of queueing', async (t) => {
  const h = heldHandler()
  const { address } = await startServer(t, (s) => s.addKv(h.handler), { sessionMaxInFlight: 2 })
  const kv = clients(t).kv(address)
  const held = [kv.call({ regionId: 1 }), kv.call({ regionId: 2 })]
  await waitFor(() => h.held.length === 2, 5000, 'two requests at the server')
  const third = await kv.call({ regionId: 3 })
  assert.equal(third.error?.code, 'BUSY')
  assert.equal(h.held.length, 2, 'the handler never saw the third')
  h.held.forEach((x) => x.release())
  await Promise.all(held)
})

test('kv session: a failed stream rejects every pending call; the next call uses a new server at the same address', async (t) => {
  const h = heldHandler()
  const first = await startServer(t, (s) => s.addKv(h.handler))
  const c = clients(t)
  const pending = [1, 2, 3].map((i) => c.kv(first.address).call({ regionId: i }))
  await waitFor(() => h.held.length === 3, 5000, 'three requests at the server')
  const settled = Promise.allSettled(pending) // handlers attached before the rejections happen
  await first.server.close()
  for (const r of await settled) assert.ok(r.status === 'rejected' && isCode('UNAVAILABLE')(r.reason), JSON.stringify(r))

  await startServer(t, (s) => s.addKv({ handle: async (req) => ({ id: req.id, found: true }) }), {}, first.address)
  assert.equal((await c.kv(first.address).call({ regionId: 9 })).found, true)
})

test('kv session: calls after close reject CANCELLED, and pending ones too', async (t) => {
  const h = heldHandler()
  const { address } = await startServer(t, (s) => s.addKv(h.handler))
  const c = clients(t)
  const pending = c.kv(address).call({ regionId: 1 })
  await waitFor(() => h.held.length === 1, 5000, 'the request at the server')
  c.close()
  await assert.rejects(pending, isCode('CANCELLED'))
  await assert.rejects(c.kv(address).call({ regionId: 2 }), isCode('CANCELLED'))
})
