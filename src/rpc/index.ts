// src/rpc: the gRPC layer every PolyFS role talks through, and the codec of every message.
// This file is the folder's only public entry. Wire contract: proto/polyfs/v1/*.proto;
// semantics: docs/protocol.md; error catalogue: docs/errors.md.
//
// Map of the folder:
//   schema.ts          loads the .proto files at run time (protobufjs; uint64 as JS numbers)
//   messages.ts        hand-written TS shapes of every message, and MessageName
//   codec.ts           encode/decode: plain objects <-> protobuf bytes (RPC and Raft log payloads)
//   errors.ts          ErrorCode (application), TransportCode (gRPC status), RpcError
//   services.ts        the method table: gRPC paths and message types of every rpc
//   handlers.ts        the handler interfaces a role implements to serve a service
//   server.ts          RpcServer: the secret check, decoding, unary services, listen/close
//   server-streams.ts  the server side of Kv.Session and RaftTransport.Stream
//   client.ts          RpcClients: cached channels, unary clients, kv and raft per address
//   kv-session.ts      the client side of Kv.Session: ids, window, FIFO, deadlines
//   raft-sender.ts     the client side of RaftTransport.Stream: fire-and-forget, bounded
//   regions.ts         rules on region descriptors shared by node and client (key range, epoch)
//
// A new rpc: add it to the .proto (docs/protocol.md versioning rules), to messages.ts, to the
// method table in services.ts, then to the handler interface and the client of its service.

export { encode, encodeForWire, encodeForWireParts, decode, MalformedMessageError, InvalidMessageError, WIRE_HEADROOM } from './codec'
export type { MessageName } from './codec'
export { ErrorCode, NO_OPERATION, TransportCode, rpcError, RpcError, toRpcError } from './errors'
export type { ErrorHints } from './errors'
export { RpcServer, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SESSION_MAX_IN_FLIGHT } from './server'
export type { RpcServerOptions } from './server'
export type { WaypointHandler, MasterHandler, NodeAdminHandler, KvHandler, KvStream, RaftHandler } from './handlers'
export {
  RpcClients,
  dialFromEnv,
  DEFAULT_UNARY_TIMEOUT_MS,
  DEFAULT_KV_TIMEOUT_MS,
  DEFAULT_KV_MAX_IN_FLIGHT,
  DEFAULT_KV_MAX_QUEUED,
  DEFAULT_RAFT_MAX_QUEUED_BYTES,
} from './client'
export type { CallOptions, RpcClientsOptions, WaypointClient, MasterClient, AdminClient, KvClient, KvPushListener, KvUnaryClient, RaftClient } from './client'
export { SECRET_HEADER } from './services'
export { keyInRegion, newerEpoch } from './regions'
export { addressProblem, TOKEN_RULE } from './messages'
export { protoDir } from './schema'
export type {
  MessageTypes,
  Init,
  NodeAddr,
  RegionEpoch,
  RegionDescriptor,
  RpcErrorInfo,
  GetMasterRequest,
  GetMasterResponse,
  SetMasterRequest,
  SetMasterResponse,
  ClaimRequest,
  ClaimResponse,
  RaftBatch,
  RaftEnvelope,
  RaftStreamDone,
  RaftMessageType,
  RaftEntryType,
  RaftEntry,
  ConfState,
  SnapshotMeta,
  RaftMessage,
  NodeState,
  NodeInfo,
  MasterInfo,
  Settings,
  JoinRequest,
  JoinResponse,
  RegionStat,
  HeartbeatRequest,
  HeartbeatResponse,
  GetClusterMapRequest,
  GetClusterMapResponse,
  MasterCommand,
  BootstrapCluster,
  AddNode,
  UpdateNode,
  PutRegion,
  PutSettings,
  MasterSnapshot,
  MasterChangedRequest,
  MasterChangedResponse,
  ReplicaChange,
  ChangeReplicasRequest,
  ChangeReplicasResponse,
  NodeStatusRequest,
  GroupStatus,
  NodeStatusResponse,
  NodeEvent,
  TaskProgress,
  KvRequest,
  GetOp,
  GetManyOp,
  ScanOp,
  KeyVersion,
  ScanCheck,
  Write,
  CommitOp,
  KvEntry,
  KvResponse,
  RegionCommand,
} from './messages'
