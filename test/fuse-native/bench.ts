// Per-op cost of the patched fuse-native binding (docs/fuse-native.md, "Per-op cost").
//   node dist/test/fuse-native/bench.js run [statOps] [writeMiB]
// Does nothing unless given `run`, so `node --test dist/test/` can load it harmlessly.
// Env FUSE_NATIVE_MODULE=<dir> LEGACY=1 benchmarks an unpatched fuse-native (old handler API).
//
// The workload runs in a child process: the mounting process's main thread serves the FUSE
// requests and must not issue syscalls on the mount itself.

import { execFile } from 'node:child_process'
import { FuseContext, FuseOps, FuseOptions, MemFs, mountMemFs, Fuse as PatchedFuse } from './memfs'

const CHILD = `
const fs = require('fs')
const [file, nStat, writeMiB] = [process.argv[1], +process.argv[2], +process.argv[3]]
fs.writeFileSync(file, 'x')
for (let i = 0; i < 2000; i++) fs.statSync(file) // warm-up
let t = process.hrtime.bigint()
for (let i = 0; i < nStat; i++) fs.statSync(file)
const statNs = Number(process.hrtime.bigint() - t) / nStat
const buf = Buffer.alloc(128 * 1024, 7)
const fd = fs.openSync(file + '.w', 'w')
const n = writeMiB * 8
for (let i = 0; i < 64; i++) fs.writeSync(fd, buf, 0, buf.length, 0) // warm-up
t = process.hrtime.bigint()
for (let i = 0; i < n; i++) fs.writeSync(fd, buf, 0, buf.length, (i % 64) * buf.length)
const writeS = Number(process.hrtime.bigint() - t) / 1e9
fs.closeSync(fd)
console.log(JSON.stringify({ statUs: statNs / 1000, writeMiBs: writeMiB / writeS }))
`

function legacyOps (ops: FuseOps): Record<string, unknown> {
  // Old fuse-native API: no ctx argument; stats with Date times.
  const ctx: FuseContext = { uid: 0, gid: 0, pid: 0, umask: 0 }
  const out: Record<string, unknown> = {}
  for (const [name, fn] of Object.entries(ops)) {
    if (typeof fn !== 'function') continue
    out[name] = (...args: unknown[]) => {
      const cb = args[args.length - 1] as (...a: unknown[]) => void
      if (name === 'getattr' || name === 'fgetattr') {
        args[args.length - 1] = (err: number, st?: Record<string, number>) => {
          if (err || !st) return cb(err)
          cb(0, { ...st, atime: new Date(st.atimeSec * 1000), mtime: new Date(st.mtimeSec * 1000), ctime: new Date(st.ctimeSec * 1000) })
        }
      }
      if (name === 'create') args.splice(2, 0) // old create(path, mode, cb): memfs ignores flags
      return (fn as (...a: unknown[]) => void)(ctx, ...(name === 'create' ? [args[0], args[1], 0, args[2]] : args))
    }
  }
  return out
}

async function main (): Promise<void> {
  const nStat = Number(process.argv[3] || 20000)
  const writeMiB = Number(process.argv[4] || 256)
  const legacy = process.env.LEGACY === '1'
  const memfs = new MemFs()
  memfs.record = process.env.BENCH_COUNT === '1' // op histogram instead of speed
  let m: { mnt: string; unmount(): Promise<void> }
  if (process.env.FUSE_NATIVE_MODULE) {
    const F = require(process.env.FUSE_NATIVE_MODULE) as new (mnt: string, ops: unknown, opts: unknown) => { mount(cb: (e: Error | null) => void): void; unmount(cb: (e: Error | null) => void): void }
    const fsMod = require('node:fs') as typeof import('node:fs')
    const dir = fsMod.mkdtempSync('/tmp/polyfs-bench-')
    const mnt = dir + '/mnt'
    fsMod.mkdirSync(mnt)
    // The unpatched module drops attrTimeout: 0 and has no bigWrites option: options smuggled
    // through fsname give it the same kernel behaviour.
    const f = new F(mnt, legacy ? legacyOps(memfs.ops()) : memfs.ops(), legacy
      ? { fsname: 'bench,big_writes,attr_timeout=0,entry_timeout=0' }
      : { attrTimeout: 0, entryTimeout: 0, bigWrites: true })
    await new Promise<void>((resolve, reject) => f.mount(e => e ? reject(e) : resolve()))
    m = {
      mnt,
      unmount: async () => {
        await new Promise<void>(resolve => f.unmount(() => resolve()))
        fsMod.rmSync(dir, { recursive: true, force: true })
      }
    }
  } else {
    void PatchedFuse
    const opts: FuseOptions = { attrTimeout: 0, entryTimeout: 0, bigWrites: true }
    if (process.env.BENCH_TIMEOUT) opts.timeout = Number(process.env.BENCH_TIMEOUT) // cost of per-op timers
    m = await mountMemFs(opts, memfs)
  }
  try {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['-e', CHILD, m.mnt + '/f', String(nStat), String(writeMiB)], (err, stdout, stderr) => err ? reject(new Error(stderr)) : resolve(stdout))
    })
    const r = JSON.parse(out) as { statUs: number; writeMiBs: number }
    if (memfs.record) {
      const h: Record<string, number> = {}
      for (const c of memfs.calls) h[c.op] = (h[c.op] || 0) + 1
      console.log(JSON.stringify(h))
    }
    console.log(`${legacy ? 'unpatched' : 'patched'}: stat ${r.statUs.toFixed(1)} us/op (${Math.round(1e6 / r.statUs)} ops/s), 128 KiB writes ${r.writeMiBs.toFixed(0)} MiB/s`)
  } finally {
    await m.unmount()
  }
}

if (process.argv[2] === 'run') {
  main().catch(err => { console.error(err); process.exitCode = 1 })
}
