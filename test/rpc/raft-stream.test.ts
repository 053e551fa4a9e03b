// RaftTransport.Stream through RpcClients.raft: in order, fire-and-forget, bounded, and back
// after the receiver restarts.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Init, RaftBatch } from '../../src/rpc'
import { waitFor } from '../helpers/mount'
import { clients, startServer } from './helpers'

const batch = (seq: number, payload = Buffer.alloc(0)): Init<RaftBatch> => ({
  clusterId: 'c1',
  fromNode: 1,
  toNode: 2,
  fromAddress: '127.0.0.1:1',
  messages: [{ regionId: seq, message: { type: 'RAFT_APPEND', from: 1, to: 2, term: 3, entries: [{ term: 3, index: seq, type: 'ENTRY_NORMAL', data: payload }] } }],
})

test('raft stream: batches arrive whole and in the order they were sent', async (t) => {
  const got: RaftBatch[] = []
  const { address } = await startServer(t, (s) => s.addRaft({ onBatch: (b) => got.push(b) }))
  const raft = clients(t).raft(address)
  const n = 500
  for (let i = 1; i <= n; i++) raft.send(batch(i, Buffer.from(`entry ${i}`)))
  await waitFor(() => got.length === n, 5000, `${n} batches`)
  assert.deepEqual(
    got.map((b) => b.messages[0].regionId),
    Array.from({ length: n }, (_, i) => i + 1),
  )
  const last = got[n - 1].messages[0].message!
  assert.equal(last.type, 'RAFT_APPEND')
  assert.equal(last.entries[0].data.toString(), `entry ${n}`)
  assert.equal(raft.dropped, 0)
  await waitFor(() => raft.queuedBytes === 0, 5000, 'the queue to drain')
})

test('raft stream: when the receiver goes away and comes back at the same address, later sends get through', async (t) => {
  const got: number[] = []
  const onBatch = (b: RaftBatch) => got.push(b.messages[0].regionId)
  const first = await startServer(t, (s) => s.addRaft({ onBatch }))
  const raft = clients(t).raft(first.address)
  raft.send(batch(1))
  await waitFor(() => got.length === 1, 5000, 'the first batch')
  await first.server.close()
  raft.send(batch(2)) // lost: nobody listens (Raft retransmits on its own)
  await startServer(t, (s) => s.addRaft({ onBatch }), {}, first.address)
  // Keep sending, as Raft would on every heartbeat, until one arrives; the backoff is 100 ms..2 s.
  let seq = 100
  await waitFor(
    () => {
      raft.send(batch(++seq))
      return got.length > 1
    },
    8000,
    'a batch through the restarted receiver',
  )
  assert.ok(got.slice(1).every((s) => s >= 100))
  assert.deepEqual(
    got.slice(1),
    [...got.slice(1)].sort((a, b) => a - b),
  )
})

test('raft stream: bytes not yet written are bounded; beyond the bound batches are dropped and counted', async (t) => {
  const got: RaftBatch[] = []
  const { address } = await startServer(t, (s) => s.addRaft({ onBatch: (b) => got.push(b) }))
  const raft = clients(t, { raftMaxQueuedBytes: 64 * 1024 }).raft(address)
  // All in one turn of the event loop: nothing can be written out in between.
  for (let i = 1; i <= 100; i++) raft.send(batch(i, Buffer.alloc(4096)))
  assert.ok(raft.queuedBytes <= 64 * 1024, `queued ${raft.queuedBytes}`)
  assert.ok(raft.dropped > 0)
  const kept = 100 - raft.dropped
  await waitFor(() => got.length === kept, 5000, `${kept} batches`)
  assert.deepEqual(
    got.map((b) => b.messages[0].regionId),
    Array.from({ length: kept }, (_, i) => i + 1),
  )
})

test('raft stream: a batch that cannot be encoded is dropped and counted, not thrown', async (t) => {
  const { address } = await startServer(t, (s) => s.addRaft({ onBatch: () => undefined }))
  const raft = clients(t).raft(address)
  raft.send({ fromNode: -1 })
  assert.equal(raft.dropped, 1)
})
