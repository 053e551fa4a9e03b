// RpcClients: one per process. Caches one grpc channel per address and, on it, at most one
// Kv.Session (kv-session.ts) and one RaftTransport.Stream (raft-sender.ts). Every call carries
// the cluster secret. Unary calls resolve with the response (whose `error` field carries an
// application error) or reject with RpcError named by the gRPC status.
import * as grpc from '@grpc/grpc-js'
import { logger as makeLogger, type Logger } from '../util'
import { decode, encode } from './codec'
import { RpcError, toRpcError } from './errors'
import { KvSession } from './kv-session'
import type * as M from './messages'
import { called, responseCode } from './metrics'
import { RaftSender } from './raft-sender'
import { DEFAULT_MAX_MESSAGE_BYTES, FLOW_CONTROL_WINDOW } from './server'
import { KV, MASTER, type Method, NODE_ADMIN, RAFT, SECRET_HEADER, WAYPOINT } from './services'

export const DEFAULT_UNARY_TIMEOUT_MS = 5000
export const DEFAULT_KV_TIMEOUT_MS = 10_000
export const DEFAULT_KV_MAX_IN_FLIGHT = 256
export const DEFAULT_KV_MAX_QUEUED = 4096
export const DEFAULT_RAFT_MAX_QUEUED_BYTES = 64 * 1024 * 1024

export interface CallOptions {
  /** Deadline of this call (default 5 s for unary calls, 10 s for kv calls). */
  timeoutMs?: number
}

export interface RpcClientsOptions {
  secret: string
  logger?: Logger
  /** Largest message sent or received (default 64 MiB). */
  maxMessageBytes?: number
  /** Maps the address asked for to the one dialled (a fault-injecting proxy in tests). Default: env POLYFS_DIAL_MAP. */
  dial?: (address: string) => string
  /** Kv.Session calls in flight per address (default 256). */
  kvMaxInFlight?: number
  /** Kv.Session calls waiting for a slot per address (default 4096). */
  kvMaxQueued?: number
  /** RaftTransport.Stream bytes buffered per address (default 64 MiB). */
  raftMaxQueuedBytes?: number
}

export interface WaypointClient {
  getMaster(req: M.Init<M.GetMasterRequest>, o?: CallOptions): Promise<M.GetMasterResponse>
  setMaster(req: M.Init<M.SetMasterRequest>, o?: CallOptions): Promise<M.SetMasterResponse>
  claim(req: M.Init<M.ClaimRequest>, o?: CallOptions): Promise<M.ClaimResponse>
}

export interface MasterClient {
  join(req: M.Init<M.JoinRequest>, o?: CallOptions): Promise<M.JoinResponse>
  heartbeat(req: M.Init<M.HeartbeatRequest>, o?: CallOptions): Promise<M.HeartbeatResponse>
  getClusterMap(req: M.Init<M.GetClusterMapRequest>, o?: CallOptions): Promise<M.GetClusterMapResponse>
}

export interface AdminClient {
  masterChanged(req: M.Init<M.MasterChangedRequest>, o?: CallOptions): Promise<M.MasterChangedResponse>
  changeReplicas(req: M.Init<M.ChangeReplicasRequest>, o?: CallOptions): Promise<M.ChangeReplicasResponse>
  status(req: M.Init<M.NodeStatusRequest>, o?: CallOptions): Promise<M.NodeStatusResponse>
}

/** Kv over the address's one multiplexed Kv.Session; the id is assigned here. */
export interface KvClient {
  call(req: Omit<M.Init<M.KvRequest>, 'id'>, o?: CallOptions): Promise<M.KvResponse>
  /** Sends a request nothing answers (a release), with id 0, on the open stream; dropped if
   * there is none (the lease then runs out instead). */
  send(req: Omit<M.Init<M.KvRequest>, 'id'>): void
}

/** A message a node pushed on a Kv.Session (id 0: a revoke), and the address it came from. */
export type KvPushListener = (res: M.KvResponse, address: string) => void

