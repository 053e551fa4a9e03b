// The one codec of PolyFS messages: the RPC layer, and the cluster for Raft log payloads
// (MasterCommand, RegionCommand, MasterSnapshot) on disk. Plain objects shaped as messages.ts
// in, protobuf bytes out, and back.
//
// encode refuses (InvalidMessageError) what protobufjs would silently mangle: integers that are
// not safe integers or out of the field's range (uint64 above 2^53 - 1 included), unknown enum
// names, bytes that are not a Buffer/Uint8Array, two members of one oneof, a discriminator
// naming a member that is unset. decode throws MalformedMessageError for bytes that do not
// parse, and for a 64-bit integer above 2^53 - 1 (it cannot be represented exactly).
import protobuf from 'protobufjs'
import type { MessageName } from './messages'
import { messageType, PACKAGE } from './schema'

export type { MessageName } from './messages'

/** Bytes that are not a valid encoding of the expected message. */
export class MalformedMessageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MalformedMessageError'
  }
}

/** An object that cannot be encoded as the message it was given as (a caller's bug). */
export class InvalidMessageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'InvalidMessageError'
  }
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, bytes: Buffer, defaults: true, arrays: true, objects: true, oneofs: true }

/** Encodes `obj` as the message `type`; throws InvalidMessageError if it does not fit. */
export function encode<T>(type: MessageName, obj: T): Buffer {
  return writer(type, obj).finish() as Buffer
}

/** `obj` checked and written as the message `type`, not yet finished into bytes. */
function writer<T>(type: MessageName, obj: T): protobuf.Writer {
  const p = plan(type)
  check(p, obj, () => `${PACKAGE}.${type}`)
  return p.type.encode(p.type.fromObject(obj as { [k: string]: unknown }))
}

/** Bytes the patched grpc-js puts its message frame (a flag and a length) in. */
export const WIRE_HEADROOM = 5

/** The messages made by encodeForWire, for the patched grpc-js (patches/, docs/protocol.md,
 * "Framing in place"): the one registry both sides find under this global symbol. */
const headroomKey = Symbol.for('polyfs.grpc.headroom')
const g = globalThis as { [headroomKey]?: WeakSet<Uint8Array> }
const framable: WeakSet<Uint8Array> = (g[headroomKey] ??= new WeakSet())

/**
 * encode, for a message sent on a gRPC stream: the same bytes, with WIRE_HEADROOM bytes
 * reserved in front of them in one allocation, so grpc-js frames them in place instead of
 * copying the whole message into a new buffer with the frame in front (a 2 MiB append to two
 * followers was two 2 MiB allocations and copies more on the leader). The caller must not write
 * to the bytes afterwards: grpc-js sends them as they are.
 */
export function encodeForWire<T>(type: MessageName, obj: T): Buffer {
  return finishForWire(type, writer(type, obj))
}

/** A writer's message finished into one allocation with WIRE_HEADROOM bytes in front. */
function finishForWire(type: MessageName, w: protobuf.Writer): Buffer {
  const out = Buffer.allocUnsafe(WIRE_HEADROOM + w.len)
  // Writer.finish() with the output at an offset: the same walk over the writer's operations
  // (protobufjs 7, src/writer.js), into a buffer we allocated.
  let op = (w as unknown as { head: WriterOp }).head.next
  let pos = WIRE_HEADROOM
  while (op) {
    op.fn(op.val, out, pos)
    pos += op.len
    op = op.next
  }
  if (pos !== out.length) throw new Error(`encodeForWire: ${type} wrote ${pos - WIRE_HEADROOM} bytes of ${w.len}`)
  const body = out.subarray(WIRE_HEADROOM)
  framable.add(body)
  return body
}

/** A bytes field at least this long is sent from its own memory by encodeForWireParts. */
export const WIRE_PART_MIN = 8 * 1024

/**
 * A message for a gRPC stream in pieces (docs/protocol.md, "Sent from the values' own memory"):
 * `parts` joined are the message's bytes (`length` of them), the first with WIRE_HEADROOM bytes
 * reserved in front of it. The patched grpc-js frames it in that room and writes every part to
 * the stream in order, so large bytes fields are never copied into a message buffer.
 */
export interface WireParts {
  readonly length: number
  readonly parts: readonly Buffer[]
}

/** The WireParts made by encodeForWireParts, for the patched grpc-js: as for framable. */
const partsKey = Symbol.for('polyfs.grpc.parts')
const gp = globalThis as { [partsKey]?: WeakSet<object> }
const partsMade: WeakSet<object> = (gp[partsKey] ??= new WeakSet())

/** Whether the loaded grpc-js is patched to frame and write WireParts: both patched modules
 * set their flag when they load (patches/@grpc+grpc-js+*.patch). Without it a message in parts
 * would fail its call, so it is not made. */
