import assert from 'node:assert/strict'
import { test } from 'node:test'
import { KvError, LocalKV } from '../../src/kv'
import { tempDir } from '../helpers/mount'

const b = (s: string) => Buffer.from(s)

async function open(t: { after(fn: () => unknown): void }): Promise<LocalKV> {
  const kv = await LocalKV.open(tempDir(t))
  t.after(() => kv.close())
  return kv
}

test('kv: a transaction commits all its writes or none', async (t) => {
  const kv = await open(t)
  await kv.txn(async (tx) => {
    tx.put(b('a'), b('1'))
    tx.put(b('b'), b('2'))
  })
  await assert.rejects(
    kv.txn(async (tx) => {
      tx.put(b('a'), b('changed'))
      tx.del(b('b'))
      throw new Error('abort')
    }),
    /abort/,
  )
  assert.equal((await kv.get(b('a')))?.toString(), '1')
  assert.equal((await kv.get(b('b')))?.toString(), '2')
})

test('kv: reads in a transaction see its own writes, scans merge them in order', async (t) => {
  const kv = await open(t)
  await kv.txn(async (tx) => {
    tx.put(b('k1'), b('x'))
    tx.put(b('k3'), b('z'))
  })
  await kv.txn(async (tx) => {
    tx.put(b('k2'), b('y'))
    tx.del(b('k1'))
    assert.equal((await tx.get(b('k2')))?.toString(), 'y')
    assert.equal(await tx.get(b('k1')), undefined)
    const all = await tx.scan({ start: b('k'), end: b('l') })
    assert.deepEqual(all.map((e) => e.key.toString()), ['k2', 'k3'])
    const one = await tx.scan({ start: b('k'), end: b('l'), limit: 1 })
    assert.deepEqual(one.map((e) => e.key.toString()), ['k2'])
  })
})

test('kv: concurrent read-modify-write transactions never lose an increment', async (t) => {
  const kv = await open(t)
  const n = 200
  await Promise.all(
    Array.from({ length: n }, () =>
      kv.txn(async (tx) => {
        const v = Number((await tx.get(b('counter')))?.toString() ?? '0')
        await new Promise((r) => setImmediate(r)) // let others interleave
        tx.put(b('counter'), b(String(v + 1)))
      }),
    ),
  )
  assert.equal((await kv.get(b('counter')))?.toString(), String(n))
})

test('kv: a scan conflicts with an insert into its range (no phantoms)', async (t) => {
  const kv = await open(t)
  let attempts = 0
  // "Insert c only if the range [a, z) is empty": run twice concurrently; only one may insert.
  const once = (name: string) =>
    kv.txn(async (tx) => {
      attempts++
      const rows = await tx.scan({ start: b('a'), end: b('z') })
      await new Promise((r) => setImmediate(r))
      if (rows.length === 0) tx.put(b(name), b('1'))
    })
  await Promise.all([once('c'), once('d')])
  const rows = await kv.scan({ start: b('a'), end: b('z') })
  assert.equal(rows.length, 1)
  assert.ok(attempts >= 3, 'the loser re-ran')
})

test('kv: retries end in CONFLICT when every attempt collides', async (t) => {
  const kv = await open(t)
  await assert.rejects(
    kv.txn(
      async (tx) => {
        await tx.get(b('hot'))
        await kv.txn(async (other) => other.put(b('hot'), b(String(Math.random()))))
        tx.put(b('x'), b('1'))
      },
      { maxAttempts: 3 },
    ),
    (err: unknown) => err instanceof KvError && err.code === 'CONFLICT',
  )
  assert.equal(await kv.get(b('x')), undefined)
})

test('kv: oversized keys and values are refused and nothing is written', async (t) => {
  const kv = await open(t)
  await assert.rejects(
    kv.txn(async (tx) => {
      tx.put(b('ok'), b('1'))
      tx.put(Buffer.alloc(5000), b('v'))
    }),
    (err: unknown) => err instanceof KvError && err.code === 'TOO_LARGE',
  )
  await assert.rejects(kv.txn(async (tx) => tx.put(b('v'), Buffer.alloc(2 * 1024 * 1024))), /TOO_LARGE/)
  assert.equal(await kv.get(b('ok')), undefined)
})

test('kv: many concurrent commits are group-committed and all visible; sync resolves; closed store refuses', async (t) => {
  const dir = tempDir(t)
  const kv = await LocalKV.open(dir)
  await Promise.all(Array.from({ length: 500 }, (_, i) => kv.txn(async (tx) => tx.put(b(`g${String(i).padStart(4, '0')}`), b(String(i))))))
  await kv.sync()
  assert.equal((await kv.scan({ start: b('g'), end: b('h') })).length, 500)
  await kv.close()
  await assert.rejects(kv.get(b('g0001')), /CLOSED/)
  const again = await LocalKV.open(dir)
  t.after(() => again.close())
  assert.equal((await again.get(b('g0499')))?.toString(), '499')
})
