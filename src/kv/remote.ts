// ClusterKV: the KV interface (types.ts) over a PolyFS cluster. It routes each key to its
// region with a cached cluster map, sends requests to the region's leader over one multiplexed
// stream per node, follows NOT_LEADER and EPOCH_NOT_MATCH hints, and retries with backoff
// while a leader changes. Transactions are optimistic, as in LocalKV: reads record the version
// of what they saw, and the commit is validated when the region applies it (docs/kv.md).
import { randomBytes } from 'node:crypto'
import { metrics } from '../observe/metrics'
import type { Logger } from '../util/log'
import { ErrorCode, NO_OPERATION, RpcError, keyInRegion, newerEpoch, type KvRequest, type KvResponse, type NodeAddr, type RegionDescriptor, type RpcClients, type ScanCheck } from '../rpc'
import { LeaseCache, RANGE_TOO_LARGE_RETRY_MS, type LeaseRead } from './leases'
import { KvError, LIMITS, type Entry, type KV, type Range, type ReadOptions, type Txn, type TxnOptions } from './types'
import { PatchError, checkPatch, mergePatch, type PatchRange } from './blockvalue'
import { isBlockKey } from './keys'

export interface ClusterKVOptions {
  readonly clients: RpcClients
  /** Waypoint addresses, used to find the master leader. */
  readonly waypoints: readonly string[]
  /** Node addresses to ask for the cluster map first (e.g. the local node). */
  readonly nodes?: readonly string[]
  readonly logger: Logger
  /** How long one operation keeps retrying while the cluster cannot serve it (default 30 s). */
  readonly retryForMs?: number
  /** The read lease asked for on reads made with { lease: true } (docs/metadata-leases.md;
   * default LEASE_MS, 0: none, every read goes to the leader). */
  readonly leaseMs?: number
}

type Op = Pick<KvRequest, 'op' | 'get' | 'scan' | 'commit' | 'patchCommit' | 'getMany' | 'leaseMs' | 'leaseHolder'>

/** Entries a directory lease's scan asks for at most: a larger directory is read key by key
 * (docs/metadata-leases.md, "Directory leases"). */
const RANGE_SCAN_LIMIT = 1024
/** The read lease asked for by default (the leader grants at most its own bound, 1 s). */
export const LEASE_MS = 1000

/** A request's keys are no longer all in one region (getMany regroups them). */
class SpansRegions extends Error {}

/** How long one attempt waits for its node before trying another (a commit of a large write
 * batch is well under this on a healthy cluster). */
const ATTEMPT_TIMEOUT_MS = 3_000
/** How long a node that failed or timed out is avoided. */
const SUSPECT_MS = 3_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Bounds of the transactions' read cache (see ReadCache): metadata records are small; file
 * data blocks (16 KiB) are not kept, or a sequential write would fill it with them. */
const READ_CACHE_ENTRIES = 16_384
const READ_CACHE_BYTES = 16 * 1024 * 1024
const READ_CACHE_VALUE_BYTES = 4 * 1024

/**
 * What this client last knew of a key: its value (undefined = absent) and version (the Raft
 * index that wrote it; 0 = absent). Filled by linearizable reads and by this client's own
 * acknowledged commits. Only transactions that commit use it, never a plain get: the region
 * validates every read version at commit, so a stale entry costs a CONFLICT and a re-run
 * (without the cache for those keys), never a wrong result. LRU, bounded in entries; large
 * values are not kept.
 */
class ReadCache {
  private readonly map = new Map<string, { value: Buffer | undefined; version: number }>()
  private bytes = 0

  get(k: string): { value: Buffer | undefined; version: number } | undefined {
    const e = this.map.get(k)
    if (e) {
      this.map.delete(k)
      this.map.set(k, e)
    }
    return e
  }

  set(k: string, value: Buffer | undefined, version: number): void {
    this.drop(k)
    if (value && value.length > READ_CACHE_VALUE_BYTES) return
    this.map.set(k, { value, version })
    this.bytes += k.length + (value?.length ?? 0)
    while (this.map.size > READ_CACHE_ENTRIES || this.bytes > READ_CACHE_BYTES) this.drop(this.map.keys().next().value as string)
  }

  drop(k: string): void {
    const e = this.map.get(k)
    if (!e) return
    this.map.delete(k)
    this.bytes -= k.length + (e.value?.length ?? 0)
  }
}

