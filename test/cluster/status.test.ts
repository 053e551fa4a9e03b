// `polyfs status` against a real cluster on loopback: the JSON (the Picture) follows the
// cluster's real state through joins and a kill -9 (a node unreachable, then down; its region
// under-replicated naming it; a node-down event; the master leader live), the plain text says the
// same without ANSI escapes when stdout is not a terminal, --watch --json prints one document a
// round and stops on SIGINT, and with no master the command exits 1 with a clear message.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import type { Picture } from '../../src/observe/picture'
import { SECRET, dumpLogs, startCluster, type Cluster, type Proc } from '../helpers/cluster'
import { POLYFS } from '../helpers/mount'

/** Bound on one `polyfs status` run (the machine may be loaded). */
const CLI_TIMEOUT_MS = 20_000

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function statusCli(waypoint: string, extra: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [POLYFS, 'status', '--waypoints', waypoint, ...extra],
      { env: { ...process.env, POLYFS_SECRET: SECRET, NO_COLOR: '' }, timeout: CLI_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0
        resolve({ code, stdout, stderr })
      },
    )
  })
}

async function statusJson(waypoint: string): Promise<{ p: Picture | null; why: string }> {
  const r = await statusCli(waypoint, ['--json'])
  if (r.code !== 0) return { p: null, why: `exit ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}` }
  try {
    return { p: JSON.parse(r.stdout) as Picture, why: '' }
  } catch (err) {
    return { p: null, why: `unparsable JSON (${(err as Error).message}): ${r.stdout.slice(0, 200)}` }
  }
}

