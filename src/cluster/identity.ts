// The node's identity file (docs/node-store.md): which cluster it belongs to, its id, and the
// master members it last knew. Written atomically: temp file, fsync, rename, fsync the dir.
import { randomBytes } from 'node:crypto'
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'

const FORMAT = 1
const FILE = 'identity.json'

export interface Identity {
  readonly format: number
  readonly clusterId: string
  readonly nodeId: number
  readonly joinToken: string
  readonly address: string
  /** Addresses of the master group's members, last known (to find the master without waypoints). */
  readonly peers: readonly string[]
}

/** The identity in `dir`, or a fresh one (no cluster yet) when there is none. */
export function loadIdentity(dir: string, address: string): Identity {
  let raw: string
  try {
    raw = readFileSync(path.join(dir, FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    return { format: FORMAT, clusterId: '', nodeId: 0, joinToken: randomBytes(16).toString('hex'), address, peers: [] }
  }
  let id: Identity
  try {
    id = JSON.parse(raw) as Identity
  } catch {
    throw new Error(`${path.join(dir, FILE)} is not valid JSON: fix or remove it (removing it makes this a new node)`)
  }
  if (id.format !== FORMAT) throw new Error(`${path.join(dir, FILE)} has format ${id.format}; this version knows ${FORMAT}`)
  return { ...id, address }
}

export function saveIdentity(dir: string, id: Identity): void {
  const file = path.join(dir, FILE)
  const tmp = `${file}.tmp`
  writeFileSync(tmp, JSON.stringify(id, null, 2) + '\n')
  const fd = openSync(tmp, 'r+')
  fsyncSync(fd)
  closeSync(fd)
  renameSync(tmp, file)
  const d = openSync(dir, 'r')
  fsyncSync(d)
  closeSync(d)
}