export class ClusterKV implements KV {
  private regions: RegionDescriptor[] = []
  private readonly nodes = new Map<number, string>()
  private masterAddress: string | null = null
  /** Nodes that failed or timed out recently, until when to avoid them. */
  private readonly suspect = new Map<string, number>()
  private refreshing: Promise<void> | null = null
  private closed = false
  private readonly retryForMs: number
  capacity = { capacityBytes: 0, freeBytes: 0 }
  /** Commits refused with CONFLICT (then retried), for tests and status. */
  conflicts = 0
  /** Transaction reads served from the read cache (for tests and OP_TIMING). */
  cacheHits = 0
  /** A node answered get_many as an unknown request: one get per key from then on. */
  private noGetMany = false
  /** A node answered patch_commit as no operation (it predates it): merge patches here. */
  private noPatchCommit = false
  readonly cache = new ReadCache()
  /** Transaction ids: 8 random bytes for this client, then a counter (randomBytes per commit
   * was a tenth of the client's CPU). Unique per commit, so a retry is recognised as one. */
  private readonly txnPrefix = randomBytes(8)
  private txnSeq = 0
  /** Values read under a lease (docs/metadata-leases.md), and this client's lease identity. */
  readonly leases = new LeaseCache(() => performance.now())
  private readonly leaseMs: number
  private readonly holder = randomBytes(6).readUIntBE(0, 6) || 1
  private readonly stopPush: () => void

  constructor(private readonly opts: ClusterKVOptions) {
    this.retryForMs = opts.retryForMs ?? 30_000
    this.leaseMs = opts.leaseMs ?? LEASE_MS
    this.stopPush = opts.clients.onKvPush((res, address) => this.onPush(res, address))
  }

  /** A leader revoked leases of ours: drop the keys, then say so. */
  private onPush(res: KvResponse, address: string): void {
    const r = res.revoke
    if (!r || r.leaseHolder !== this.holder) return
    this.leases.revoke(r.keys.map((k) => k.toString('latin1')))
    this.opts.clients.kv(address).send({ regionId: r.regionId, leaseHolder: this.holder, op: 'release', release: { revokeId: r.revokeId } })
  }

  /** The lease fields of a read made with `o`, and its bookkeeping (null: no lease). */
  private leaseFor(keys: readonly Buffer[], o?: ReadOptions): { read: LeaseRead; op: { leaseMs: number; leaseHolder: number } } | null {
    if (!o?.lease || this.leaseMs <= 0) return null
    return { read: this.leases.beginRead(keys.map((k) => k.toString('latin1'))), op: { leaseMs: this.leaseMs, leaseHolder: this.holder } }
  }

  /** Connects: resolves once the cluster map is known (retrying up to retryForMs). */
  async connect(): Promise<void> {
    const deadline = Date.now() + this.retryForMs
    for (;;) {
      try {
        await this.refresh()
        if (this.regions.length > 0) return
      } catch (err) {
        this.opts.logger.debug({ err }, 'cluster map not available yet')
      }
      if (Date.now() > deadline) throw new KvError('UNAVAILABLE', 'no master answered with a cluster map (are the waypoints and nodes up?)')
      await sleep(250)
    }
  }

  private refresh(): Promise<void> {
    if (!this.refreshing) this.refreshing = this.doRefresh().finally(() => (this.refreshing = null))
    return this.refreshing
  }

