// Faults under load with real processes: kill -9 of the region leader and of the master leader
// while a writer runs fsync'd appends through a client mount, SIGSTOP of a leader past the
// election timeout, the permanent loss of a master member, and rounds of kill -9, SIGSTOP and
// partitions (helpers/faultproxy.ts) of random nodes. Every record whose fsync
// returned must read back intact, exactly once.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { promises as fsp, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test, type TestContext } from 'node:test'
import { dumpLogs, startCluster, type Cluster, type Proc } from '../helpers/cluster'
import { startMesh, type Mesh } from '../helpers/faultproxy'
import { rng, testSeed, waitFor } from '../helpers/mount'

const WRITER = `
import os, sys, time, hashlib
mnt, files, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + seconds
i = 0
while time.time() < end:
    name = os.path.join(mnt, 'w%02d' % (i % files))
    line = ('rec %08d %s\\n' % (i, hashlib.sha256(str(i).encode()).hexdigest()[:32])).encode()
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        print('ok %d %.3f' % (i, time.time()), flush=True)
    except OSError as e:
        print('err %d %s' % (i, e), flush=True)
        time.sleep(0.05)
    i += 1
`

interface Writer {
  readonly proc: ChildProcess
  readonly done: Promise<void>
  acked(): number[]
  lastAckMs(): number
}

function startWriter(mnt: string, files: number, seconds: number, script: string): Writer {
  writeFileSync(script, WRITER)
  const proc = spawn('python3', [script, mnt, String(files), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const acked: number[] = []
  let last = Date.now()
  let buf = ''
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    const lines = buf.split('\n')
    buf = lines.pop() ?? ''
    for (const l of lines) {
      const m = /^ok (\d+)/.exec(l)
      if (m) {
        acked.push(Number(m[1]))
        last = Date.now()
      }
    }
  })
  const done = new Promise<void>((r) => proc.once('exit', () => r()))
  return { proc, done, acked: () => acked, lastAckMs: () => last }
}

/** Every acknowledged record is in its file exactly once, intact. Reads asynchronously: with
 * the fault proxies in this process (helpers/faultproxy.ts), a synchronous read through the
 * mount would block the very event loop that forwards the mount's requests. */
