// The database rows (issue 7): what a live database asks of a filesystem, on each system.
//   sqlite-delete  SQLite autocommit inserts, journal_mode=DELETE, synchronous=FULL (rows/s)
//   sqlite-wal     the same in WAL mode (rows/s)
//   pgbench        PostgreSQL 15 on the mount: initdb, pgbench -i, then pgbench -c 4 -j 2 (tps)
// Each is bounded: the inserts by count and by the metadata time cap, initdb and pgbench -i by
// PG_SETUP_TIMEOUT_MS, pgbench by -T. PostgreSQL runs as the postgres user on a unix socket in a
// private directory (no TCP), and is stopped (pg_ctl, then kill -9 of its PIDs) before the row
// returns. How long initdb and pgbench -i took is logged and kept in the row's `note`.
import { promises as fsp } from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { dropCaches, run } from './proc'
import type { Measure, Sizes } from './workloads'

const PG_BIN = '/usr/lib/postgresql/15/bin'
/** Bound on initdb and on pgbench -i each. */
const PG_SETUP_TIMEOUT_MS = 600_000

/** Scale and duration of pgbench by run size. */
export function pgbenchSize(s: Sizes): { scale: number; seconds: number; inserts: number } {
  return s.files >= 10_000 ? { scale: 10, seconds: 30, inserts: 10_000 } : { scale: 1, seconds: 10, inserts: 2_000 }
}

const SQLITE = `
import sqlite3, sys, time, json
db, mode, count, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
c = sqlite3.connect(db, isolation_level=None)
c.execute('PRAGMA journal_mode=' + mode)
c.execute('PRAGMA synchronous=FULL')
c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)')
t0 = time.monotonic()
n = 0
while n < count and time.monotonic() - t0 < limit:
    c.execute('INSERT INTO t VALUES (?, ?)', (n, 'row %d ' % n * 8))
    n += 1
print(json.dumps({'ops': n, 'seconds': time.monotonic() - t0}))
`

async function sqliteRow(dir: string, mode: 'delete' | 'wal', count: number, limitMs: number): Promise<Measure> {
  const db = path.join(dir, `bench-${mode}.db`)
  await dropCaches()
  const r = await run('python3', ['-c', SQLITE, db, mode, String(count), String(limitMs / 1000)], limitMs + 120_000)
  try {
    const j = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { ops: number; seconds: number }
    return { value: j.ops / j.seconds, done: j.ops, seconds: j.seconds, requested: count }
  } catch {
    return { value: null, done: 0, seconds: r.ms / 1000, error: `sqlite3 (${mode}) exit ${r.code}: ${r.stderr.trim().slice(-300)}` }
  }
}

/** Runs a PostgreSQL tool as postgres with a time limit. */
function pg(tool: string, args: string[], timeoutMs: number) {
  return run('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', path.join(PG_BIN, tool), ...args], timeoutMs)
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function pgbenchRow(dir: string, s: Sizes, log: (s: string) => void): Promise<Measure> {
  const { scale, seconds } = pgbenchSize(s)
  try {
    await fsp.access(path.join(PG_BIN, 'postgres'))
  } catch {
    return { value: null, done: 0, seconds: 0, error: 'PostgreSQL 15 is not installed (apt-get install postgresql-15)' }
  }
  const home = path.join(dir, 'pg')
  const priv = await fsp.mkdtemp(path.join(os.tmpdir(), 'polyfs-bench-pg-'))
  const sock = path.join(priv, 'sock')
  const data = path.join(home, 'data')
  let postmaster = 0
  const fail = (what: string, r: { code: number | null; stdout: string; stderr: string }): Measure => ({ value: null, done: 0, seconds: 0, error: `${what} exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-300)}` })
  try {
    await fsp.mkdir(home)
    await fsp.mkdir(sock)
    await fsp.chmod(priv, 0o755)
    // postgres must reach its data dir: let others through the bench's own directories above
    // it (mkdtemp makes them 0700), up to the temp dir.
    for (let d = dir; d.startsWith(os.tmpdir() + path.sep); d = path.dirname(d)) {
      const st = await fsp.stat(d)
      if ((st.mode & 0o001) === 0) await fsp.chmod(d, (st.mode & 0o7777) | 0o011)
    }
    for (const p of [home, sock]) {
      const r = await run('chown', ['postgres:postgres', p], 10_000)
      if (r.code !== 0) return fail('chown', r)
    }
    let t0 = Date.now()
    let r = await pg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres'], PG_SETUP_TIMEOUT_MS)
    if (r.code !== 0) return fail('initdb', r)
    const initdbSec = (Date.now() - t0) / 1000
    await fsp.appendFile(path.join(data, 'postgresql.conf'), [`listen_addresses = ''`, `unix_socket_directories = '${sock}'`, 'shared_buffers = 32MB', 'fsync = on', 'synchronous_commit = on', ''].join('\n'))
    r = await pg('pg_ctl', ['-D', data, '-l', path.join(sock, 'postgres.log'), '-w', '-t', '300', 'start'], 320_000)
    if (r.code !== 0) return fail('pg_ctl start', r)
    postmaster = Number((await fsp.readFile(path.join(data, 'postmaster.pid'), 'utf8')).split('\n')[0])
    t0 = Date.now()
    r = await pg('pgbench', ['-h', sock, '-U', 'postgres', '-i', '-s', String(scale), '-q', 'postgres'], PG_SETUP_TIMEOUT_MS)
    if (r.code !== 0) return fail('pgbench -i', r)
    const initSec = (Date.now() - t0) / 1000
    await dropCaches()
    r = await pg('pgbench', ['-h', sock, '-U', 'postgres', '-c', '4', '-j', '2', '-T', String(seconds), 'postgres'], (seconds + 300) * 1000)
    if (r.code !== 0) return fail('pgbench', r)
    const tps = Number(/tps = ([\d.]+)/.exec(r.stdout)?.[1] ?? NaN)
    const txns = Number(/number of transactions actually processed: (\d+)/.exec(r.stdout)?.[1] ?? 0)
    const note = `initdb ${initdbSec.toFixed(1)} s, pgbench -i -s ${scale} ${initSec.toFixed(1)} s`
    log(`  pgbench: ${note}, ${txns} transactions in ${seconds} s`)
    return Number.isFinite(tps) ? { value: tps, done: txns, seconds, note } : { value: null, done: 0, seconds, error: `no tps in pgbench output: ${r.stdout.slice(-300)}` }
  } finally {
    if (postmaster && alive(postmaster)) {
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '60', 'stop'], 90_000)
      if (alive(postmaster)) process.kill(postmaster, 'SIGKILL')
    }
    await fsp.rm(priv, { recursive: true, force: true })
  }
}

/** The database rows wanted, in order, each in its own directory of the mount. */
export async function dbRows(dir: string, s: Sizes, want: Set<string>, log: (s: string) => void): Promise<Record<string, Measure>> {
  const out: Record<string, Measure> = {}
  const ddir = path.join(dir, 'db')
  await fsp.mkdir(ddir, { recursive: true })
  const { inserts } = pgbenchSize(s)
  for (const mode of ['delete', 'wal'] as const) {
    const id = `sqlite-${mode}`
    if (!want.has(id)) continue
    log(`  ${id} x${inserts}`)
    out[id] = await sqliteRow(ddir, mode, inserts, s.metaLimitMs)
  }
  if (want.has('pgbench')) {
    log('  pgbench')
    out.pgbench = await pgbenchRow(ddir, s, log)
  }
  return out
}