  private async doRefresh(): Promise<void> {
    const tried = new Set<string>()
    const candidates: string[] = [...(this.masterAddress ? [this.masterAddress] : []), ...(this.opts.nodes ?? [])]
    for (const w of this.opts.waypoints) {
      try {
        const m = await this.opts.clients.waypoint(w).getMaster({}, { timeoutMs: 1000 })
        if (m.known && m.leader?.address) candidates.push(m.leader.address)
      } catch {
        // the next one
      }
    }
    candidates.push(...this.nodes.values())
    for (let i = 0; i < candidates.length && tried.size < 16; i++) {
      const at = candidates[i] as string
      if (tried.has(at)) continue
      tried.add(at)
      try {
        const map = await this.opts.clients.master(at).getClusterMap({}, { timeoutMs: 2000 })
        if (map.error?.code) {
          if (map.error.leader?.address) candidates.splice(i + 1, 0, map.error.leader.address)
          continue
        }
        this.masterAddress = at
        for (const n of map.nodes ?? []) if (n.address) this.nodes.set(n.nodeId, n.address)
        // The master learns descriptors from heartbeats: keep what a replica told us more
        // recently (a newer epoch, a leader).
        const fresh = (map.regions ?? []).map((r) => {
          const old = this.regions.find((x) => x.id === r.id)
          if (old && newerEpoch(old, r)) return old
          return old?.leader && !r.leader ? { ...r, leader: old.leader } : { ...r }
        })
        this.regions = fresh.sort((a, b) => Buffer.compare(a.startKey ?? Buffer.alloc(0), b.startKey ?? Buffer.alloc(0)))
        let cap = 0
        let free = 0
        for (const n of map.nodes ?? []) {
          if (n.state === 'NODE_REMOVED') continue
          cap += n.capacityBytes
          free += n.freeBytes
        }
        // Every byte is stored `replicas` times.
        const replicas = Math.max(1, Math.min(map.settings?.dataReplicas ?? 3, (map.nodes ?? []).length))
        this.capacity = { capacityBytes: Math.floor(cap / replicas), freeBytes: Math.floor(free / replicas) }
        return
      } catch (err) {
        this.opts.logger.debug({ err: (err as Error).message, at }, 'getClusterMap failed')
      }
    }
  }

  private locate(key: Buffer): RegionDescriptor | undefined {
    return this.regions.find((r) => keyInRegion(key, r))
  }

  private replace(r: RegionDescriptor): void {
    const i = this.regions.findIndex((x) => x.id === r.id)
    if (i >= 0) this.regions[i] = { ...r }
    else this.regions.push({ ...r })
    // A replica we cannot address (a node that joined since our map) would be unreachable
    // exactly when we need it, after its leader dies: learn the addresses now.
    if ([...(r.voters ?? []), ...(r.learners ?? [])].some((id) => !this.nodes.has(id))) void this.refresh().catch(() => undefined)
  }

  /** The node to ask: the leader we know, else the replicas in turn, avoiding nodes that
   * failed or stalled a moment ago (a stopped leader keeps its connections open). */
  private target(r: RegionDescriptor, attempt: number): string | undefined {
    const now = Date.now()
    const ok = (a: string | undefined) => !!a && (this.suspect.get(a) ?? 0) <= now
    const leader = r.leader ? this.nodes.get(r.leader) : undefined
    if (ok(leader)) return leader
    const members = (r.voters ?? []).map((id) => this.nodes.get(id)).filter((a): a is string => !!a)
    const good = members.filter(ok)
    const pool = good.length > 0 ? good : members
    return pool[attempt % Math.max(1, pool.length)]
  }

