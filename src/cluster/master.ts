// The master group's state machine (group 0): the cluster index. Nodes, regions, id counters
// and settings, changed only by MasterCommands committed in the master Raft log
// (proto/polyfs/v1/master.proto). Small by design: it is kept whole in memory and written whole
// (as a MasterSnapshot) under key `M` with every applied batch.
import type { ClassicLevel } from 'classic-level'
import type { Entry, Snapshot } from '../raft'
import { decode, encode, newerEpoch, type MasterCommand, type MasterSnapshot, type NodeInfo, type RegionDescriptor, type Settings } from '../rpc'
import { rawBatch } from '../util/leveldb'
import type { GroupStateMachine } from './host'
import { encodeMeta, metaKey } from './region'

type Db = ClassicLevel<Buffer, Buffer>

export const MASTER_GROUP = 0
const STATE_KEY = Buffer.from('M')

export const DEFAULT_SETTINGS: Settings = {
  dataReplicas: 3,
  maxMasters: 5,
  memberReplaceAfterMs: 30 * 60_000,
  downAfterMs: 10_000,
}

export type MasterResult = { ok: true; nodeId?: number; index: number } | { ok: false; message: string }

function emptyState(): MasterSnapshot {
  return { clusterId: '', nextNodeId: 1, nextRegionId: 1, nodes: [], regions: [], settings: { ...DEFAULT_SETTINGS }, joinTokens: {}, createdMs: 0 }
}

export class MasterState implements GroupStateMachine {
  appliedIndex = 0
  state: MasterSnapshot = emptyState()
  /** Conf state of the master group itself, as of appliedIndex. */
  members: { voters: number[]; learners: number[] } = { voters: [], learners: [] }

  constructor(private readonly db: Db) {}

  /** Loads the persisted state (none: a fresh replica). */
  async load(): Promise<void> {
    const raw = await this.db.get(STATE_KEY)
    if (raw === undefined) return
    const applied = raw.readBigUInt64BE(0)
    this.appliedIndex = Number(applied)
    this.state = normalize(decode<MasterSnapshot>('MasterSnapshot', raw.subarray(8)))
  }

  node(id: number): NodeInfo | undefined {
    return this.state.nodes.find((n) => n.nodeId === id)
  }

  region(id: number): RegionDescriptor | undefined {
    return this.state.regions.find((r) => r.id === id)
  }

  get settings(): Settings {
    return mergeSettings(this.state.settings)
  }

  async applyEntries(entries: readonly Entry[], confAfter: (e: Entry) => { voters: number[]; learners: number[] }): Promise<unknown[]> {
    const results: unknown[] = []
    for (const e of entries) {
      if (e.type === 'confChange') {
        this.members = confAfter(e)
        results.push({ ok: true, index: e.index })
      } else if (e.data.length === 0) {
        results.push({ ok: true, index: e.index })
      } else {
        results.push(this.applyCommand(e))
      }
      this.appliedIndex = e.index
    }
    await this.persist()
    return results
  }

