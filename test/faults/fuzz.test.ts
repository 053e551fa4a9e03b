// Malformed input, bounded and seeded: random and random-but-well-formed protobuf messages to
// every gRPC service of a live cluster (with and without the secret), and random paths, names
// and options to the VolumeDriver API. Every process stays up, every call without the secret is
// refused, the VolumeDriver refuses every bad call, and the filesystem tree (names, modes,
// sizes, contents) is exactly what it was. Replay a failure with POLYFS_SEED=<printed seed>.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { SECRET, dumpLogs, fullyReplicated, startNodes } from '../helpers/cluster'
import { rng, testSeed, waitFor } from '../helpers/mount'
import { driverCall } from '../helpers/volumedriver'
import { rawBidi, rawClient, rawClientStream, rawUnary, secretMetadata } from '../rpc/helpers'
import { decode, type MessageName } from '../../src/rpc'

const UNARY = [
  '/polyfs.v1.Waypoint/GetMaster',
  '/polyfs.v1.Waypoint/SetMaster',
  '/polyfs.v1.Waypoint/Claim',
  '/polyfs.v1.Master/Join',
  '/polyfs.v1.Master/Heartbeat',
  '/polyfs.v1.Master/GetClusterMap',
  '/polyfs.v1.NodeAdmin/MasterChanged',
  '/polyfs.v1.NodeAdmin/ChangeReplicas',
  '/polyfs.v1.NodeAdmin/Status',
  '/polyfs.v1.Kv/Call',
]
/** The answer type of each unary call, to read its `error` field. */
const ANSWER: Record<string, MessageName> = {
  '/polyfs.v1.Waypoint/GetMaster': 'GetMasterResponse',
  '/polyfs.v1.Waypoint/SetMaster': 'SetMasterResponse',
  '/polyfs.v1.Waypoint/Claim': 'ClaimResponse',
  '/polyfs.v1.Master/Join': 'JoinResponse',
  '/polyfs.v1.Master/Heartbeat': 'HeartbeatResponse',
  '/polyfs.v1.Master/GetClusterMap': 'GetClusterMapResponse',
  '/polyfs.v1.NodeAdmin/MasterChanged': 'MasterChangedResponse',
  '/polyfs.v1.NodeAdmin/ChangeReplicas': 'ChangeReplicasResponse',
  '/polyfs.v1.NodeAdmin/Status': 'NodeStatusResponse',
  '/polyfs.v1.Kv/Call': 'KvResponse',
}
/** Calls that change nothing: an answer without an error is fine for them. */
const READ_ONLY = new Set(['/polyfs.v1.Waypoint/GetMaster', '/polyfs.v1.Master/GetClusterMap', '/polyfs.v1.NodeAdmin/Status'])

/** Random bytes, or a random but well-formed protobuf message (fields 1-12 of every wire type). */
function randomBody(r: () => number): Buffer {
  const n = Math.floor(r() * 120)
  if (r() < 0.4) return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)))
  const out: number[] = []
  const varint = (v: number) => {
    let x = Math.floor(v)
    do {
      let b = x % 128
      x = Math.floor(x / 128)
      if (x > 0) b |= 0x80
      out.push(b)
    } while (x > 0)
  }
  const fields = 1 + Math.floor(r() * 6)
  for (let i = 0; i < fields; i++) {
    const field = 1 + Math.floor(r() * 12)
    const wire = [0, 1, 2, 5][Math.floor(r() * 4)]
    varint(field * 8 + wire)
    if (wire === 0) varint(r() < 0.5 ? Math.floor(r() * 4) : Math.floor(r() * 2 ** 40))
    else if (wire === 1) for (let j = 0; j < 8; j++) out.push(Math.floor(r() * 256))
    else if (wire === 5) for (let j = 0; j < 4; j++) out.push(Math.floor(r() * 256))
    else {
      const len = Math.floor(r() * 24)
      varint(len)
      for (let j = 0; j < len; j++) out.push(Math.floor(r() * 256))
    }
  }
  return Buffer.from(out)
}