export function partsUnderstood(): boolean {
  const f = globalThis as { [k: symbol]: unknown }
  return f[Symbol.for('polyfs.grpc.parts.framer')] === true && f[Symbol.for('polyfs.grpc.parts.writer')] === true
}

/**
 * encodeForWire, with every bytes field of at least `minPart` bytes left in its own memory: the
 * message as WireParts, or as encodeForWire's Buffer when no field is that large or grpc-js is
 * not patched to send parts (partsUnderstood). The caller must not write to those fields'
 * buffers until the stream has written them (its write callback): they go to the socket as
 * they are.
 */
export function encodeForWireParts<T>(type: MessageName, obj: T, minPart = WIRE_PART_MIN): WireParts | Buffer {
  if (!partsUnderstood()) return encodeForWire(type, obj)
  const w = writer(type, obj)
  const head = (w as unknown as { head: WriterOp }).head.next
  const bytesOp = (protobuf.BufferWriter as unknown as { writeBytesBuffer: WriterOp['fn'] }).writeBytesBuffer
  let small = 0
  let big = 0
  for (let op = head; op; op = op.next) {
    if (op.fn === bytesOp && op.len >= minPart) big++
    else small += op.len
  }
  if (big === 0) return finishForWire(type, w)
  // The small fields go, in order, into one allocation; each large one is a part of its own.
  const out = Buffer.allocUnsafe(WIRE_HEADROOM + small)
  const parts: Buffer[] = []
  let pos = WIRE_HEADROOM
  let from = pos
  for (let op = head; op; op = op.next) {
    if (op.fn === bytesOp && op.len >= minPart) {
      if (pos > from || parts.length === 0) parts.push(out.subarray(from, pos))
      const v = op.val as Uint8Array
      parts.push(Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength))
      from = pos
    } else {
      op.fn(op.val, out, pos)
      pos += op.len
    }
  }
  if (pos > from) parts.push(out.subarray(from, pos))
  if (pos !== out.length) throw new Error(`encodeForWireParts: ${type} wrote ${pos - WIRE_HEADROOM} small bytes of ${small}`)
  const msg: WireParts = { length: w.len, parts }
  partsMade.add(msg)
  return msg
}

interface WriterOp {
  fn: (val: unknown, buf: Uint8Array, pos: number) => void
  val: unknown
  len: number
  next: WriterOp | undefined
}

/** Decodes bytes as the message `type`; throws MalformedMessageError if they do not parse. */
export function decode<T>(type: MessageName, buf: Buffer | Uint8Array): T {
  const p = plan(type)
  const bytes = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  let obj: { [k: string]: unknown }
  try {
    obj = p.type.toObject(p.type.decode(bytes), TO_OBJECT)
  } catch (err) {
    throw new MalformedMessageError(`malformed ${PACKAGE}.${type}: ${(err as Error).message}`)
  }
  fixDecoded(p, obj, () => `${PACKAGE}.${type}`)
  return obj as T
}

// ---- per-type plans, built once ---------------------------------------------------------------

type Kind = 'int' | 'enum' | 'message' | 'bytes' | 'other'

interface FieldPlan {
  name: string
  kind: Kind
  repeated: boolean
  map: boolean
  /** For 'int': the inclusive range; 64-bit kinds are limited to safe integers. */
  min: number
  max: number
  enumType?: protobuf.Enum
  message?: Plan
}

interface Plan {
  type: protobuf.Type
  fields: FieldPlan[]
  oneofs: { name: string; members: string[] }[]
}

const INT_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  sint32: [-(2 ** 31), 2 ** 31 - 1],
  sfixed32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  fixed32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  sint64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  sfixed64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint64: [0, Number.MAX_SAFE_INTEGER],
  fixed64: [0, Number.MAX_SAFE_INTEGER],
}

const plans = new Map<string, Plan>()
/** Plans by short name: a protobufjs lookup walks the namespace tree on every call. */
const byName = new Map<string, Plan>()

function plan(name: string): Plan {
  let p = byName.get(name)
  if (!p) byName.set(name, (p = planOf(messageType(name))))
  return p
}

function planOf(type: protobuf.Type): Plan {
  const cached = plans.get(type.fullName)
  if (cached) return cached
  const p: Plan = { type, fields: [], oneofs: type.oneofsArray.map((o) => ({ name: o.name, members: o.fieldsArray.map((f) => f.name) })) }
  plans.set(type.fullName, p) // before recursing: messages may nest themselves
  for (const f of type.fieldsArray) {
    f.resolve()
    const range = INT_RANGES[f.type]
    const fp: FieldPlan = { name: f.name, kind: 'other', repeated: f.repeated, map: f.map, min: 0, max: 0 }
    if (range) [fp.kind, fp.min, fp.max] = ['int', range[0], range[1]]
    else if (f.resolvedType instanceof protobuf.Enum) [fp.kind, fp.enumType] = ['enum', f.resolvedType]
    else if (f.resolvedType instanceof protobuf.Type) [fp.kind, fp.message] = ['message', planOf(f.resolvedType)]
    else if (f.type === 'bytes') fp.kind = 'bytes'
    p.fields.push(fp)
  }
  return p
}