  /** One request for the region holding `key`, retried across leader changes and epochs. */
  private async request(key: Buffer, op: Op, sameRegion?: readonly Buffer[]): Promise<{ res: KvResponse; region: RegionDescriptor }> {
    if (this.closed) throw new KvError('CLOSED', 'store is closed')
    const deadline = Date.now() + this.retryForMs
    let lastError = 'no region for the key'
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) {
        if (Date.now() > deadline) throw new KvError('UNAVAILABLE', `cluster did not answer for ${this.retryForMs} ms: ${lastError}`)
        await sleep(Math.min(500, 10 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2))
      }
      const r = this.locate(key)
      if (!r) {
        await this.refresh().catch(() => undefined)
        continue
      }
      // Keys that must be served by one region no longer are: the caller regroups them.
      if (sameRegion && attempt > 0 && sameRegion.some((k) => !keyInRegion(k, r))) throw new SpansRegions()
      const at = this.target(r, attempt)
      if (!at) {
        await this.refresh().catch(() => undefined)
        continue
      }
      let res: KvResponse
      try {
        // A bounded wait per attempt: a leader that stopped answering must not hold the client
        // for long (a commit retried after a timeout keeps its txn id, so it applies once).
        res = await this.opts.clients.kv(at).call({ regionId: r.id, epoch: r.epoch, ...op }, { timeoutMs: ATTEMPT_TIMEOUT_MS })
      } catch (err) {
        lastError = `${at}: ${(err as Error).message}`
        if (err instanceof RpcError && err.code === 'UNAUTHENTICATED') throw new KvError('IO', `refused by ${at}: wrong cluster secret`)
        this.suspect.set(at, Date.now() + SUSPECT_MS)
        r.leader = 0
        // The replicas we know may be out of date (nodes joined since the last map).
        if (attempt >= 2) await this.refresh().catch(() => undefined)
        continue
      }
      const e = res.error
      if (!e || !e.code) {
        // Only a leader answers: remember it, or the next request starts at a stale guess.
        const id = [...this.nodes].find(([, a]) => a === at)?.[0]
        if (id !== undefined) r.leader = id
        return { res, region: r }
      }
      lastError = `${e.code}: ${e.message}`
      switch (e.code) {
        case ErrorCode.NOT_LEADER:
          if (e.leader?.nodeId) {
            this.noteNode(e.leader)
            r.leader = e.leader.nodeId
          } else r.leader = 0
          if (e.region && (e.region.epoch?.confVer ?? 0) > (r.epoch?.confVer ?? 0)) this.replace({ ...e.region, leader: r.leader })
          continue
        case ErrorCode.EPOCH_NOT_MATCH:
        case ErrorCode.KEY_NOT_IN_REGION:
          if (e.region) this.replace(e.region)
          else await this.refresh().catch(() => undefined)
          continue
        case ErrorCode.REGION_NOT_FOUND:
          r.leader = 0
          await this.refresh().catch(() => undefined)
          continue
        case ErrorCode.BUSY:
        case ErrorCode.TIMEOUT:
          continue
        case ErrorCode.CONFLICT:
          throw new KvError('CONFLICT', e.message)
        case ErrorCode.TOO_LARGE:
          throw new KvError('TOO_LARGE', e.message)
        default:
          throw new KvError('IO', `${e.code}: ${e.message}`)
      }
    }
  }

  private noteNode(a: NodeAddr): void {
    if (a.nodeId && a.address) this.nodes.set(a.nodeId, a.address)
  }

  async get(key: Buffer, o?: ReadOptions): Promise<Buffer | undefined> {
    if (o?.lease) {
      const k = key.toString('latin1')
      const hit = this.leases.lookup(k)
      if (hit) return hit.value
      const range = this.leaseMs > 0 ? o.rangeOf?.(key) : undefined
      if (range) {
        const start = range.start.toString('latin1')
        const held = this.fromRange(k, start)
        if (held !== null && held !== 'busy') return held.value
        if (held === null && this.leases.rangeWanted(start)) {
          const got = await this.getViaRange(key, range)
          if (got) return got.value
        }
      }
    }
    return (await this.getVersioned(key, o))?.value
  }

  /** A key's answer from a leased range (LeaseCache.lookupRange). The transaction that
   * creates, removes or renames the name usually reads it next: it enters the read cache with
   * its version (absent: 0), as a get's answer would have (checked at the commit in any case). */
  private fromRange(k: string, start: string): { value: Buffer | undefined } | 'busy' | null {
    const held = this.leases.lookupRange(k, start)
    if (held !== null && held !== 'busy' && !this.cache.get(k)) this.cache.set(k, held.value, held.version)
    return held
  }

  /**
   * A leased get of `key` sent as a leased scan of the whole range it belongs to (one request,
   * as the get would be), so that the range's other keys, present or not, are answered here
   * while the lease lasts (docs/metadata-leases.md, "Directory leases"). Null when the range
   * is not one region's or is larger than RANGE_SCAN_LIMIT: the caller gets the key alone.
   */
  private async getViaRange(key: Buffer, range: { start: Buffer; end: Buffer }): Promise<{ value: Buffer | undefined } | null> {
    const within = (r: RegionDescriptor | undefined) => !!r && keyInRegion(key, r) && keyInRegion(range.start, r) && (!r.endKey || r.endKey.length === 0 || Buffer.compare(range.end, r.endKey) <= 0)
    if (!within(this.locate(range.start))) return null
    const rr = this.leases.beginRangeRead(range.start.toString('latin1'), range.end.toString('latin1'))
    let res: KvResponse
    let region: RegionDescriptor
    try {
      ;({ res, region } = await this.request(range.start, { op: 'scan', scan: { start: range.start, end: range.end, limit: RANGE_SCAN_LIMIT }, leaseMs: this.leaseMs, leaseHolder: this.holder }))
    } catch (err) {
      this.leases.abortRangeRead(rr)
      throw err
    }
    const entries = res.entries ?? []
    if (entries.length >= RANGE_SCAN_LIMIT || !within(region)) {
      this.leases.endRangeRead(rr, [], 0, RANGE_TOO_LARGE_RETRY_MS) // not the whole range: key by key for a while
      return null
    }
    const k = key.toString('latin1')
    let found: { value: Buffer; version: number } | undefined
    const present = entries.map((e) => {
      const ek = e.key.toString('latin1')
      const value = e.value ?? Buffer.alloc(0)
      if (ek === k) found = { value, version: e.version }
      return { key: ek, value, version: e.version }
    })
    this.leases.endRangeRead(rr, present, res.leaseMs ?? 0)
    this.cache.set(k, found?.value, found?.version ?? 0)
    return { value: found?.value }
  }

  async getVersioned(key: Buffer, o?: ReadOptions): Promise<{ value: Buffer; version: number } | undefined> {
    const lease = this.leaseFor([key], o)
    let res: KvResponse
    try {
      res = (await this.request(key, { op: 'get', get: { key }, ...lease?.op })).res
    } catch (err) {
      if (lease) this.leases.abortRead(lease.read)
      throw err
    }
    const v = res.found ? { value: res.value ?? Buffer.alloc(0), version: res.version } : undefined
    const k = key.toString('latin1')
    if (lease) this.leases.endRead(lease.read, [{ key: k, value: v?.value }], res.leaseMs ?? 0)
    this.cache.set(k, v?.value, v?.version ?? 0)
    return v
  }

  /** One get_many request per region (in parallel), each answered after one read barrier
   * (docs/protocol.md). Against a node too old to know get_many, one get per key instead. */
  async getMany(keys: readonly Buffer[], o?: ReadOptions): Promise<(Buffer | undefined)[]> {
    if (keys.length > LIMITS.getManyKeys) throw new KvError('TOO_LARGE', `getMany of ${keys.length} keys (at most ${LIMITS.getManyKeys})`)
    if (keys.length === 0) return []
    const out: (Buffer | undefined)[] = new Array(keys.length)
    let todo = keys.map((key, i) => ({ key, i }))
    if (o?.lease) {
      // What a lease still covers is answered here; only the rest is asked for.
      todo = todo.filter((t) => {
        const k = t.key.toString('latin1')
        const range = this.leaseMs > 0 ? o.rangeOf?.(t.key) : undefined
        const hit = this.leases.lookup(k) ?? (range ? this.fromRange(k, range.start.toString('latin1')) : null)
        if (hit === null || hit === 'busy') return true
        out[t.i] = hit.value
        return false
      })
      if (todo.length === 0) return out
    }
    if (todo.length === 1 || this.noGetMany) {
      const vals = await Promise.all(todo.map((t) => this.get(t.key, o)))
      todo.forEach((t, j) => (out[t.i] = vals[j]))
      return out
    }
    // Keys grouped by the region the map says holds them; a group whose region changed under
    // it (a split, a stale map) is grouped again from the refreshed map.
    for (let round = 0; todo.length > 0; round++) {
      const groups = new Map<RegionDescriptor | undefined, { key: Buffer; i: number }[]>()
      for (const t of todo) {
        const r = this.locate(t.key)
        let g = groups.get(r)
        if (!g) groups.set(r, (g = []))
        g.push(t)
      }
      const again: { key: Buffer; i: number }[] = []
      await Promise.all(
        [...groups.values()].map(async (g) => {
          const lease = this.leaseFor(
            g.map((t) => t.key),
            o,
          )
          try {
            const { res } = await this.request(g[0]!.key, { op: 'getMany', getMany: { keys: g.map((t) => t.key) }, ...lease?.op }, round < 8 ? g.map((t) => t.key) : undefined)
            const entries = res.entries ?? []
            if (entries.length !== g.length) throw new KvError('IO', `get_many of ${g.length} keys answered with ${entries.length}`)
            const answers = g.map((t, j) => {
              const e = entries[j]!
              const v = e.version > 0 ? e.value ?? Buffer.alloc(0) : undefined
              const k = t.key.toString('latin1')
              this.cache.set(k, v, v ? e.version : 0)
              out[t.i] = v
              return { key: k, value: v }
            })
            if (lease) this.leases.endRead(lease.read, answers, res.leaseMs ?? 0)
          } catch (err) {
            if (lease) this.leases.abortRead(lease.read)
            if (err instanceof SpansRegions) return void again.push(...g)
            if (err instanceof KvError && err.code === 'IO' && err.message.endsWith(`${ErrorCode.INVALID}: ${NO_OPERATION}`)) {
              // A node from before get_many: a request without an operation to it.
              this.noGetMany = true
              this.opts.logger.info('a node does not know get_many; reading one key per request')
              const vals = await Promise.all(g.map((t) => this.get(t.key, o)))
              g.forEach((t, j) => (out[t.i] = vals[j]))
              return
            }
            throw err
          }
        }),
      )
      todo = again
    }
    return out
  }

  async scan(range: Range): Promise<Entry[]> {
    return (await this.scanVersioned(range, range.limit ?? 0)).entries.map(({ key, value }) => ({ key, value }))
  }

  /** Scans [start, end) across regions, in order; `checks` are what a transaction validates. */
  async scanVersioned(range: Range, limit: number): Promise<{ entries: { key: Buffer; value: Buffer; version: number }[]; checks: ScanCheck[] }> {
    const out: { key: Buffer; value: Buffer; version: number }[] = []
    const checks: ScanCheck[] = []
    let start = range.start
    for (let hops = 0; hops < 10_000; hops++) {
      const want = limit > 0 ? limit - out.length : 0
      const { res, region } = await this.request(start, { op: 'scan', scan: { start, end: range.end, limit: want } })
      const got = res.entries ?? []
      const regionEnd = region.endKey && region.endKey.length > 0 ? region.endKey : null
      // The part of the range this region answered for.
      const end = regionEnd && Buffer.compare(regionEnd, range.end) < 0 ? regionEnd : range.end
      checks.push({ start, end, limit: want, seen: got.map((e) => ({ key: e.key, version: e.version })) })
      out.push(...got.map((e) => ({ key: e.key, value: e.value ?? Buffer.alloc(0), version: e.version })))
      if (limit > 0 && out.length >= limit) break
      if (!regionEnd || Buffer.compare(regionEnd, range.end) >= 0) break
      start = regionEnd
    }
    return { entries: out, checks }
  }

  async txn<T>(fn: (tx: Txn) => Promise<T>, opts: TxnOptions = {}): Promise<T> {
    const attempts = opts.maxAttempts ?? LIMITS.defaultAttempts
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new KvError('CLOSED', 'store is closed')
      // The first attempt may read from the cache; a re-run after a conflict reads afresh.
      const tx = new ClusterTxn(this, attempt === 1)
      let result: T
      try {
        result = await fn(tx)
      } catch (err) {
        // An error decided on cached reads (EEXIST, ENOENT, "volume in use") is no answer: they
        // were never validated. Decide again on fresh reads.
        if (!tx.usedCache) throw err
        tx.forgetReads()
        continue
      }
      try {
        await tx.commit()
        return result
      } catch (err) {
        if (!(err instanceof KvError) || err.code !== 'CONFLICT') throw err
        tx.forgetReads()
        this.conflicts++
        metrics.kvConflicts.inc()
        if (attempt >= attempts) throw new KvError('CONFLICT', `transaction conflicted ${attempts} times`)
        await sleep(Math.min(50, attempt * Math.random() * 3))
      }
    }
  }

  /** Sends a commit for the region holding every key of it. On success the written keys enter
   * the read cache at the commit's index (their version); on any failure they leave it. */
  async commit(body: { reads: { key: Buffer; version: number }[]; scans: ScanCheck[]; writes: { key: Buffer; value?: Buffer; delete: boolean }[]; patches?: { key: Buffer; ranges: readonly PatchRange[] }[] }): Promise<void> {
    if (body.patches?.length && this.noPatchCommit) body = await this.mergeHere(body)
    const patches = body.patches ?? []
    const first = body.writes[0]?.key ?? patches[0]?.key ?? body.reads[0]?.key ?? body.scans[0]?.start
    if (!first) return
    const r = this.locate(first)
    const all = [...body.writes.map((w) => w.key), ...patches.map((p) => p.key), ...body.reads.map((x) => x.key), ...body.scans.map((s) => s.start)]
    if (r && all.some((k) => !keyInRegion(k, r))) throw new KvError('TOO_LARGE', 'a transaction over several regions is not supported yet (docs/kv.md)')
    const txnId = this.nextTxnId()
    let index = 0
    // Our own leases on what we write are ours to drop: the leader revokes only others'. File
    // data blocks are never leased (docs/metadata-leases.md, "No leases on file data").
    const leasedWrites = body.writes.filter((w) => !isBlockKey(w.key))
    const written = leasedWrites.map((w) => w.key.toString('latin1'))
    this.leases.beginWrite(written)
    const sentAt = this.leases.time()
    let leaseMs = 0
    try {
      const commit = { reads: body.reads, scans: body.scans, writes: body.writes.map((w) => ({ key: w.key, value: w.value ?? Buffer.alloc(0), delete: w.delete })), txnId }
      // Patches ride their own op (docs/protocol.md): a node that predates them refuses it.
      const req = patches.length > 0 ? { op: 'patchCommit' as const, patchCommit: { ...commit, patches: patches.map((p) => ({ key: p.key, ranges: [...p.ranges] })) } } : { op: 'commit' as const, commit }
      let res: KvResponse
      try {
        ;({ res } = await this.request(first, { ...req, leaseHolder: this.holder, leaseMs: this.leaseMs }))
      } catch (err) {
        if (!(patches.length > 0 && err instanceof KvError && err.code === 'IO' && err.message.endsWith(`${ErrorCode.INVALID}: ${NO_OPERATION}`))) throw err
        // A node from before patch_commit (nothing was written): merge here, as it used to be.
        this.noPatchCommit = true
        this.opts.logger.info('a node does not know patch_commit; reading blocks to merge partial writes here')
        return await this.commit(await this.mergeHere(body))
      }
      index = res.index
      leaseMs = res.leaseMs ?? 0
    } finally {
      this.leases.endWrite(written, index > 0 ? { values: leasedWrites.map((w) => (w.delete ? undefined : w.value ?? Buffer.alloc(0))), leaseMs, sentAt, index } : undefined)
      for (const w of body.writes) {
        const k = w.key.toString('latin1')
        if (index > 0) this.cache.set(k, w.delete ? undefined : w.value ?? Buffer.alloc(0), w.delete ? 0 : index)
        else this.cache.drop(k)
      }
      // The merged blocks were never here.
      for (const p of patches) this.cache.drop(p.key.toString('latin1'))
    }
  }

  /** The commit with its patches merged here: each block read (its version joins the reads)
   * and written whole. For nodes that predate patch_commit. */
  private async mergeHere(body: { reads: { key: Buffer; version: number }[]; scans: ScanCheck[]; writes: { key: Buffer; value?: Buffer; delete: boolean }[]; patches?: { key: Buffer; ranges: readonly PatchRange[] }[] }): Promise<typeof body> {
    const reads = [...body.reads]
    const writes = [...body.writes]
    for (const p of body.patches ?? []) {
      const v = await this.getVersioned(p.key)
      try {
        writes.push({ key: p.key, value: mergePatch(v?.value, p.ranges), delete: false })
      } catch (err) {
        if (err instanceof PatchError) throw new KvError('IO', `key ${p.key.toString('hex')}: ${err.message}`)
        throw err
      }
      reads.push({ key: p.key, version: v?.version ?? 0 })
    }
    return { reads, scans: body.scans, writes }
  }

  private nextTxnId(): Buffer {
    const id = Buffer.allocUnsafe(16)
    this.txnPrefix.copy(id, 0)
    id.writeDoubleBE(++this.txnSeq, 8)
    return id
  }

  /** Every acknowledged commit is already durable on a quorum of replicas. */
  async sync(): Promise<void> {
    if (this.closed) throw new KvError('CLOSED', 'store is closed')
  }

  async usage(): Promise<{ usedBytes: number; freeBytes: number; totalBytes: number }> {
    await this.refresh().catch(() => undefined)
    const { capacityBytes, freeBytes } = this.capacity
    return { usedBytes: Math.max(0, capacityBytes - freeBytes), freeBytes, totalBytes: capacityBytes }
  }

  async close(): Promise<void> {
    this.closed = true
    this.stopPush()
  }
}