  private applyCommand(e: Entry): MasterResult {
    let c: MasterCommand
    try {
      c = decode<MasterCommand>('MasterCommand', e.data)
    } catch (err) {
      return { ok: false, message: `undecodable master command at ${e.index}: ${(err as Error).message}` }
    }
    const s = this.state
    switch (c.cmd) {
      case 'bootstrap': {
        const b = c.bootstrap
        if (!b || s.clusterId) return { ok: false, message: 'cluster already bootstrapped' }
        s.clusterId = b.clusterId
        s.createdMs = b.createdMs
        if (b.firstNode) s.nodes.push({ ...b.firstNode })
        if (b.firstRegion) s.regions.push({ ...b.firstRegion })
        s.settings = mergeSettings(b.settings)
        s.nextNodeId = Math.max(s.nextNodeId, (b.firstNode?.nodeId ?? 0) + 1)
        s.nextRegionId = Math.max(s.nextRegionId, (b.firstRegion?.id ?? 0) + 1)
        return { ok: true, index: e.index, nodeId: b.firstNode?.nodeId }
      }
      case 'addNode': {
        const a = c.addNode
        if (!a?.node) return { ok: false, message: 'addNode without a node' }
        const known = a.joinToken ? s.joinTokens[a.joinToken] : undefined
        if (known !== undefined) {
          const n = this.node(known)
          if (n) n.address = a.node.address
          return { ok: true, index: e.index, nodeId: known }
        }
        const id = s.nextNodeId++
        s.nodes.push({ ...a.node, nodeId: id, state: 'NODE_UP' })
        if (a.joinToken) s.joinTokens[a.joinToken] = id
        return { ok: true, index: e.index, nodeId: id }
      }
      case 'updateNode': {
        const u = c.updateNode?.node
        const n = u && this.node(u.nodeId)
        if (!u || !n) return { ok: false, message: 'updateNode of an unknown node' }
        Object.assign(n, u)
        return { ok: true, index: e.index }
      }
      case 'putRegion': {
        const r = c.putRegion?.region
        if (!r) return { ok: false, message: 'putRegion without a region' }
        const i = s.regions.findIndex((x) => x.id === r.id)
        if (i < 0) {
          s.regions.push({ ...r })
          s.nextRegionId = Math.max(s.nextRegionId, r.id + 1)
        } else if (newerEpoch(r, s.regions[i] as RegionDescriptor) || (s.regions[i] as RegionDescriptor).leader !== r.leader) {
          s.regions[i] = { ...r }
        }
        return { ok: true, index: e.index }
      }
      case 'putSettings':
        s.settings = mergeSettings(c.putSettings?.settings)
        return { ok: true, index: e.index }
      default:
        return { ok: false, message: `unknown master command ${String(c.cmd)}` }
    }
  }

  private async persist(): Promise<void> {
    const body = encode('MasterSnapshot', this.state)
    const value = Buffer.allocUnsafe(8 + body.length)
    value.writeBigUInt64BE(BigInt(this.appliedIndex), 0)
    body.copy(value, 8)
    const region: RegionDescriptor = { id: MASTER_GROUP, startKey: Buffer.alloc(0), endKey: Buffer.alloc(0), epoch: { confVer: 0, version: 0 }, voters: this.members.voters, learners: this.members.learners, leader: 0 }
    await rawBatch(
      this.db,
      [
        { type: 'put', key: STATE_KEY, value },
        { type: 'put', key: metaKey(MASTER_GROUP), value: encodeMeta({ state: 'normal', applied: this.appliedIndex, region }) },
      ],
      false,
    )
  }

  async snapshotData(): Promise<Uint8Array> {
    return encode('MasterSnapshot', this.state)
  }

  async restore(snap: Snapshot): Promise<void> {
    this.state = snap.data.length === 0 ? emptyState() : normalize(decode<MasterSnapshot>('MasterSnapshot', Buffer.from(snap.data)))
    this.appliedIndex = snap.meta.index
    this.members = { voters: [...snap.meta.confState.voters], learners: [...snap.meta.confState.learners] }
    await this.persist()
  }
}

/** Settings with every unset (zero) field at its default: proto3 cannot tell 0 from unset. */
export function mergeSettings(s: Partial<Settings> | undefined): Settings {
  const out = { ...DEFAULT_SETTINGS }
  for (const k of Object.keys(out) as (keyof Settings)[]) {
    const v = s?.[k]
    if (typeof v === 'number' && v > 0) out[k] = v
  }
  return out
}

function normalize(s: MasterSnapshot): MasterSnapshot {
  return {
    ...emptyState(),
    ...s,
    nodes: s.nodes ?? [],
    regions: s.regions ?? [],
    joinTokens: s.joinTokens ?? {},
    settings: mergeSettings(s.settings),
  }
}

export function encodeMasterCommand(c: MasterCommand): Buffer {
  return encode('MasterCommand', c)
}