// ---- encode-side checks -----------------------------------------------------------------------

function invalid(where: string, what: string): never {
  throw new InvalidMessageError(`cannot encode ${where}: ${what}`)
}

// Paths for error messages are built only when there is an error (`where` is a function):
// building them for every field of every message was a large share of the codec's time.
type Where = () => string

function check(p: Plan, obj: unknown, where: string | Where): void {
  const w: Where = typeof where === 'string' ? () => where : where
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) invalid(w(), 'expected an object')
  const o = obj as Record<string, unknown>
  for (const f of p.fields) {
    const v = o[f.name]
    if (v === undefined || v === null) continue
    if (f.kind === 'other' && !f.repeated && !f.map) continue
    const at = () => `${w()}.${f.name}`
    if (f.repeated) {
      if (!Array.isArray(v)) invalid(at(), 'expected an array')
      if (f.kind === 'other') continue
      for (let i = 0; i < v.length; i++) checkValue(f, v[i], () => `${at()}[${i}]`)
    } else if (f.map) {
      if (typeof v !== 'object') invalid(at(), 'expected an object (map)')
      for (const [k, e] of Object.entries(v as object)) checkValue(f, e, () => `${at()}[${JSON.stringify(k)}]`)
    } else checkValue(f, v, at)
  }
  for (const oneof of p.oneofs) {
    const set = oneof.members.filter((m) => o[m] !== undefined && o[m] !== null)
    if (set.length > 1) invalid(`${w()}.${oneof.name}`, `more than one member set (${set.join(', ')})`)
    const tag = o[oneof.name]
    if (tag !== undefined && tag !== null && tag !== set[0]) invalid(`${w()}.${oneof.name}`, `discriminator says ${String(tag)} but ${set[0] ?? 'no member'} is set`)
  }
}

function checkValue(f: FieldPlan, v: unknown, at: Where): void {
  switch (f.kind) {
    case 'int':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) invalid(at(), `expected a safe integer, got ${String(v)}`)
      if (v < f.min || v > f.max) invalid(at(), `${v} is out of range [${f.min}, ${f.max}]`)
      return
    case 'enum':
      if (typeof v === 'string' && f.enumType!.values[v] !== undefined) return
      if (typeof v === 'number' && Number.isInteger(v)) return
      return invalid(at(), `unknown ${f.enumType!.name} value ${String(v)}`)
    case 'bytes':
      if (!(v instanceof Uint8Array)) invalid(at(), 'expected a Buffer')
      return
    case 'message':
      return check(f.message!, v, at)
    case 'other':
      return
  }
}

// ---- decode-side fixes ------------------------------------------------------------------------

// toObject writes null for an unset nested message; the TS shapes say "absent", so delete it.
// An enum number this build does not know (a newer peer) reads as the enum's zero value.
function fixDecoded(p: Plan, o: Record<string, unknown>, where: string | Where): void {
  const w: Where = typeof where === 'string' ? () => where : where
  for (const f of p.fields) {
    if (f.kind === 'other' || f.kind === 'bytes') continue
    const v = o[f.name]
    if (v === undefined) continue
    if (v === null) {
      delete o[f.name]
      continue
    }
    const at = () => `${w()}.${f.name}`
    if (f.repeated) {
      const arr = v as unknown[]
      for (let i = 0; i < arr.length; i++) arr[i] = fixValue(f, arr[i], at)
    } else if (f.map) {
      const m = v as Record<string, unknown>
      for (const k of Object.keys(m)) m[k] = fixValue(f, m[k], at)
    } else o[f.name] = fixValue(f, v, at)
  }
}

function fixValue(f: FieldPlan, v: unknown, at: Where): unknown {
  switch (f.kind) {
    case 'int':
      if (typeof v === 'number' && (v > f.max || v < f.min)) throw new MalformedMessageError(`malformed ${at()}: ${v} is out of range: a 64-bit integer above 2^53 - 1 has no exact JS number`)
      return v
    case 'enum':
      return typeof v === 'number' ? f.enumType!.valuesById[0] : v
    case 'message':
      if (v !== null && typeof v === 'object') fixDecoded(f.message!, v as Record<string, unknown>, at)
      return v
    default:
      return v
  }
}