/** Kv.Call: one request per call (tools, tests). */
export interface KvUnaryClient {
  call(req: M.Init<M.KvRequest>, o?: CallOptions): Promise<M.KvResponse>
}

/** Fire-and-forget Raft batches to one address. */
export interface RaftClient {
  send(batch: M.Init<M.RaftBatch>): void
  /** Bytes handed to the stream and not yet written out. */
  readonly queuedBytes: number
  /** Batches dropped so far (backoff after a failure, byte bound, encoding bug). */
  readonly dropped: number
}

const identity = (b: Buffer): Buffer => b

export class RpcClients {
  private readonly secret: string
  private readonly log: Logger
  private readonly dial: (address: string) => string
  private readonly channelOptions: grpc.ChannelOptions
  private readonly channels = new Map<string, grpc.Client>()
  private readonly sessions = new Map<string, KvSession>()
  private readonly senders = new Map<string, RaftSender>()
  private readonly pushListeners = new Set<KvPushListener>()
  private closed = false

  constructor(private readonly opts: RpcClientsOptions) {
    if (!opts.secret) throw new Error('RpcClients: a secret is required')
    this.secret = opts.secret
    this.log = opts.logger ?? makeLogger('rpc')
    this.dial = opts.dial ?? dialFromEnv()
    const maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.channelOptions = {
      'grpc.max_receive_message_length': maxBytes,
      'grpc.max_send_message_length': maxBytes,
      // Ping while streams are open: a peer that vanished (no RST) fails the stream in ~15 s.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      // A restarted peer is reachable again within 2 s, not grpc's default 2 minutes.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2_000,
      // Connections of this RpcClients only: several nodes in one test process stay independent.
      'grpc.use_local_subchannel_pool': 1,
      'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
    }
  }

  waypoint(address: string): WaypointClient {
    return {
      getMaster: (req, o) => this.unary(address, WAYPOINT.getMaster, req, o),
      setMaster: (req, o) => this.unary(address, WAYPOINT.setMaster, req, o),
      claim: (req, o) => this.unary(address, WAYPOINT.claim, req, o),
    }
  }

  master(address: string): MasterClient {
    return {
      join: (req, o) => this.unary(address, MASTER.join, req, o),
      heartbeat: (req, o) => this.unary(address, MASTER.heartbeat, req, o),
      getClusterMap: (req, o) => this.unary(address, MASTER.getClusterMap, req, o),
    }
  }

  admin(address: string): AdminClient {
    return {
      masterChanged: (req, o) => this.unary(address, NODE_ADMIN.masterChanged, req, o),
      changeReplicas: (req, o) => this.unary(address, NODE_ADMIN.changeReplicas, req, o),
      status: (req, o) => this.unary(address, NODE_ADMIN.status, req, o),
    }
  }

  kv(address: string): KvClient {
    return {
      call: (req, o) => (this.closed ? Promise.reject(closedError()) : this.session(address).call(req, o?.timeoutMs ?? DEFAULT_KV_TIMEOUT_MS)),
      send: (req) => {
        if (!this.closed) this.sessions.get(address)?.send(req)
      },
    }
  }

  /** Calls `fn` for every message pushed on any Kv.Session of these clients; returns the
   * function that stops it. */
  onKvPush(fn: KvPushListener): () => void {
    this.pushListeners.add(fn)
    return () => this.pushListeners.delete(fn)
  }

  kvUnary(address: string): KvUnaryClient {
    return { call: (req, o) => this.unary(address, KV.call, req, o) }
  }

  raft(address: string): RaftClient {
    if (this.closed) return { send: () => undefined, queuedBytes: 0, dropped: 0 }
    const sender = this.sender(address)
    return {
      send: (batch) => sender.send(batch),
      get queuedBytes() {
        return sender.queuedBytes
      },
      get dropped() {
        return sender.dropped
      },
    }
  }

