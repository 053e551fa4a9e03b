// Volumes: what a Docker volume is in PolyFS, cluster-wide. A volume is the directory
// /volumes/NAME of the filesystem plus one VOLUME record (docs/storage-format.md) holding its
// options, its state and every mount of it on every node. Create, Mount, Unmount and Remove
// each read and write that one record in one transaction, so a Remove on one host and a Mount
// on another cannot both succeed. docs/plugin.md says what each VolumeDriver call does.
import { FileSystem, FsError, ROOT_CTX, records, type Stat } from '../fs'
import { KvError, keys, type KV } from '../kv'
import type { Logger } from '../util'
import { nameProblem, parseOptions } from './names'

const { decodeVolume, encodeVolume, VolumeState } = records
type VolumeRecord = ReturnType<typeof decodeVolume>

/** The directory every volume lives in, at the filesystem's root. */
export const VOLUMES_DIR = '/volumes'
/** Removed volumes are moved here first, then deleted in the background. */
export const TRASH_DIR = '/.polyfs-trash'

/** A refusal with a sentence for Docker's Err. */
export class VolumeError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'VolumeError'
  }
}

export interface VolumeInfo {
  Name: string
  Mountpoint: string
  CreatedAt: string
  Status?: Record<string, unknown>
}

export interface VolumeStoreOptions {
  /** Records (one key per volume). */
  readonly kv: KV
  /** Directories, through the filesystem layer (root's context). */
  readonly fs: FileSystem
  /** This node's id: mounts are recorded per node. */
  readonly nodeId: () => number
  /** Where the filesystem is mounted on this host, as Docker must see it. */
  readonly mountpoint: string
  /** Nodes the master reports up; null when it cannot be asked (then nothing is assumed stale). */
  readonly liveNodes: () => Promise<Set<number> | null>
  /** Extra status for Get (replicas, health), computed by the caller. */
  readonly clusterStatus: () => Promise<Record<string, unknown>>
  /** How long an operation may wait on the cluster before it fails (default 15 s). */
  readonly deadlineMs?: number
  readonly log: Logger
}

const SIZE_CACHE_MS = 30_000
const SIZE_WALK_ENTRIES = 20_000
const SIZE_WALK_MS = 2_000

export class VolumeStore {
  private readonly sizes = new Map<string, { at: number; bytes: number; files: number; complete: boolean }>()
  private readonly deadlineMs: number

  constructor(private readonly o: VolumeStoreOptions) {
    this.deadlineMs = o.deadlineMs ?? 15_000
  }

  pathOf(name: string): string {
    return `${this.o.mountpoint}${VOLUMES_DIR}/${name}`
  }

  /** Creates the volume; creating one that exists succeeds and keeps its first options. */
  async create(name: string, opts: unknown): Promise<void> {
    checkName(name)
    let options
    try {
      options = parseOptions(opts)
    } catch (err) {
      throw new VolumeError((err as Error).message)
    }
    const existing = await this.read(name)
    if (existing?.state === VolumeState.REMOVING) throw new VolumeError(`volume ${name} is being removed; try again when that is done`)
    if (existing) {
      if (options.sorted.length > 0 && JSON.stringify(options.sorted) !== JSON.stringify(existing.options)) {
        this.o.log.info({ volume: name, asked: options.sorted, kept: existing.options }, 'volume exists: its options stay as created')
      }
      return
    }
    // The directory first, then the record: a record always has its directory.
    await this.deadline(`create volume ${name}`, async () => {
      await this.mkdirOk(VOLUMES_DIR, 0o755)
      const dir = `${VOLUMES_DIR}/${name}`
      await this.mkdirOk(dir, options.parsed.mode)
      await this.o.fs.chmod(ROOT_CTX, dir, options.parsed.mode)
      await this.o.fs.chown(ROOT_CTX, dir, options.parsed.uid, options.parsed.gid)
      const now = Date.now()
      await this.o.kv.txn(async (tx) => {
        if (await tx.get(keys.volume(name))) return // made meanwhile by another host
        const rec: VolumeRecord = { createdSec: Math.floor(now / 1000), createdNsec: (now % 1000) * 1e6, state: VolumeState.READY, options: options.sorted, mounts: [] }
        tx.put(keys.volume(name), encodeVolume(rec))
      }, { sync: true })
    })
    this.o.log.info({ volume: name, options: options.sorted }, 'volume created')
  }