/** A transaction's reads (with versions), scans and buffered writes. */
class ClusterTxn implements Txn {
  private readonly reads = new Map<string, { key: Buffer; version: number; value: Buffer | undefined; cached: boolean }>()
  private readonly scans: ScanCheck[] = []
  private readonly writes = new Map<string, { key: Buffer; value: Buffer | null }>()
  /** Block patches the leader merges (docs/kv.md, "Partial block writes"). */
  private readonly patches = new Map<string, { key: Buffer; ranges: readonly PatchRange[] }>()
  private writeBytes = 0

  constructor(private readonly kv: ClusterKV, private readonly useCache: boolean) {}

  async get(key: Buffer): Promise<Buffer | undefined> {
    const k = key.toString('latin1')
    if (this.patches.has(k)) throw new Error(`get of key ${key.toString('hex')}, patched in this transaction`)
    const w = this.writes.get(k)
    if (w) return w.value ?? undefined
    const r = this.reads.get(k)
    if (r) return r.value
    const c = this.useCache ? this.kv.cache.get(k) : undefined
    if (c) {
      this.kv.cacheHits++
      this.reads.set(k, { key: Buffer.from(key), version: c.version, value: c.value, cached: true })
      return c.value
    }
    const v = await this.kv.getVersioned(key)
    this.reads.set(k, { key: Buffer.from(key), version: v?.version ?? 0, value: v?.value, cached: false })
    return v?.value
  }