async function verify(mnt: string, files: number, acked: number[]): Promise<void> {
  const seen = new Map<number, number>()
  for (let f = 0; f < files; f++) {
    let text = ''
    try {
      text = await fsp.readFile(path.join(mnt, `w${String(f).padStart(2, '0')}`), 'utf8')
    } catch (err) {
      // A file the writer never got to is absent; any other error is a failure to read.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw new Error(`reading ${mnt}/w${String(f).padStart(2, '0')}: ${(err as Error).message}`)
    }
    for (const line of text.split('\n')) {
      const m = /^rec (\d{8}) ([0-9a-f]{32})$/.exec(line)
      if (!m) continue
      const i = Number(m[1])
      assert.equal(m[2], createHash('sha256').update(String(i)).digest('hex').slice(0, 32), `record ${i} is intact`)
      seen.set(i, (seen.get(i) ?? 0) + 1)
    }
  }
  const missing = acked.filter((i) => !seen.has(i))
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} acknowledged records are missing`)
  const twice = acked.filter((i) => (seen.get(i) ?? 0) > 1)
  assert.deepEqual(twice.slice(0, 20), [], `${twice.length} acknowledged records appear more than once`)
}

function procOf(c: Cluster, address: string | undefined): Proc {
  const p = c.nodes.find((n) => n.address === address)
  if (!p) throw new Error(`no process at ${address}`)
  return p
}

async function threeNodes(t: { after(fn: () => void | Promise<void>): void }, nodeArgs: string[] = []): Promise<Cluster> {
  const c = startCluster(t, { nodeArgs })
  for (let i = 0; i < 3; i++) c.addNode().start()
  await c.waitMap((m) => (m.regions?.[0]?.voters ?? []).length === 3 && (m.regions?.[0]?.learners ?? []).length === 0 && (m.master?.voters ?? []).length === 3, 60_000, '3 voters everywhere')
  return c
}

function addressOf(m: NonNullable<Awaited<ReturnType<Cluster['map']>>>, id: number | undefined): string | undefined {
  return (m.nodes ?? []).find((n) => n.nodeId === id)?.address
}

test('faults: kill -9 of the region leader, then of the master leader, under fsync load loses nothing acknowledged', async (t) => {
  const c = await threeNodes(t)
  try {
    const { mnt } = await c.mount()
    const w = startWriter(mnt, 8, 40, path.join(c.root, 'writer.py'))
    t.after(() => {
      w.proc.kill('SIGKILL')
    })
    await waitFor(() => w.acked().length >= 30, 20_000, 'writer running')
    for (const which of ['region', 'master'] as const) {
      const m = (await c.map())!
      const leaderId = which === 'region' ? m.regions?.[0]?.leader : m.master?.leader?.nodeId
      const victim = procOf(c, addressOf(m, leaderId))
      const before = w.acked().length
      const killedAt = Date.now()
      await victim.kill9()
      // A new leader within seconds: acknowledged writes resume.
      await waitFor(() => w.acked().length >= before + 10, 15_000, `writes to resume after killing the ${which} leader`)
      console.log(`${which} leader killed: writes resumed after ${((w.lastAckMs() - killedAt) / 1000).toFixed(1)} s`)
      victim.start()
      await c.waitMap((m) => (m.nodes ?? []).every((n) => n.state === 'NODE_UP') && (m.master?.voters ?? []).length === 3, 30_000, 'killed node back')
    }
    await w.done
    assert.ok(w.acked().length > 50, `only ${w.acked().length} writes were acknowledged`)
    await verify(mnt, 8, w.acked())
    // The restarted nodes caught up: every replica's applied index reaches the leader's commit.
    const m = (await c.map())!
    const leader = addressOf(m, m.regions?.[0]?.leader)
    const st = await c.clients.admin(leader!).status({})
    const commit = st.groups.find((g) => g.regionId === 1)?.commitIndex ?? 0
    await waitFor(
      async () => {
        for (const n of c.nodes) {
          const s = await c.clients.admin(n.address).status({}).catch(() => null)
          const g = s?.groups.find((x) => x.regionId === 1)
          if (!g || g.appliedIndex < commit) return false
        }
        return true
      },
      20_000,
      'every replica caught up',
    )
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

test('faults: a leader stopped past the election timeout steps down when resumed; nothing lost or duplicated', async (t) => {
  const c = await threeNodes(t)
  try {
    const { mnt } = await c.mount()
    const w = startWriter(mnt, 4, 25, path.join(c.root, 'writer.py'))
    t.after(() => {
      w.proc.kill('SIGKILL')
    })
    await waitFor(() => w.acked().length >= 20, 20_000, 'writer running')
    const m = (await c.map())!
    const oldLeader = m.regions?.[0]?.leader
    const victim = procOf(c, addressOf(m, oldLeader))
    victim.signal('SIGSTOP')
    const before = w.acked().length
    try {
      await waitFor(() => w.acked().length >= before + 10, 15_000, 'writes to resume on a new leader')
    } finally {
      victim.signal('SIGCONT')
    }
    // The resumed node is a follower now, and it catches up.
    await waitFor(
      async () => {
        const s = await c.clients.admin(victim.address).status({}).catch(() => null)
        const g = s?.groups.find((x) => x.regionId === 1)
        return !!g && g.role !== 'leader' && g.leader !== 0 && g.leader !== oldLeader
      },
      15_000,
      'the stopped leader to step down',
    )
    await w.done
    await verify(mnt, 4, w.acked())
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

test('faults: a master member silent past the (shortened) timeout is replaced by a live node', async (t) => {
  const c = startCluster(t, { nodeArgs: ['--member-replace-after', '4', '--down-after', '2'] })
  try {
    for (let i = 0; i < 4; i++) c.addNode().start()
    let m = await c.waitMap((m) => (m.nodes ?? []).length === 4 && (m.master?.voters ?? []).length === 3 && (m.master?.learners ?? []).length === 0, 60_000, 'four nodes, three masters')
    const leader = m.master?.leader?.nodeId
    const victimId = (m.master?.voters ?? []).find((v) => v !== leader) as number
    const spare = (m.nodes ?? []).find((n) => !(m.master?.voters ?? []).includes(n.nodeId))?.nodeId
    await procOf(c, addressOf(m, victimId)).kill9()
    m = await c.waitMap((m) => !(m.master?.voters ?? []).includes(victimId) && (m.master?.voters ?? []).length === 3 && (m.master?.learners ?? []).length === 0, 40_000, 'the silent member replaced')
    assert.ok((m.master?.voters ?? []).includes(spare as number), 'the spare node became a member')
    assert.equal((m.nodes ?? []).find((n) => n.nodeId === victimId)?.state, 'NODE_DOWN')
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

test('faults: nodes that join after the log was compacted catch up from a snapshot and serve everything', async (t) => {
  // A tiny log: every 40 entries the groups snapshot and compact, so the joiners cannot get
  // the early entries and must install a region snapshot.
  const c = startCluster(t)
  const env = { POLYFS_COMPACT_AFTER_ENTRIES: '40' }
  try {
    c.addNode([], env).start()
    await c.waitMap((m) => (m.regions?.[0]?.leader ?? 0) !== 0, 30_000, 'a first node with a region leader')
    const { mnt } = await c.mount()
    const want = new Map<string, Buffer>()
    for (let i = 0; i < 120; i++) {
      const data = Buffer.alloc(1000 + i * 37, i & 0xff)
      writeFileSync(path.join(mnt, `s${i}`), data)
      want.set(`s${i}`, data)
    }
    c.addNode([], env).start()
    c.addNode([], env).start()
    await c.waitMap(
      (m) => (m.regions?.[0]?.voters ?? []).length === 3 && (m.regions?.[0]?.learners ?? []).length === 0 && (m.master?.voters ?? []).length === 3 && (m.master?.learners ?? []).length === 0,
      60_000,
      'three voters after the joins',
    )
    // A joiner installed a real region snapshot (not the empty bootstrap one).
    const installed = (n: Proc) =>
      n
        .log()
        .split('\n')
        .filter((l) => l.includes('"snapshot installed"'))
        .map((l) => JSON.parse(l) as { region: number; bytes: number })
        .some((e) => e.region === 1 && e.bytes > 0)
    const snapshotted = c.nodes.slice(1).some(installed)
    // More writes, so every replica compacts its log (without an image: the state is in its
    // store), then a kill -9 and restart of a joiner: it starts from its store and its log.
    for (let i = 120; i < 200; i++) {
      const data = Buffer.alloc(500 + i * 11, (i * 7) & 0xff)
      writeFileSync(path.join(mnt, `s${i}`), data)
      want.set(`s${i}`, data)
    }
    const joiner = c.nodes[1]!
    const compacted = joiner.log().includes('state in the store, no image')
    await joiner.kill9()
    const restartedAt = Date.now()
    joiner.start()
    for (let i = 200; i < 240; i++) {
      const data = Buffer.alloc(300 + i, (i * 3) & 0xff)
      writeFileSync(path.join(mnt, `s${i}`), data)
      want.set(`s${i}`, data)
    }
    await c.waitMap((m) => (m.nodes ?? []).some((n) => n.address === joiner.address && n.state === 'NODE_UP' && n.lastHeartbeatMs > restartedAt), 30_000, 'the restarted joiner heartbeating again')
    // Now lose the first node for good: the two that came by snapshot must hold everything.
    await c.nodes[0]!.kill9()
    for (const [name, data] of want) {
      const got = readFileSync(path.join(mnt, name))
      if (!got.equals(data)) {
        const at = got.findIndex((b, k) => b !== data[k])
        assert.fail(`${name} differs after the first node died: ${got.length} bytes read, ${data.length} written, first difference at ${at}`)
      }
    }
    assert.ok(snapshotted, 'a joining node logged a snapshot')
    assert.ok(compacted, 'the joiner compacted its log before its restart')
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

/**
 * Four rounds under the fsync writer: at a random moment `fault` strikes a random node and
 * returns (a description) once it is over and writes go on; the node must then be back in its
 * region. Afterwards every acknowledged record reads back once, intact, from two mounts.
 */
interface Strike {
  readonly victim: Proc
  /** The victim's index in c.nodes (its endpoint in the mesh). */
  readonly index: number
  readonly role: string
  readonly w: Writer
  readonly r: () => number
  readonly round: number
  /** With opts.mesh: every link through a fault proxy; the mounts are endpoints `clients`. */
  readonly mesh?: Mesh
  readonly clients: number[]
}

async function randomRounds(t: TestContext, what: string, seconds: number, fault: (s: Strike) => Promise<string>, opts: { mesh?: boolean } = {}): Promise<void> {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (POLYFS_SEED=${seed} replays it)`)
  const r = rng(seed)
  let c: Cluster
  let mesh: Mesh | undefined
  const clients: number[] = []
  const mountEnvs: NodeJS.ProcessEnv[] = [{}, {}]
  if (opts.mesh) {
    c = startCluster(t)
    mesh = await startMesh(t, c, 3)
    for (let i = 0; i < 3; i++) c.addNode([], mesh.nodeEnv(i)).start()
    await c.waitMap((m) => (m.regions?.[0]?.voters ?? []).length === 3 && (m.regions?.[0]?.learners ?? []).length === 0 && (m.master?.voters ?? []).length === 3, 60_000, '3 voters everywhere')
    for (let k = 0; k < 2; k++) {
      const cl = await mesh.addClient()
      clients.push(cl.index)
      mountEnvs[k] = cl.env
    }
  } else c = await threeNodes(t)
  try {
    const a = (await c.mount([], mountEnvs[0])).mnt
    const b = (await c.mount([], mountEnvs[1])).mnt
    const w = startWriter(a, 8, seconds, path.join(c.root, `writer-${what}.py`))
    t.after(() => {
      w.proc.kill('SIGKILL')
      for (const n of c.nodes) if (n.alive()) n.signal('SIGCONT')
    })
    await waitFor(() => w.acked().length >= 20, 30_000, 'the writer going')
    for (let round = 0; round < 4; round++) {
      await new Promise((res) => setTimeout(res, 300 + Math.floor(r() * 2500)))
      const index = Math.floor(r() * c.nodes.length)
      const victim = c.nodes[index] as Proc
      const m = await c.map()
      const role = m?.regions?.[0]?.leader === (m?.nodes ?? []).find((n) => n.address === victim.address)?.nodeId ? 'region leader' : 'follower'
      const done = await fault({ victim, index, role, w, r, round, mesh, clients })
      await waitFor(
        () => c.clients.admin(victim.address).status({}, { timeoutMs: 1000 }).then((st) => st.groups.some((g) => g.regionId === 1 && g.leader !== 0), () => false),
        60_000,
        `round ${round}: ${victim.name} back in its region`,
      )
      t.diagnostic(`round ${round}: ${done}; ${w.acked().length} records acknowledged so far`)
    }
    w.proc.kill('SIGTERM')
    await w.done
    await verify(a, 8, w.acked())
    await verify(b, 8, w.acked())
  } catch (err) {
    console.error(dumpLogs(c, 40))
    throw err
  }
}

