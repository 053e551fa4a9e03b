// The error catalogue of the PolyFS services. Two layers, both documented in docs/errors.md
// (test/rpc/errors.test.ts checks the document lists exactly these codes):
//   - application codes (ErrorCode), carried in the `error` field of a response: the call
//     reached a handler, which refused it for a reason the caller can act on;
//   - transport codes (TransportCode), gRPC status names: the call failed before or around
//     the handler. A failed call rejects with RpcError whose `code` is the status name.
import * as grpc from '@grpc/grpc-js'
import type { NodeAddr, RegionDescriptor, RpcErrorInfo } from './messages'

/** Stable application error codes. Never renamed or reused: peers of other versions read them. */
export const ErrorCode = {
  NOT_LEADER: 'NOT_LEADER',
  EPOCH_NOT_MATCH: 'EPOCH_NOT_MATCH',
  KEY_NOT_IN_REGION: 'KEY_NOT_IN_REGION',
  REGION_NOT_FOUND: 'REGION_NOT_FOUND',
  CONFLICT: 'CONFLICT',
  CLUSTER_MISMATCH: 'CLUSTER_MISMATCH',
  NOT_BOOTSTRAPPED: 'NOT_BOOTSTRAPPED',
  NODE_REMOVED: 'NODE_REMOVED',
  TIMEOUT: 'TIMEOUT',
  IO: 'IO',
  TOO_LARGE: 'TOO_LARGE',
  BUSY: 'BUSY',
  INVALID: 'INVALID',
  INTERNAL: 'INTERNAL',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** The INVALID message of a KvRequest whose operation the node does not know: also what a node
 * older than an operation (get_many) answers it, so clients recognise it. Never reworded. */
export const NO_OPERATION = 'request without an operation'

/** The gRPC status names PolyFS produces or expects on purpose (RpcError.code). */
export const TransportCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  UNAVAILABLE: 'UNAVAILABLE',
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  INTERNAL: 'INTERNAL',
  CANCELLED: 'CANCELLED',
  UNIMPLEMENTED: 'UNIMPLEMENTED',
} as const
export type TransportCode = (typeof TransportCode)[keyof typeof TransportCode]

/** Retry hints an application error may carry. */
export interface ErrorHints {
  /** NOT_LEADER: who leads now, when known. */
  leader?: NodeAddr
  /** EPOCH_NOT_MATCH / KEY_NOT_IN_REGION: the region as the replica knows it now. */
  region?: RegionDescriptor
}

/** The `error` field of a response. `code` should be one of ErrorCode (a string is accepted for codes passed through from a peer or a log entry). */
export function rpcError(code: ErrorCode | string, message: string, hints?: ErrorHints): RpcErrorInfo {
  const e: RpcErrorInfo = { code, message }
  if (hints?.leader) e.leader = hints.leader
  if (hints?.region) e.region = hints.region
  return e
}

/**
 * A call that failed at the transport level. `code` is the gRPC status name ('UNAVAILABLE',
 * 'UNAUTHENTICATED', ...), `details` the peer's or the client's explanation. A handler may
 * also throw one to answer with that status instead of INTERNAL.
 */
export class RpcError extends Error {
  readonly code: string
  readonly details: string
  constructor(code: string, details: string) {
    super(`${code}: ${details}`)
    this.name = 'RpcError'
    this.code = code
    this.details = details
  }
}

/** A grpc-js call error as an RpcError named by its status ('UNAVAILABLE'). */
export function toRpcError(err: Partial<grpc.ServiceError>): RpcError {
  const name = typeof err.code === 'number' ? (grpc.status[err.code] as string | undefined) : undefined
  return new RpcError(name ?? 'UNKNOWN', err.details ?? err.message ?? '')
}