  /** Whether any read of this transaction came from the cache (unvalidated until commit). */
  get usedCache(): boolean {
    for (const r of this.reads.values()) if (r.cached) return true
    return false
  }

  /** After a conflict: what this transaction read may be stale, so the cache forgets it. */
  forgetReads(): void {
    for (const k of this.reads.keys()) this.kv.cache.drop(k)
  }

  async scan(range: Range): Promise<Entry[]> {
    const limit = range.limit ?? 0
    let own = 0
    for (const w of this.writes.values()) if (Buffer.compare(w.key, range.start) >= 0 && Buffer.compare(w.key, range.end) < 0) own++
    // Ask for enough that our own deletes cannot leave the answer short.
    const { entries, checks } = await this.kv.scanVersioned(range, limit > 0 ? limit + own : 0)
    this.scans.push(...checks)
    const merged = new Map<string, Entry>()
    for (const e of entries) merged.set(e.key.toString('latin1'), { key: e.key, value: e.value })
    for (const [k, w] of this.writes) {
      if (Buffer.compare(w.key, range.start) < 0 || Buffer.compare(w.key, range.end) >= 0) continue
      if (w.value === null) merged.delete(k)
      else merged.set(k, { key: w.key, value: w.value })
    }
    const out = [...merged.values()].sort((a, b) => Buffer.compare(a.key, b.key))
    return limit > 0 ? out.slice(0, limit) : out
  }