/** Every file and directory under `root`: type, mode, size and a digest of the contents. */
function tree(root: string): string[] {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name)
      const st = fs.lstatSync(p)
      const rel = path.relative(root, p)
      if (st.isDirectory()) {
        out.push(`d ${rel} ${(st.mode & 0o7777).toString(8)}`)
        walk(p)
      } else if (st.isSymbolicLink()) {
        out.push(`l ${rel} -> ${fs.readlinkSync(p)}`)
      } else {
        out.push(`f ${rel} ${(st.mode & 0o7777).toString(8)} ${st.size} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 16)}`)
      }
    }
  }
  walk(root)
  return out
}

/** A volume name that breaks the rules in one way or another. */
function badName(r: () => number): unknown {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]
  const junk = () => Array.from({ length: 1 + Math.floor(r() * 10) }, () => pick(['a', 'Z', '9', '.', '-', '_', '/', '\u0000', ' ', 'é', '..', '$', '*', '\n'])).join('')
  return pick<unknown>([
    '',
    `${junk()}/${junk()}`,
    `../${junk()}`,
    `.${junk()}`,
    `-${junk()}`,
    `a${'x'.repeat(128 + Math.floor(r() * 200))}`,
    `ok\u0000${junk()}`,
    `sp ace${junk()}`,
    `a..${junk()}`,
    42,
    null,
    { Name: 'nested' },
    ['v'],
  ])
}

function badOptions(r: () => number): unknown {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]
  return pick<unknown>([
    { size: '1G' },
    { mode: String(Math.floor(r() * 10000)) + '9' },
    { mode: 'rwx' },
    { uid: `-${Math.floor(r() * 100)}` },
    { gid: 'root' },
    { uid: String(2 ** 33) },
    { uid: 1000 },
    'uid=1',
    [1, 2],
    { [`o${Math.floor(r() * 1e6)}`]: 'x' },
  ])
}