  /** Removes the volume and its data; refused while any live node has it mounted. */
  async remove(name: string): Promise<void> {
    checkName(name)
    const live = await this.o.liveNodes()
    await this.deadline(`remove volume ${name}`, async () => {
      const rec = await this.o.kv.txn(async (tx) => {
        const raw = await tx.get(keys.volume(name))
        if (!raw) return null
        const v = decodeVolume(raw, keys.volume(name))
        const holding = v.mounts.filter((m) => live === null || live.has(m.node))
        if (holding.length > 0) {
          const where = [...new Set(holding.map((m) => m.node))].join(', ')
          throw new VolumeError(`volume ${name} is in use: mounted ${holding.length} time(s) on node(s) ${where}; stop the containers that use it first`)
        }
        if (v.mounts.length > 0) this.o.log.warn({ volume: name, stale: v.mounts }, 'dropping mounts of nodes that are down')
        v.mounts = []
        v.state = VolumeState.REMOVING
        tx.put(keys.volume(name), encodeVolume(v))
        return v
      }, { sync: true })
      if (!rec) throw new VolumeError(`no such volume: ${name}`)
      // Out of the namespace at once (a new volume of the same name starts empty), then gone.
      await this.mkdirOk(TRASH_DIR, 0o700)
      const trash = `${TRASH_DIR}/${name}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 8)}`
      try {
        await this.o.fs.rename(ROOT_CTX, `${VOLUMES_DIR}/${name}`, trash)
      } catch (err) {
        if (!(err instanceof FsError && err.errno === 'ENOENT')) throw err
      }
      await this.o.kv.txn(async (tx) => tx.del(keys.volume(name)), { sync: true })
      void this.emptyTrash().catch((err) => this.o.log.warn({ err: (err as Error).message }, 'emptying the trash failed; the next removal retries'))
    })
    this.sizes.delete(name)
    this.o.log.info({ volume: name }, 'volume removed')
  }

  /** Records mount `id` of this node and answers the volume's path on this host. */
  async mount(name: string, id: string): Promise<string> {
    checkName(name)
    if (typeof id !== 'string' || id.length === 0 || id.length > 1024) throw new VolumeError('a mount ID is required')
    const node = this.o.nodeId()
    await this.deadline(`mount volume ${name}`, () =>
      this.o.kv.txn(async (tx) => {
        const raw = await tx.get(keys.volume(name))
        if (!raw) throw new VolumeError(`no such volume: ${name}`)
        const v = decodeVolume(raw, keys.volume(name))
        if (v.state === VolumeState.REMOVING) throw new VolumeError(`volume ${name} is being removed`)
        if (v.mounts.some((m) => m.node === node && m.id === id)) return // a repeated Mount: counted once
        v.mounts.push({ node, id, sinceSec: Math.floor(Date.now() / 1000) })
        tx.put(keys.volume(name), encodeVolume(v))
      }, { sync: true }),
    )
    // The directory can be missing if someone removed it through a mount: give it back.
    await this.deadline(`mount volume ${name}`, () => this.mkdirOk(`${VOLUMES_DIR}/${name}`, 0o755))
    return this.pathOf(name)
  }

  /** Forgets mount `id`; an unknown or repeated one is not an error (Docker may send it twice). */
  async unmount(name: string, id: string): Promise<void> {
    checkName(name)
    const node = this.o.nodeId()
    const found = await this.deadline(`unmount volume ${name}`, () =>
      this.o.kv.txn(async (tx) => {
        const raw = await tx.get(keys.volume(name))
        if (!raw) return false
        const v = decodeVolume(raw, keys.volume(name))
        const before = v.mounts.length
        v.mounts = v.mounts.filter((m) => !(m.node === node && m.id === id))
        if (v.mounts.length === before) return false
        tx.put(keys.volume(name), encodeVolume(v))
        return true
      }, { sync: true }),
    )
    if (!found) this.o.log.info({ volume: name, id }, 'unmount of a mount not recorded here: nothing to do')
  }

  async get(name: string): Promise<VolumeInfo> {
    checkName(name)
    const v = await this.read(name)
    if (!v || v.state !== VolumeState.READY) throw new VolumeError(`no such volume: ${name}`)
    const node = this.o.nodeId()
    const size = await this.size(name)
    const status: Record<string, unknown> = {
      ...(await this.o.clusterStatus()),
      size: size.complete ? size.bytes : `at least ${size.bytes}`,
      files: size.complete ? size.files : `at least ${size.files}`,
      mounts: v.mounts.length,
      mountedHere: v.mounts.filter((m) => m.node === node).length,
      mountedOnNodes: [...new Set(v.mounts.map((m) => m.node))].sort((a, b) => a - b),
      options: Object.fromEntries(v.options),
    }
    return { Name: name, Mountpoint: this.pathOf(name), CreatedAt: createdAt(v), Status: status }
  }

  async list(): Promise<VolumeInfo[]> {
    const entries = await this.deadline('list volumes', () => this.o.kv.scan(keys.volumeRange()))
    const prefix = keys.volumeRange().start.length
    const out: VolumeInfo[] = []
    for (const { key, value } of entries) {
      const v = decodeVolume(value, key)
      if (v.state !== VolumeState.READY) continue
      const name = key.subarray(prefix).toString('utf8')
      out.push({ Name: name, Mountpoint: this.pathOf(name), CreatedAt: createdAt(v) })
    }
    return out
  }

