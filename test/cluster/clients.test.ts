// Two client mounts of one cluster (close-to-open data, atomic renames as seen from the other
// mount), and bad input sent to a real node: a wrong secret, a malformed protobuf, an oversized
// message, an unknown region, a stale epoch. Each gets a clear error and changes nothing.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { decodeBlock } from '../../src/fs/records'
import { patchRange } from '../../src/kv'
import { RpcClients, encode, type KvRequest } from '../../src/rpc'
import { SECRET, dumpLogs, fullyReplicated, startCluster, startNodes } from '../helpers/cluster'
import { waitFor } from '../helpers/mount'
import { rawClient, rawUnary, secretMetadata } from '../rpc/helpers'

test('cluster: two mounts see each other\'s closed files and never a half-done rename', async (t) => {
  const c = startNodes(t, 3)
  try {
    await fullyReplicated(c)
    const a = (await c.mount()).mnt
    const b = (await c.mount()).mnt

    // Close-to-open: written and closed on A, opened afterwards on B.
    const data = Buffer.alloc(3 << 20)
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i * 2654435761 >>> 0, i)
    fs.writeFileSync(path.join(a, 'shared.bin'), data)
    assert.ok(fs.readFileSync(path.join(b, 'shared.bin')).equals(data), 'B reads what A wrote and closed')
    fs.writeFileSync(path.join(b, 'shared.bin'), 'rewritten by B')
    assert.equal(fs.readFileSync(path.join(a, 'shared.bin'), 'utf8'), 'rewritten by B')
    fs.mkdirSync(path.join(a, 'dir'))
    fs.writeFileSync(path.join(a, 'dir', 'inner'), 'x')
    assert.deepEqual(fs.readdirSync(path.join(b, 'dir')), ['inner'])

    // Rename atomicity: A flips a file between two names; B, watching, must always see exactly one.
    fs.writeFileSync(path.join(a, 'one'), 'payload')
    const flipper = spawn('python3', ['-c', `
import os, sys, time
d = sys.argv[1]
end = time.time() + 6
n = 0
while time.time() < end:
    os.rename(os.path.join(d, 'one'), os.path.join(d, 'two'))
    os.rename(os.path.join(d, 'two'), os.path.join(d, 'one'))
    n += 2
print(n)
`, a], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.after(() => {
      flipper.kill('SIGKILL')
    })
    let flips = ''
    flipper.stdout.on('data', (d: Buffer) => (flips += d.toString()))
    const done = new Promise((r) => flipper.once('exit', r))
    let looks = 0
    let bad = 0
    let exited = false
    void done.then(() => (exited = true))
    while (!exited) {
      const names = (await fs.promises.readdir(b)).filter((n) => n === 'one' || n === 'two')
      if (names.length !== 1) bad++
      looks++
    }
    console.log(`renames: ${flips.trim()} on A; ${looks} listings on B, ${bad} without exactly one name`)
    assert.ok(looks > 10)
    assert.equal(bad, 0, 'a listing on B saw both names or neither')
    assert.deepEqual(fs.readdirSync(b).filter((n) => n === 'one' || n === 'two'), ['one'])
    assert.equal(fs.readFileSync(path.join(b, 'one'), 'utf8'), 'payload')
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

test('cluster: bad input to a node gets a clear error and changes nothing', async (t) => {
  const c = startCluster(t)
  const n = c.addNode()
  n.start()
  await c.waitMap((m) => (m.regions ?? []).length === 1 && (m.regions?.[0]?.leader ?? 0) !== 0, 30_000, 'a region with a leader')
  const map = (await c.map())!
  const region = map.regions![0]!
  const good = c.clients
  const key = Buffer.from('bad-input-probe')
  const probe = (): Promise<boolean> => good.kvUnary(n.address).call({ id: 1, regionId: region.id, epoch: region.epoch, op: 'get', get: { key } } as KvRequest).then((r) => r.found)
  await waitFor(async () => !(await probe().catch(() => true)), 10_000, 'the probe key to read as absent')
  const commit = (value: Buffer) => ({ regionId: region.id, epoch: region.epoch, op: 'commit' as const, commit: { reads: [], scans: [], writes: [{ key, value, delete: false }], txnId: Buffer.alloc(16, 7) } })

  // A wrong secret and no secret: UNAUTHENTICATED, for unary calls and the session stream.
  const wrong = new RpcClients({ secret: 'not-the-secret' })
  t.after(() => wrong.close())
  await assert.rejects(wrong.kvUnary(n.address).call({ id: 1, ...commit(Buffer.from('x')) } as KvRequest), { code: 'UNAUTHENTICATED' })
  await assert.rejects(wrong.kv(n.address).call(commit(Buffer.from("x"))), { code: 'UNAUTHENTICATED' })
  await assert.rejects(wrong.master(n.address).join({ clusterId: '', nodeId: 0, address: '127.0.0.99:1', joinToken: 'evil', capacityBytes: 1, freeBytes: 1 }), { code: 'UNAUTHENTICATED' })
  const raw = rawClient(t, n.address)
  const body = encode('KvRequest', { id: 1, ...commit(Buffer.from('x')) })
  assert.equal((await rawUnary(raw, '/polyfs.v1.Kv/Call', body, secretMetadata(null))).code, 'UNAUTHENTICATED')

  // A malformed protobuf: INVALID_ARGUMENT; the node keeps serving.
  const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02])
  assert.equal((await rawUnary(raw, '/polyfs.v1.Kv/Call', garbage, secretMetadata(SECRET))).code, 'INVALID_ARGUMENT')
  assert.equal((await rawUnary(raw, '/polyfs.v1.Master/Join', garbage, secretMetadata(SECRET))).code, 'INVALID_ARGUMENT')

  // An oversized message: RESOURCE_EXHAUSTED.
  const big = encode('KvRequest', { id: 1, ...commit(Buffer.alloc(65 << 20)) })
  const rawBig = rawClient(t, n.address, { 'grpc.max_send_message_length': 128 << 20 })
  assert.equal((await rawUnary(rawBig, '/polyfs.v1.Kv/Call', big, secretMetadata(SECRET))).code, 'RESOURCE_EXHAUSTED')

  // An unknown region and a stale epoch: application errors with what the client needs.
  const unknown = await good.kvUnary(n.address).call({ ...commit(Buffer.from('x')), id: 2, regionId: 999 } as KvRequest)
  assert.equal(unknown.error?.code, 'REGION_NOT_FOUND')
  const stale = await good.kvUnary(n.address).call({ ...commit(Buffer.from('x')), id: 3, epoch: { confVer: 0, version: 0 } } as KvRequest)
  assert.equal(stale.error?.code, 'EPOCH_NOT_MATCH')
  assert.equal(stale.error?.region?.id, region.id, 'the error carries the current region')
  assert.deepEqual(stale.error?.region?.epoch, region.epoch)

  // A join claiming another cluster is refused.
  const other = await good.master(n.address).join({ clusterId: 'another-cluster', nodeId: 0, address: '127.0.0.99:1', joinToken: 't', capacityBytes: 1, freeBytes: 1 })
  assert.equal(other.error?.code, 'CLUSTER_MISMATCH')

  // Block patches (docs/kv.md, "Partial block writes"): one failing its crc, one outside a
  // block, patches inside a plain commit, a key both patched and written: refused, nothing written.
  const range = (offset: number, data: Buffer) => patchRange(offset, data)
  const patchCommit = (patches: { key: Buffer; ranges: { offset: number; data: Buffer; crc: number }[] }[], writes: { key: Buffer; value: Buffer; delete: boolean }[] = []) =>
    ({ id: 4, regionId: region.id, epoch: region.epoch, op: 'patchCommit', patchCommit: { reads: [], scans: [], writes, txnId: Buffer.alloc(16, 8), patches } }) as KvRequest
  const badCrc = await good.kvUnary(n.address).call(patchCommit([{ key, ranges: [{ ...range(0, Buffer.from('abc')), crc: 1 }] }]))
  assert.equal(badCrc.error?.code, 'INVALID')
  assert.match(badCrc.error?.message ?? '', /fails its checksum/)
  const outside = await good.kvUnary(n.address).call(patchCommit([{ key, ranges: [range(16 * 1024 - 1, Buffer.from('ab'))] }]))
  assert.equal(outside.error?.code, 'INVALID')
  const inPlain = await good.kvUnary(n.address).call({ id: 5, ...commit(Buffer.from('x')), commit: { ...commit(Buffer.from('x')).commit, patches: [{ key, ranges: [range(0, Buffer.from('a'))] }] } } as KvRequest)
  assert.equal(inPlain.error?.code, 'INVALID')
  const twice = await good.kvUnary(n.address).call(patchCommit([{ key, ranges: [range(0, Buffer.from('a'))] }], [{ key, value: Buffer.from('x'), delete: false }]))
  assert.equal(twice.error?.code, 'INVALID')
  // A sound one is merged by the leader into a block the filesystem's reader accepts.
  const blockKey = Buffer.from('patch-probe')
  const merged = await good.kvUnary(n.address).call(patchCommit([{ key: blockKey, ranges: [range(4, Buffer.from('tail')), range(0, Buffer.from('head'))] }]))
  assert.equal(merged.error, undefined)
  const stored = await good.kvUnary(n.address).call({ id: 6, regionId: region.id, epoch: region.epoch, op: 'get', get: { key: blockKey } } as KvRequest)
  assert.equal(decodeBlock(stored.value).toString(), 'headtail')

  // Nothing changed: the key is still absent and the cluster still has one node.
  assert.equal(await probe(), false)
  const after = (await c.map())!
  assert.equal((after.nodes ?? []).length, 1)
  assert.ok(n.alive(), 'the node survived every bad input')
})
