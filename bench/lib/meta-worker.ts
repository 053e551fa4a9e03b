// The metadata client: one phase per process, run by bench/run.ts as
//   node dist/bench/lib/meta-worker.js PHASE DIR COUNT LIMIT_MS
// so the measuring client is never the process serving the filesystem. Plain synchronous
// syscalls, one at a time, like a shell script or a build tool. Prints one JSON line:
//   {"phase":..,"ops":N,"seconds":S,"errors":E,"firstError":..}
// Phases (names f<i> / d<i> / e<i> in DIR, i < COUNT):
//   create  open(O_CREAT|O_EXCL|O_WRONLY) + write 4 KiB + close
//   stat    stat
//   read    open(O_RDONLY) + read 4 KiB + close
//   delete  unlink
//   mkdir   mkdir d<i>
//   rename  rename d<i> -> e<i>
//   rmdir   rmdir e<i>
// A phase stops at COUNT operations or LIMIT_MS, whichever comes first; the next phase works on
// the names that exist (run.ts passes the previous phase's count on).
import * as fs from 'node:fs'
import * as path from 'node:path'

const FILE_SIZE = 4096

function main(): void {
  const [phase, dir, countS, limitS] = process.argv.slice(2)
  const count = Number(countS)
  const limitMs = Number(limitS)
  if (!phase || !dir || !(count >= 0) || !(limitMs > 0)) {
    process.stderr.write('usage: meta-worker.js PHASE DIR COUNT LIMIT_MS\n')
    process.exit(2)
  }
  const f = (i: number) => path.join(dir, 'f' + i)
  const d = (i: number) => path.join(dir, 'd' + i)
  const e = (i: number) => path.join(dir, 'e' + i)
  const data = Buffer.alloc(FILE_SIZE, 0x5a)
  const rbuf = Buffer.alloc(FILE_SIZE)
  const W = fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY
  const ops: Record<string, (i: number) => void> = {
    create: (i) => {
      const fd = fs.openSync(f(i), W, 0o644)
      try {
        if (fs.writeSync(fd, data, 0, FILE_SIZE, 0) !== FILE_SIZE) throw new Error('short write')
      } finally {
        fs.closeSync(fd)
      }
    },
    stat: (i) => {
      if (fs.statSync(f(i)).size !== FILE_SIZE) throw new Error('wrong size')
    },
    read: (i) => {
      const fd = fs.openSync(f(i), fs.constants.O_RDONLY)
      try {
        if (fs.readSync(fd, rbuf, 0, FILE_SIZE, 0) !== FILE_SIZE) throw new Error('short read')
      } finally {
        fs.closeSync(fd)
      }
    },
    delete: (i) => fs.unlinkSync(f(i)),
    mkdir: (i) => fs.mkdirSync(d(i), 0o755),
    rename: (i) => fs.renameSync(d(i), e(i)),
    rmdir: (i) => fs.rmdirSync(e(i)),
  }
  const op = ops[phase]
  if (!op) {
    process.stderr.write(`unknown phase ${phase}\n`)
    process.exit(2)
  }
  let errors = 0
  let firstError: string | null = null
  let n = 0
  const t0 = process.hrtime.bigint()
  const limitNs = BigInt(Math.round(limitMs * 1e6))
  for (; n < count; n++) {
    // Check the clock every 16 ops: cheap, and bounds the phase to LIMIT_MS plus a few ops.
    if ((n & 15) === 0 && process.hrtime.bigint() - t0 > limitNs) break
    try {
      op(n)
    } catch (err) {
      errors++
      firstError ??= (err as Error).message
      if (errors > 100) break
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  process.stdout.write(JSON.stringify({ phase, ops: n, seconds, errors, firstError }) + '\n')
}

main()