test('fuzz: malformed messages to every gRPC service and bad calls to the VolumeDriver API change nothing', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (POLYFS_SEED=${seed} replays it)`)
  const r = rng(seed)
  const c = startNodes(t, 3)
  const plugin = c.addPlugin()
  plugin.start()
  try {
    await waitFor(async () => fs.existsSync(plugin.socket) && (await driverCall(plugin.socket, 'VolumeDriver.List').then((x) => !x.body.Err, () => false)), 90_000, 'the plugin ready')
    await fullyReplicated(c)

    // Something to protect: a volume with files, through the plugin's mount.
    const created = await driverCall(plugin.socket, 'VolumeDriver.Create', { Name: 'precious', Opts: { mode: '0700' } })
    assert.equal(created.body.Err, '')
    const vol = path.join(plugin.mountpoint, 'volumes', 'precious')
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(vol, `f${i}`), createHash('sha256').update(`${seed}-${i}`).digest().toString('hex').repeat(1 + i * 50))
    fs.mkdirSync(path.join(vol, 'sub'))
    fs.symlinkSync('../f1', path.join(vol, 'sub', 'link'))
    const before = tree(plugin.mountpoint)

    // gRPC: every service on every process, with and without the secret.
    const targets = [...c.waypoints.map((w) => w.address), ...c.nodes.map((n) => n.address)]
    const raws = new Map(targets.map((a) => [a, rawClient(t, a)]))
    let refusedWithoutSecret = 0
    const accepted: string[] = []
    const codes = new Map<string, number>()
    for (let i = 0; i < 400; i++) {
      const address = targets[Math.floor(r() * targets.length)]
      const raw = raws.get(address)!
      const withSecret = r() < 0.85
      const md = secretMetadata(withSecret ? SECRET : r() < 0.5 ? null : 'wrong-secret')
      const kind = r()
      let code: string
      if (kind < 0.8) {
        const method = UNARY[Math.floor(r() * UNARY.length)]
        const res = await rawUnary(raw, method, randomBody(r), md)
        code = res.code
        if (code === 'OK' && !READ_ONLY.has(method) && res.res) {
          const answer = decode(ANSWER[method], res.res) as { error?: { code?: string } }
          // A random KvRequest that happens to name the region, its epoch and a well-formed op is
          // a valid request (the secret was right); the tree check below catches any harm.
          if (!answer.error?.code && method !== '/polyfs.v1.Kv/Call') accepted.push(`${method} ${JSON.stringify(answer).slice(0, 160)}`)
        }
      } else if (kind < 0.9) {
        const s = rawBidi(raw, '/polyfs.v1.Kv/Session', md)
        for (let k = 0; k < 1 + Math.floor(r() * 3); k++) s.call.write(randomBody(r))
        s.call.end()
        code = (await Promise.race([s.status, new Promise<{ code: string }>((res) => setTimeout(() => res({ code: 'TIMEOUT' }), 5000))])).code
        if (code === 'TIMEOUT') s.call.cancel()
      } else {
        const s = rawClientStream(raw, '/polyfs.v1.RaftTransport/Stream', md)
        for (let k = 0; k < 1 + Math.floor(r() * 3); k++) s.call.write(randomBody(r))
        s.call.end()
        code = (await Promise.race([s.status, new Promise<{ code: string }>((res) => setTimeout(() => res({ code: 'TIMEOUT' }), 5000))])).code
      }
      codes.set(code, (codes.get(code) ?? 0) + 1)
      if (!withSecret) {
        assert.ok(['UNAUTHENTICATED', 'UNIMPLEMENTED', 'CANCELLED', 'TIMEOUT'].includes(code), `a call without the right secret answered ${code}`)
        refusedWithoutSecret++
      }
    }
    t.diagnostic(`gRPC answers: ${JSON.stringify(Object.fromEntries(codes))}; without the secret, all ${refusedWithoutSecret} refused`)
    assert.deepEqual(accepted, [], 'every changing call with a malformed message is refused')

    // VolumeDriver: unknown paths, bad names, bad options, bad bodies.
    const calls = ['Create', 'Remove', 'Mount', 'Unmount', 'Path', 'Get']
    let answered = 0
    for (let i = 0; i < 300; i++) {
      const x = r()
      let reply
      if (x < 0.15) {
        const p = Array.from({ length: 1 + Math.floor(r() * 20) }, () => String.fromCharCode(33 + Math.floor(r() * 90))).join('').replace(/[?#]/g, '')
        reply = await driverCall(plugin.socket, `VolumeDriver.${encodeURIComponent(p)}`, {})
        assert.equal(reply.status, 404, `unknown call ${p}`)
      } else if (x < 0.3) {
        const body = randomBody(r).toString('latin1')
        reply = await driverCall(plugin.socket, `VolumeDriver.${calls[Math.floor(r() * calls.length)]}`, body)
      } else if (x < 0.65) {
        reply = await driverCall(plugin.socket, `VolumeDriver.${calls[Math.floor(r() * calls.length)]}`, { Name: badName(r), ID: 'fuzz', Opts: r() < 0.5 ? badOptions(r) : undefined })
      } else {
        reply = await driverCall(plugin.socket, 'VolumeDriver.Create', { Name: `fuzz${Math.floor(r() * 1e6)}`, Opts: badOptions(r) })
      }
      assert.ok(typeof reply.body.Err === 'string' && reply.body.Err.length > 0, `an Err for call ${i}: ${JSON.stringify(reply.body).slice(0, 200)}`)
      answered++
    }
    t.diagnostic(`VolumeDriver: ${answered} bad calls, every one refused with an Err`)

    // Everything is up, and nothing changed.
    for (const p of [...c.waypoints, ...c.nodes]) assert.ok(p.alive(), `${p.name} is still running`)
    const list = await driverCall(plugin.socket, 'VolumeDriver.List')
    assert.deepEqual(list.body.Volumes.map((v: { Name: string }) => v.Name), ['precious'])
    assert.deepEqual(tree(plugin.mountpoint), before)
    const m = await c.map()
    assert.ok(m && (m.regions?.[0]?.voters ?? []).length === 3, 'the region still has its 3 replicas')
  } catch (err) {
    console.error(dumpLogs(c, 30))
    throw err
  }
})
