// A randomized file-operation model test through two client mounts of a 3-node cluster, with a
// random node killed -9 midway and restarted later. Each operation runs on one mount, chosen
// at random, and updates an in-memory model; every 60 operations, and at the end, the whole
// tree read through both mounts must equal the model (names, types, contents). Seeded:
// POLYFS_SEED replays a run.
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { dumpLogs, fullyReplicated, startNodes } from '../helpers/cluster'
import { rng, testSeed } from '../helpers/mount'

type Model = Map<string, string | null> // path -> file contents, or null for a directory

function snapshot(root: string): Model {
  const out: Model = new Map()
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name
      const st = fs.lstatSync(path.join(root, p))
      if (st.isDirectory()) {
        out.set(p, null)
        walk(p)
      } else out.set(p, fs.readFileSync(path.join(root, p), 'utf8'))
    }
  }
  walk('')
  return out
}

const sorted = (m: Model) => [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))

test('faults: random file operations through two mounts match a model, with a node killed midway', { timeout: 10 * 60_000 }, async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (POLYFS_SEED=${seed} replays it)`)
  const r = rng(seed)
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]
  const c = startNodes(t, 3)
  try {
    await fullyReplicated(c)
    const mounts = [(await c.mount()).mnt, (await c.mount()).mnt]
    const model: Model = new Map()
    const dirs = () => ['', ...[...model.entries()].filter(([, v]) => v === null).map(([k]) => k)]
    const files = () => [...model.entries()].filter(([, v]) => v !== null).map(([k]) => k)
    const under = (p: string) => [...model.keys()].filter((k) => k.startsWith(p + '/'))
    const newName = () => `n${Math.floor(r() * 1e6).toString(36)}`
    const join = (d: string, n: string) => (d ? `${d}/${n}` : n)
    let victim: (typeof c.nodes)[number] | null = null
    const counts = new Map<string, number>()
    const t0 = Date.now()
    for (let i = 0; i < 240; i++) {
      if (i === 80) {
        victim = pick(c.nodes)
        await victim.kill9()
        t.diagnostic(`op ${i} (${((Date.now() - t0) / 1000).toFixed(1)} s): killed ${victim.name}`)
      }
      if (i === 160 && victim) {
        victim.start()
        t.diagnostic(`op ${i} (${((Date.now() - t0) / 1000).toFixed(1)} s): restarted ${victim.name}`)
      }
      const root = pick(mounts)
      const at = (p: string) => path.join(root, p)
      const x = r()
      let op: string
      if (x < 0.12 || (x >= 0.4 && files().length === 0)) {
        op = 'mkdir'
        const p = join(pick(dirs()), newName())
        fs.mkdirSync(at(p))
        model.set(p, null)
      } else if (x < 0.4) {
        op = 'create'
        const p = join(pick(dirs()), newName())
        const body = `${p}:${i}:`.repeat(1 + Math.floor(r() * 300))
        fs.writeFileSync(at(p), body)
        model.set(p, body)
      } else if (x < 0.55) {
        op = 'append'
        const p = pick(files())
        const more = `+${i}`.repeat(1 + Math.floor(r() * 50))
        fs.appendFileSync(at(p), more)
        model.set(p, (model.get(p) as string) + more)
      } else if (x < 0.65) {
        op = 'truncate'
        const p = pick(files())
        const body = model.get(p) as string
        const len = Math.floor(r() * (body.length + 100))
        fs.truncateSync(at(p), len)
        model.set(p, len <= body.length ? body.slice(0, len) : body + '\0'.repeat(len - body.length))
      } else if (x < 0.8) {
        op = 'rename'
        const from = pick([...model.keys()])
        const targetDir = pick(dirs().filter((d) => d !== from && !d.startsWith(from + '/')))
        const to = join(targetDir, newName())
        fs.renameSync(at(from), at(to))
        const moved = [from, ...under(from)]
        for (const k of moved) {
          const v = model.get(k) as string | null
          model.delete(k)
          model.set(to + k.slice(from.length), v)
        }
      } else if (x < 0.93) {
        op = 'unlink'
        const p = pick(files())
        fs.unlinkSync(at(p))
        model.delete(p)
      } else {
        op = 'rmdir'
        const empty = dirs().filter((d) => d && under(d).length === 0)
        if (empty.length === 0) continue
        const p = pick(empty)
        fs.rmdirSync(at(p))
        model.delete(p)
      }
      counts.set(op, (counts.get(op) ?? 0) + 1)
      if (i % 60 === 59) {
        for (const m of mounts) assert.deepEqual(sorted(snapshot(m)), sorted(model), `op ${i}: the tree through ${m} equals the model`)
      }
    }
    for (const m of mounts) assert.deepEqual(sorted(snapshot(m)), sorted(model), `the final tree through ${m} equals the model`)
    t.diagnostic(`operations: ${JSON.stringify(Object.fromEntries(counts))}; ${model.size} entries at the end`)
  } catch (err) {
    console.error(dumpLogs(c, 30))
    throw err
  }
})