  /** Rejects pending kv calls (CANCELLED), cancels every stream, closes every channel. */
  close(): void {
    this.closed = true
    for (const s of this.sessions.values()) s.close()
    for (const s of this.senders.values()) s.close()
    for (const c of this.channels.values()) c.close()
    this.sessions.clear()
    this.senders.clear()
    this.channels.clear()
  }

  // ---- internals ---------------------------------------------------------------------------------

  private channel(address: string): grpc.Client {
    if (this.closed) throw closedError()
    let c = this.channels.get(address)
    if (!c) {
      c = new grpc.Client(this.dial(address), grpc.credentials.createInsecure(), this.channelOptions)
      this.channels.set(address, c)
    }
    return c
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata()
    md.set(SECRET_HEADER, this.secret)
    return md
  }

  private unary<Req, Res>(address: string, m: Method, req: Req, o?: CallOptions): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      let body: Buffer
      try {
        body = encode(m.request, req)
      } catch (err) {
        return reject(new RpcError('INVALID_ARGUMENT', (err as Error).message)) // the caller's bug, never sent
      }
      const mm = called(m)
      const t0 = performance.now()
      const deadline = Date.now() + (o?.timeoutMs ?? DEFAULT_UNARY_TIMEOUT_MS)
      this.channel(address).makeUnaryRequest(m.path, identity, identity, body, this.metadata(), { deadline }, (err, res) => {
        if (err) {
          const e = toRpcError(err)
          mm.done(t0, e.code)
          return reject(e)
        }
        let decoded: Res
        try {
          decoded = decode<Res>(m.response, res!)
        } catch (e) {
          mm.done(t0, 'INTERNAL')
          return reject(new RpcError('INTERNAL', `${address} answered: ${(e as Error).message}`))
        }
        mm.done(t0, responseCode(decoded))
        resolve(decoded)
      })
    })
  }

  private session(address: string): KvSession {
    let s = this.sessions.get(address)
    if (!s) {
      const open = () => this.channel(address).makeBidiStreamRequest(KV.session.path, identity, identity, this.metadata())
      s = new KvSession(address, open, {
        maxInFlight: this.opts.kvMaxInFlight ?? DEFAULT_KV_MAX_IN_FLIGHT,
        maxQueued: this.opts.kvMaxQueued ?? DEFAULT_KV_MAX_QUEUED,
        defaultTimeoutMs: DEFAULT_KV_TIMEOUT_MS,
        log: this.log,
        onPush: (res) => {
          for (const fn of this.pushListeners) fn(res, address)
        },
      })
      this.sessions.set(address, s)
    }
    return s
  }

  private sender(address: string): RaftSender {
    let s = this.senders.get(address)
    if (!s) {
      const open = (done: (err: grpc.ServiceError | null) => void) =>
        this.channel(address).makeClientStreamRequest(RAFT.stream.path, identity, identity, this.metadata(), {}, (err) => done(err ?? null))
      s = new RaftSender(address, open, this.opts.raftMaxQueuedBytes ?? DEFAULT_RAFT_MAX_QUEUED_BYTES, this.log)
      this.senders.set(address, s)
    }
    return s
  }
}

function closedError(): RpcError {
  return new RpcError('CANCELLED', 'rpc clients closed')
}

/** The dial hook from env POLYFS_DIAL_MAP ({"host:port": "host:port"}), or identity. */
export function dialFromEnv(env: NodeJS.ProcessEnv = process.env): (address: string) => string {
  const raw = env.POLYFS_DIAL_MAP
  if (!raw) return (a) => a
  let map: unknown
  try {
    map = JSON.parse(raw)
  } catch (err) {
    throw new Error(`POLYFS_DIAL_MAP is not JSON: ${(err as Error).message}`)
  }
  if (!map || typeof map !== 'object' || Array.isArray(map) || Object.values(map).some((v) => typeof v !== 'string')) {
    throw new Error('POLYFS_DIAL_MAP must be a JSON object of "host:port": "host:port"')
  }
  const m = map as Record<string, string>
  return (a) => m[a] ?? a
}