  /** The volume's path when it exists. */
  async path(name: string): Promise<string> {
    checkName(name)
    const v = await this.read(name)
    if (!v || v.state !== VolumeState.READY) throw new VolumeError(`no such volume: ${name}`)
    return this.pathOf(name)
  }

  /** Drops every mount recorded for `node` (after the host rebooted: none can still exist). */
  async forgetMountsOf(node: number): Promise<number> {
    let dropped = 0
    for (const { key } of await this.o.kv.scan(keys.volumeRange())) {
      dropped += await this.o.kv.txn(async (tx) => {
        const raw = await tx.get(key)
        if (!raw) return 0
        const v = decodeVolume(raw, key)
        const keep = v.mounts.filter((m) => m.node !== node)
        if (keep.length === v.mounts.length) return 0
        const n = v.mounts.length - keep.length
        v.mounts = keep
        tx.put(key, encodeVolume(v))
        return n
      }, { sync: true })
    }
    return dropped
  }

  /** Deletes everything under the trash directory (removed volumes' data). */
  async emptyTrash(): Promise<void> {
    let list
    try {
      list = await this.o.fs.readdir(ROOT_CTX, TRASH_DIR)
    } catch (err) {
      if (err instanceof FsError && err.errno === 'ENOENT') return
      throw err
    }
    for (let i = 2; i < list.names.length; i++) await this.removeTree(`${TRASH_DIR}/${list.names[i]}`, list.stats[i])
  }

  private async removeTree(path: string, st: Stat): Promise<void> {
    try {
      if ((st.mode & 0o170000) === 0o040000) {
        const { names, stats } = await this.o.fs.readdir(ROOT_CTX, path)
        for (let i = 2; i < names.length; i++) await this.removeTree(`${path}/${names[i]}`, stats[i])
        await this.o.fs.rmdir(ROOT_CTX, path)
      } else {
        await this.o.fs.unlink(ROOT_CTX, path)
      }
    } catch (err) {
      // Another node emptying the same trash got there first.
      if (!(err instanceof FsError && err.errno === 'ENOENT')) throw err
    }
  }

  /** Bytes and files under the volume, walked with a budget and cached for 30 s. */
  private async size(name: string): Promise<{ bytes: number; files: number; complete: boolean }> {
    const hit = this.sizes.get(name)
    if (hit && Date.now() - hit.at < SIZE_CACHE_MS) return hit
    const acc = { at: Date.now(), bytes: 0, files: 0, complete: true }
    const until = Date.now() + SIZE_WALK_MS
    const walk = async (dir: string): Promise<void> => {
      const { names, stats } = await this.o.fs.readdir(ROOT_CTX, dir)
      for (let i = 2; i < names.length; i++) {
        if (acc.files >= SIZE_WALK_ENTRIES || Date.now() > until) {
          acc.complete = false
          return
        }
        acc.files++
        if ((stats[i].mode & 0o170000) === 0o040000) await walk(`${dir}/${names[i]}`)
        else acc.bytes += stats[i].size
      }
    }
    try {
      await walk(`${VOLUMES_DIR}/${name}`)
    } catch (err) {
      this.o.log.warn({ volume: name, err: (err as Error).message }, 'could not measure the volume')
      acc.complete = false
    }
    this.sizes.set(name, acc)
    return acc
  }

  private async read(name: string): Promise<VolumeRecord | null> {
    const raw = await this.deadline(`read volume ${name}`, () => this.o.kv.get(keys.volume(name)))
    return raw ? decodeVolume(raw, keys.volume(name)) : null
  }

  private async mkdirOk(path: string, mode: number): Promise<void> {
    try {
      await this.o.fs.mkdir(ROOT_CTX, path, mode)
    } catch (err) {
      if (!(err instanceof FsError && err.errno === 'EEXIST')) throw err
    }
  }

  /** Runs `op`, turning a cluster that does not answer in time into a clear refusal. */
  private async deadline<T>(what: string, op: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VolumeError(`${what}: the PolyFS cluster did not answer within ${this.deadlineMs / 1000} s (is a majority of the nodes up and reachable from this host?)`)), this.deadlineMs)
    })
    try {
      return await Promise.race([op(), late])
    } catch (err) {
      if (err instanceof KvError && (err.code === 'UNAVAILABLE' || err.code === 'CLOSED')) {
        throw new VolumeError(`${what}: the PolyFS cluster is unreachable from this host: ${err.message}`)
      }
      throw err
    } finally {
      clearTimeout(timer)
    }
  }
}

function checkName(name: unknown): asserts name is string {
  const problem = nameProblem(name)
  if (problem) throw new VolumeError(problem)
}

function createdAt(v: VolumeRecord): string {
  return new Date(v.createdSec * 1000 + Math.floor(v.createdNsec / 1e6)).toISOString()
}
