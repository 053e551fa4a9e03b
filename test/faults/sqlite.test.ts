// SQLite on a 3-node cluster mount, killed: a writer with synchronous=FULL inserts rows one
// autocommit transaction at a time and prints each id once its COMMIT returned. In rollback-
// journal and WAL mode, over several rounds, the region leader it writes through is killed -9
// mid-run, then the writer itself at a random moment. Afterwards `PRAGMA integrity_check` is
// ok and every row whose commit returned is there, with its checksum. Seeded: POLYFS_SEED.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import { test } from 'node:test'
import { dumpLogs, fullyReplicated, startNodes, type Cluster } from '../helpers/cluster'
import { rng, testSeed, waitFor } from '../helpers/mount'

const WRITER = `
import sqlite3, sys, hashlib
db, mode, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db, isolation_level=None, timeout=60)
c.execute('PRAGMA journal_mode=' + mode)
c.execute('PRAGMA synchronous=FULL')
c.execute('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT, sum TEXT)')
i = start
while i < start + 100000:
    body = ('row %d ' % i) * (1 + i % 40)
    c.execute('INSERT INTO t VALUES (?, ?, ?)', (i, body, hashlib.sha256(body.encode()).hexdigest()))
    print(i, flush=True)
    i += 1
`

const CHECK = `
import sqlite3, sys, hashlib
c = sqlite3.connect(sys.argv[1], isolation_level=None)
print(c.execute('PRAGMA integrity_check').fetchone()[0])
bad = 0
ids = set()
for i, body, s in c.execute('SELECT id, body, sum FROM t'):
    ids.add(i)
    if hashlib.sha256(body.encode()).hexdigest() != s:
        bad += 1
print(bad)
print(' '.join(str(i) for i in sorted(ids)))
`

async function leaderProc(c: Cluster) {
  const m = await c.map()
  const id = m?.regions?.[0]?.leader
  const address = (m?.nodes ?? []).find((n) => n.nodeId === id)?.address
  return c.nodes.find((n) => n.address === address)
}

test('faults: SQLite (rollback journal and WAL, synchronous=FULL) killed -9 with the region leader under it keeps every committed row', { timeout: 10 * 60_000 }, async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (POLYFS_SEED=${seed} replays it)`)
  const r = rng(seed)
  const c = startNodes(t, 3)
  try {
    await fullyReplicated(c)
    const { mnt } = await c.mount()
    for (const mode of ['delete', 'wal']) {
      const db = path.join(mnt, `crash-${mode}.db`)
      const committed = new Set<number>()
      let next = 0
      for (let round = 0; round < 3; round++) {
        const w = spawn('python3', ['-c', WRITER, db, mode, String(next)], { stdio: ['ignore', 'pipe', 'pipe'] })
        t.after(() => {
          if (w.exitCode === null) w.kill('SIGKILL')
        })
        let out = ''
        let err = ''
        w.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          const lines = out.split('\n')
          out = lines.pop() ?? ''
          for (const l of lines) if (l) committed.add(Number(l))
        })
        w.stderr.on('data', (d: Buffer) => (err += d.toString()))
        const base = committed.size
        await waitFor(() => committed.size >= base + 20 || w.exitCode !== null, 60_000, `${mode} round ${round}: the writer committing`)
        assert.equal(w.exitCode, null, `the writer died by itself: ${err}`)
        if (round < 2) {
          // The leader it writes through dies; writes pause, then go on through the new one.
          const victim = await leaderProc(c)
          assert.ok(victim, 'a region leader')
          await victim.kill9()
          const mark = committed.size
          await waitFor(() => committed.size >= mark + 10 || w.exitCode !== null, 60_000, `${mode} round ${round}: commits after the leader died`)
          assert.equal(w.exitCode, null, `the writer died with the leader: ${err}`)
          victim.start()
          // Back in its groups before anything else dies (a majority must stay up).
          await waitFor(
            () => c.clients.admin(victim.address).status({}, { timeoutMs: 1000 }).then((st) => st.groups.some((g) => g.regionId === 1 && g.leader !== 0), () => false),
            60_000,
            'the killed leader back in its region',
          )
        }
        // Then the writer, at a random moment.
        await new Promise((res) => setTimeout(res, 200 + Math.floor(r() * 1500)))
        const gone = new Promise((res) => w.once('exit', res))
        w.kill('SIGKILL')
        await gone
        const check = spawnSync('python3', ['-c', CHECK, db], { encoding: 'utf8', timeout: 120_000 })
        assert.equal(check.status, 0, check.stderr)
        const [integrity, bad, ids] = check.stdout.split('\n')
        assert.equal(integrity, 'ok', `${mode} round ${round}: integrity_check`)
        assert.equal(bad, '0', `${mode} round ${round}: rows whose checksum does not match`)
        const present = new Set(ids.split(' ').filter(Boolean).map(Number))
        const lost = [...committed].filter((i) => !present.has(i))
        assert.deepEqual(lost, [], `${mode} round ${round}: committed rows missing`)
        next = Math.max(...present, ...committed, -1) + 1
        t.diagnostic(`${mode} round ${round}: ${committed.size} rows committed and present`)
      }
      await waitFor(() => c.nodes.every((n) => n.alive()), 10_000, 'every node back')
    }
  } catch (err) {
    console.error(dumpLogs(c, 30))
    throw err
  }
})