  put(key: Buffer, value: Buffer): void {
    if (key.length > LIMITS.keyBytes) throw new KvError('TOO_LARGE', `key of ${key.length} bytes`)
    if (value.length > LIMITS.valueBytes) throw new KvError('TOO_LARGE', `value of ${value.length} bytes`)
    this.writeBytes += key.length + value.length
    if (this.writeBytes > LIMITS.txnWriteBytes) throw new KvError('TOO_LARGE', 'transaction too large')
    // Kept, not copied (the Txn contract, types.ts): a block write passes through here.
    this.writes.set(key.toString('latin1'), { key, value })
  }

  del(key: Buffer): void {
    this.writes.set(key.toString('latin1'), { key, value: null })
  }

  patch(key: Buffer, ranges: readonly PatchRange[]): void {
    const k = key.toString('latin1')
    if (this.writes.has(k) || this.reads.has(k) || this.patches.has(k)) throw new Error(`patch of key ${key.toString('hex')}, already read or written in this transaction`)
    if (key.length > LIMITS.keyBytes) throw new KvError('TOO_LARGE', `key of ${key.length} bytes`)
    try {
      checkPatch(ranges)
    } catch (err) {
      if (err instanceof PatchError) throw new KvError('IO', `key ${key.toString('hex')}: ${err.message}`)
      throw err
    }
    for (const r of ranges) this.writeBytes += r.data.length
    this.writeBytes += key.length
    if (this.writeBytes > LIMITS.txnWriteBytes) throw new KvError('TOO_LARGE', 'transaction too large')
    this.patches.set(k, { key, ranges })
  }

  async commit(): Promise<void> {
    const reads = [...this.reads.values()].map(({ key, version }) => ({ key, version }))
    // A read-only transaction of one fresh read (or one scan) is a single linearizable read
    // already; a cached read is confirmed by reading it again.
    if (this.writes.size === 0 && this.patches.size === 0 && reads.length + this.scans.length <= 1) {
      const only = [...this.reads.values()][0]
      if (only?.cached && ((await this.kv.getVersioned(only.key))?.version ?? 0) !== only.version) throw new KvError('CONFLICT', 'a cached read was stale')
      return
    }
    const writes = [...this.writes.values()].map((w) => ({ key: w.key, value: w.value ?? undefined, delete: w.value === null }))
    await this.kv.commit({ reads, scans: this.scans, writes, patches: [...this.patches.values()] })
  }
}