test('faults: kill -9 of a random node at a random time, round after round; every acknowledged record reads back from every mount', { timeout: 10 * 60_000 }, (t) =>
  randomRounds(t, 'kill', 120, async ({ victim, role, w, round }) => {
    await victim.kill9()
    const before = w.acked().length
    await waitFor(() => w.acked().length >= before + 10, 30_000, `round ${round}: writes going on after ${victim.name} (${role}) was killed`)
    victim.start()
    return `killed ${victim.name} (${role})`
  }))

test('faults: SIGSTOP of a random node at a random time, round after round; every acknowledged record reads back from every mount', { timeout: 10 * 60_000 }, (t) =>
  randomRounds(t, 'stop', 150, async ({ victim, role, w, r, round }) => {
    // Past the election timeout (1-2 s): a stopped leader is replaced, and steps down when resumed.
    const outMs = 2500 + Math.floor(r() * 2000)
    victim.signal('SIGSTOP')
    const before = w.acked().length
    await new Promise((res) => setTimeout(res, outMs))
    victim.signal('SIGCONT')
    await waitFor(() => w.acked().length >= before + 10, 60_000, `round ${round}: writes going on after SIGSTOP of ${victim.name} (${role})`)
    return `SIGSTOP of ${victim.name} (${role}) for ${outMs} ms`
  }))

test('faults: a partition cutting off a random node at a random time, round after round; every acknowledged record reads back from every mount', { timeout: 10 * 60_000 }, (t) =>
  randomRounds(
    t,
    'partition',
    150,
    async ({ victim, index, role, w, r, round, mesh, clients }) => {
      const m = mesh as Mesh
      const outMs = 2500 + Math.floor(r() * 2000)
      // The victim alone on one side; the other nodes and both mounts on the other.
      m.partition([index], [...[0, 1, 2].filter((x) => x !== index), ...clients])
      const before = w.acked().length
      await new Promise((res) => setTimeout(res, outMs))
      m.heal()
      await waitFor(() => w.acked().length >= before + 10, 60_000, `round ${round}: writes going on after ${victim.name} (${role}) was cut off`)
      return `${victim.name} (${role}) cut off for ${outMs} ms`
    },
    { mesh: true },
  ))
