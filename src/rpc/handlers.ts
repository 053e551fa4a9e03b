// The handler interfaces a role implements to serve a PolyFS service, and what the server does
// with a handler's failure. Kept apart from server.ts so server-streams.ts can share them.
import * as grpc from '@grpc/grpc-js'
import type { Logger } from '../util'
import { RpcError } from './errors'
import type * as M from './messages'

/** A gRPC status to answer with. */
export type Status = { code: grpc.status; details: string }

// Handlers receive complete decoded requests and may return partial responses (Init<T>):
// absent fields are sent as their defaults.

export interface WaypointHandler {
  getMaster(req: M.GetMasterRequest): Promise<M.Init<M.GetMasterResponse>>
  setMaster(req: M.SetMasterRequest): Promise<M.Init<M.SetMasterResponse>>
  claim(req: M.ClaimRequest): Promise<M.Init<M.ClaimResponse>>
}

export interface MasterHandler {
  join(req: M.JoinRequest): Promise<M.Init<M.JoinResponse>>
  heartbeat(req: M.HeartbeatRequest): Promise<M.Init<M.HeartbeatResponse>>
  getClusterMap(req: M.GetClusterMapRequest): Promise<M.Init<M.GetClusterMapResponse>>
}

export interface NodeAdminHandler {
  masterChanged(req: M.MasterChangedRequest): Promise<M.Init<M.MasterChangedResponse>>
  changeReplicas(req: M.ChangeReplicasRequest): Promise<M.Init<M.ChangeReplicasResponse>>
  status(req: M.NodeStatusRequest): Promise<M.Init<M.NodeStatusResponse>>
}

/** One Kv.Session stream, as its handler sees it (Kv.Call has none). */
export interface KvStream {
  /** The stream can still carry a message to the client. */
  alive(): boolean
  /** Sends a message the client did not ask for (a revoke: id 0). */
  push(res: M.Init<M.KvResponse>): void
  /** The handler's own state for this stream (lease holders), dropped with it. */
  readonly state: Map<unknown, unknown>
}

/** Serves Kv.Session and Kv.Call. The response's id is always set to the request's. A
 * `release` (sent with id 0) gets no response: its result is ignored. */
export interface KvHandler {
  handle(req: M.KvRequest, stream?: KvStream): Promise<M.Init<M.KvResponse>>
}

/** Every batch received on any RaftTransport.Stream, in arrival order per stream. */
export interface RaftHandler {
  onBatch(batch: M.RaftBatch): void
}

/** Runs fn, turning a synchronous throw into a rejection. */
export function invoke<T>(fn: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve) => resolve(fn()))
}

/** The status for a handler that threw: an RpcError's own, else INTERNAL (logged). */
export function handlerFailure(log: Logger, path: string, err: unknown): Status {
  if (err instanceof RpcError) {
    const code = (grpc.status as unknown as Record<string, number>)[err.code]
    if (typeof code === 'number') return { code, details: err.details }
  }
  log.warn({ err, method: path }, 'rpc handler failed')
  return { code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) }
}