/** Runs `polyfs status --json` until `cond` holds on its Picture; throws after timeoutMs. */
async function waitStatus(waypoint: string, cond: (p: Picture) => boolean, timeoutMs: number, what: string): Promise<Picture> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (;;) {
    const { p, why } = await statusJson(waypoint)
    if (p && cond(p)) return p
    last = p ? JSON.stringify({ master: p.master, nodes: p.nodes.map((n) => ({ id: n.id, address: n.address, health: n.health, roles: n.roles })), regions: p.regions.map((r) => ({ id: r.id, voters: r.voters, learners: r.learners, leader: r.leader, health: r.health, why: r.why })), problems: p.problems, healthy: p.healthy }) : why
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last status: ${last}`)
    await new Promise((r) => setTimeout(r, 300))
  }
}

function nodeIdOf(c: Cluster, i: number): number {
  try {
    return (JSON.parse(readFileSync(path.join(c.root, `node-${i + 1}`, 'identity.json'), 'utf8')) as { nodeId: number }).nodeId
  } catch {
    return 0
  }
}

const node = (p: Picture, id: number) => p.nodes.find((n) => n.id === id)
const region1 = (p: Picture) => p.regions.find((r) => r.id === 1)
const sameSet = (a: number[], b: number[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join()

test('status: --json and the plain text follow joins and a kill -9', { timeout: 240_000 }, async (t) => {
  const c = startCluster(t, { nodeArgs: ['--down-after', '3'] })
  const w = c.waypoints[0]!.address
  try {
    // No node yet: no master answers, a clear message and exit code 1.
    const none = await statusCli(w)
    assert.equal(none.code, 1, `exit code with no master; stderr: ${none.stderr}`)
    assert.match(none.stderr, /^polyfs: status: no master leader answers \(.+\)\n$/)
    assert.equal(none.stdout, '')

    c.addNode().start()
    let p = await waitStatus(w, (p) => p.nodes.length === 1 && node(p, p.nodes[0]!.id)?.health === 'up' && sameSet(region1(p)?.voters ?? [], [p.nodes[0]!.id]) && (p.nodes[0]?.roles ?? []).includes('data'), 30_000, 'one node up with region 1')
    const first = p.nodes[0]!
    assert.equal(first.id, 1)
    assert.equal(first.address, c.nodes[0]!.address)
    assert.ok(first.roles.includes('master-leader'), `roles ${first.roles}`)
    assert.ok(first.roles.includes('data'), `roles ${first.roles}`)
    assert.deepEqual(region1(p)?.voters, [1])
    assert.equal(p.master.leader, 1)
    assert.equal(p.master.leaderAddress, c.nodes[0]!.address)
    assert.deepEqual(p.master.voters, [1])
    assert.equal(p.settings.downAfterMs, 3000)

    c.addNode().start()
    c.addNode().start()
    p = await waitStatus(
      w,
      (p) =>
        p.nodes.length === 3 &&
        p.nodes.every((n) => n.health === 'up') &&
        p.master.voters.length === 3 &&
        p.master.learners.length === 0 &&
        (region1(p)?.voters.length ?? 0) === 3 &&
        (region1(p)?.learners.length ?? 1) === 0 &&
        p.healthy,
      90_000,
      'three nodes up, three masters, region 1 with three voters, healthy',
    )
    assert.deepEqual(p.problems, [])
    assert.equal(region1(p)?.health, 'ok')
    // Each node is at the address the test started it at (ids from the nodes' identity files).
    const procOf = new Map<number, Proc>()
    c.nodes.forEach((proc, i) => {
      const id = nodeIdOf(c, i)
      assert.ok(id, `node-${i + 1} has an id`)
      procOf.set(id, proc)
      assert.equal(node(p, id)?.address, proc.address, `node ${id}'s address`)
    })
    assert.deepEqual(new Set(p.nodes.map((n) => n.address)), new Set(c.nodes.map((n) => n.address)))
    for (const n of p.nodes) assert.ok(n.roles.includes('data'), `node ${n.id} roles ${n.roles}`)
    assert.equal(p.nodes.filter((n) => n.roles.includes('master-leader')).length, 1)

    // kill -9 a node that does not lead the master group.
    const victim = p.nodes.find((n) => n.id !== p.master.leader)!.id
    const t0 = Date.now()
    await procOf.get(victim)!.kill9()
    p = await waitStatus(w, (p) => ['unreachable', 'down'].includes(node(p, victim)?.health ?? ''), 10_000, `node ${victim} unreachable or down`)
    const seenMs = Date.now() - t0
    p = await waitStatus(
      w,
      (p) =>
        node(p, victim)?.health === 'down' &&
        region1(p)?.health === 'under-replicated' &&
        p.events.some((e) => e.kind === 'node-down' && e.subjectNode === victim) &&
        node(p, p.master.leader)?.health === 'up' &&
        node(p, region1(p)?.leader ?? 0)?.health === 'up',
      30_000,
      `node ${victim} down, region 1 under-replicated, a live leader`,
    )
    const downMs = Date.now() - t0
    const r = region1(p)!
    assert.match(r.why, new RegExp(`\\bnode ${victim}\\b`), `why: ${r.why}`)
    assert.equal(r.replicas.find((x) => x.nodeId === victim)?.live, false)
    assert.equal(p.healthy, false)
    assert.ok(p.problems.length > 0)
    assert.ok(p.problems.some((s) => s.includes(`node ${victim} `)), `problems: ${p.problems.join('; ')}`)
    const ev = p.events.find((e) => e.kind === 'node-down' && e.subjectNode === victim)!
    assert.equal(ev.level, 'warn')
    assert.ok(ev.atMs >= t0 - 1000, 'the node-down event is from after the kill')
    assert.notEqual(p.master.leader, victim)
    assert.equal(p.master.leaderAddress, node(p, p.master.leader)?.address)
    t.diagnostic(`node ${victim} shown unreachable/down after ${seenMs} ms, down with its region under-replicated after ${downMs} ms`)

    // The plain text: the same picture, no escapes on a pipe (NO_COLOR is empty: not a cause).
    const plain = await statusCli(w)
    assert.equal(plain.code, 0, plain.stderr)
    assert.doesNotMatch(plain.stdout, /\x1b/)
    for (const n of c.nodes) assert.ok(plain.stdout.includes(n.address), `plain output lists ${n.address}:\n${plain.stdout}`)
    assert.match(plain.stdout, /UNHEALTHY/)
    assert.match(plain.stdout, /under-replicated/)
    assert.match(plain.stdout, new RegExp(`\\n${victim} +${procOf.get(victim)!.address.replace(/\./g, '\\.')} +down `))
    assert.match(plain.stdout, /node-down/)

    // --watch --json: one Picture per line each round; SIGINT ends it with exit code 0.
    const lines = await watchJsonLines(w, 2)
    assert.equal(lines.length >= 2, true)
    for (const l of lines) {
      const q = JSON.parse(l) as Picture
      assert.equal(q.clusterId, p.clusterId)
      assert.equal(q.nodes.length, 3)
    }
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

/** `polyfs status --watch 0.5 --json` until `n` lines, then SIGINT (by its PID); bounded. */
async function watchJsonLines(waypoint: string, n: number): Promise<string[]> {
  const child = spawn(process.execPath, [POLYFS, 'status', '--waypoints', waypoint, '--watch', '0.5', '--json'], { env: { ...process.env, POLYFS_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString()))
  child.stderr.on('data', (b: Buffer) => (err += b.toString()))
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000)
  try {
    const deadline = Date.now() + 40_000
    while (out.split('\n').filter(Boolean).length < n) {
      if (child.exitCode !== null) throw new Error(`status --watch exited early (${child.exitCode}): ${err}`)
      if (Date.now() > deadline) throw new Error(`status --watch printed ${out.split('\n').filter(Boolean).length} of ${n} lines in 40 s; stderr: ${err}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    child.kill('SIGINT')
    let hung: NodeJS.Timeout | undefined
    const code = await Promise.race([exited, new Promise<'hung'>((r) => (hung = setTimeout(() => r('hung'), 10_000)))])
    clearTimeout(hung)
    assert.equal(code, 0, `status --watch after SIGINT: ${code}; stderr: ${err}`)
    return out.split('\n').filter(Boolean)
  } finally {
    clearTimeout(kill)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}
