// The method table of every PolyFS service: gRPC path, request and response message, and the
// name of the handler/client function. server.ts and client.ts both build on it, so a path is
// spelled once. Bodies cross grpc-js as raw Buffers (identity serializers): codec.ts decodes
// them inside our wrappers, where a malformed body can be answered with INVALID_ARGUMENT.
import type * as grpc from '@grpc/grpc-js'
import type { MessageName } from './messages'
import { PACKAGE } from './schema'

/** Metadata key carrying the cluster secret on every call. */
export const SECRET_HEADER = 'x-polyfs-secret'

export interface Method {
  /** '/polyfs.v1.Waypoint/GetMaster' */
  path: string
  /** The proto rpc name: 'GetMaster'. */
  rpc: string
  /** Service and rpc, the method label of the RPC metrics: 'Waypoint.GetMaster'. */
  label: string
  request: MessageName
  response: MessageName
  requestStream: boolean
  responseStream: boolean
}

function method(service: string, rpc: string, request: MessageName, response: MessageName, requestStream = false, responseStream = false): Method {
  return { path: `/${PACKAGE}.${service}/${rpc}`, rpc, label: `${service}.${rpc}`, request, response, requestStream, responseStream }
}

export const WAYPOINT = {
  getMaster: method('Waypoint', 'GetMaster', 'GetMasterRequest', 'GetMasterResponse'),
  setMaster: method('Waypoint', 'SetMaster', 'SetMasterRequest', 'SetMasterResponse'),
  claim: method('Waypoint', 'Claim', 'ClaimRequest', 'ClaimResponse'),
} as const

export const MASTER = {
  join: method('Master', 'Join', 'JoinRequest', 'JoinResponse'),
  heartbeat: method('Master', 'Heartbeat', 'HeartbeatRequest', 'HeartbeatResponse'),
  getClusterMap: method('Master', 'GetClusterMap', 'GetClusterMapRequest', 'GetClusterMapResponse'),
} as const

export const NODE_ADMIN = {
  masterChanged: method('NodeAdmin', 'MasterChanged', 'MasterChangedRequest', 'MasterChangedResponse'),
  changeReplicas: method('NodeAdmin', 'ChangeReplicas', 'ChangeReplicasRequest', 'ChangeReplicasResponse'),
  status: method('NodeAdmin', 'Status', 'NodeStatusRequest', 'NodeStatusResponse'),
} as const

export const KV = {
  session: method('Kv', 'Session', 'KvRequest', 'KvResponse', true, true),
  call: method('Kv', 'Call', 'KvRequest', 'KvResponse'),
} as const

export const RAFT = {
  stream: method('RaftTransport', 'Stream', 'RaftBatch', 'RaftStreamDone', true, false),
} as const

const identity = (b: Buffer): Buffer => b

/** A grpc-js method definition that passes bodies through as Buffers. */
export function rawDefinition(m: Method): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: m.path,
    requestStream: m.requestStream,
    responseStream: m.responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: m.rpc,
  }
}
