// LocalKV under kill -9: every acknowledged commit is there afterwards, each whole, in a
// prefix of the commit order; a torn record at the end of the log is ignored; the log's two
// files are switched and checkpointed under load.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { closeSync, openSync, readdirSync, readSync, writeSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { LocalKV } from '../../src/kv'
import { REPO, tempDir } from '../helpers/mount'

/**
 * A child process that commits transactions "i" (keys a/i and b/i, a 3 KiB value each) as
 * fast as it can, prints each index once its commit resolved, and is killed with SIGKILL
 * after `count` acknowledgements.
 */
async function crashAfter(dir: string, count: number, walFileBytes: number): Promise<number> {
  const script = `
    const { LocalKV } = require(${JSON.stringify(path.join(REPO, 'dist/src/kv'))})
    ;(async () => {
      const kv = await LocalKV.open(${JSON.stringify(dir)}, { walFileBytes: ${walFileBytes} })
      const v = Buffer.alloc(3000, 7)
      for (let i = 0; ; i++) {
        await kv.txn(async (tx) => {
          tx.put(Buffer.from('a/' + String(i).padStart(8, '0')), Buffer.concat([Buffer.from(String(i)), v]))
          tx.put(Buffer.from('b/' + String(i).padStart(8, '0')), Buffer.from(String(i)))
        }, { sync: i % 7 === 0 })
        process.stdout.write(i + '\\n')
      }
    })()`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let acked = -1
  let buf = ''
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d) => {
      buf += d
      const lines = buf.split('\n')
      buf = lines.pop() as string
      if (lines.length) acked = Number(lines[lines.length - 1])
      if (acked >= count && child.exitCode === null) child.kill('SIGKILL')
    })
    child.once('exit', () => resolve())
  })
  return acked
}

async function checkPrefix(dir: string, acked: number): Promise<number> {
  const kv = await LocalKV.open(dir, { walFileBytes: 1 << 20 })
  try {
    const a = await kv.scan({ start: Buffer.from('a/'), end: Buffer.from('a0') })
    const b = await kv.scan({ start: Buffer.from('b/'), end: Buffer.from('b0') })
    assert.equal(a.length, b.length, 'every transaction is whole: a/i and b/i together')
    a.forEach((e, i) => assert.equal(e.key.toString(), 'a/' + String(i).padStart(8, '0'), 'a prefix of the commit order'))
    assert.ok(a.length >= acked + 1, `acknowledged ${acked + 1} commits, found ${a.length}`)
    return a.length
  } finally {
    await kv.close()
  }
}

test('kv: kill -9 loses no acknowledged commit and leaves a whole prefix', async (t) => {
  const dir = tempDir(t)
  const acked = await crashAfter(dir, 2000, 4 << 20)
  assert.ok(acked >= 2000)
  await checkPrefix(dir, acked)
})

test('kv: the log switches files and checkpoints under load, and recovery crosses the switches', async (t) => {
  const dir = tempDir(t)
  // 1 MiB log files and ~6 KiB per commit: a switch every ~170 commits.
  const acked = await crashAfter(dir, 3000, 1 << 20)
  const n = await checkPrefix(dir, acked)
  // And again on the recovered store, then a clean reopen.
  const acked2 = await crashAfter(dir, n + 1500, 1 << 20)
  await checkPrefix(dir, acked2)
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('polyfs-wal')).sort(), ['polyfs-wal-0', 'polyfs-wal-1'])
})

/** Writes a torn record (right magic and epoch, wrong checksum) after the last valid one. */
function tearAfterLastRecord(file: string): void {
  const fd = openSync(file, 'r+')
  try {
    const header = Buffer.alloc(28)
    readSync(fd, header, 0, 16, 0)
    const epoch = header.subarray(8, 16)
    let pos = 4096
    for (;;) {
      readSync(fd, header, 0, 28, pos)
      if (header.readUInt32BE(0) !== 0x50524543 || !header.subarray(8, 16).equals(epoch)) break
      pos += Math.ceil((28 + header.readUInt32BE(4)) / 4096) * 4096
    }
    const torn = Buffer.alloc(28 + 100, 0xab)
    torn.writeUInt32BE(0x50524543, 0)
    torn.writeUInt32BE(100, 4)
    epoch.copy(torn, 8)
    writeSync(fd, torn, 0, torn.length, pos)
  } finally {
    closeSync(fd)
  }
}

test('kv: a torn record after the last valid one in the log is ignored at recovery', async (t) => {
  const dir = tempDir(t)
  const acked = await crashAfter(dir, 300, 4 << 20)
  for (const f of ['polyfs-wal-0', 'polyfs-wal-1']) tearAfterLastRecord(path.join(dir, f))
  await checkPrefix(dir, acked)
})

test('kv: kill -9 after commits larger and smaller than the log\'s reused record buffer: all replayed intact', async (t) => {
  const dir = tempDir(t)
  // 2 MiB and 3 KiB commits in turn: the large records get a buffer of their own, the small
  // ones reuse one buffer after a large record and after each other.
  const script = `
    const { LocalKV } = require(${JSON.stringify(path.join(REPO, 'dist/src/kv'))})
    ;(async () => {
      const kv = await LocalKV.open(${JSON.stringify(dir)}, { walFileBytes: 64 << 20 })
      for (let i = 0; i < 12; i++) {
        await kv.txn(async (tx) => {
          if (i % 2 === 0) for (let j = 0; j < 2; j++) tx.put(Buffer.from('big/' + i + '/' + j), Buffer.alloc(1 << 20, i))
          else tx.put(Buffer.from('small/' + i), Buffer.alloc(3000, i))
        })
      }
      process.stdout.write('done\\n')
      process.kill(process.pid, 'SIGKILL')
    })()`
  const out = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let s = ''
    child.stdout.on('data', (d) => (s += d))
    child.once('exit', () => resolve(s))
  })
  assert.equal(out.trim(), 'done')
  const kv = await LocalKV.open(dir, { walFileBytes: 64 << 20 })
  try {
    for (let i = 0; i < 12; i++) {
      const keys = i % 2 === 0 ? [0, 1].map((j) => 'big/' + i + '/' + j) : ['small/' + i]
      for (const k of keys) assert.deepEqual(await kv.get(Buffer.from(k)), Buffer.alloc(i % 2 === 0 ? 1 << 20 : 3000, i), k)
    }
  } finally {
    await kv.close()
  }
})
