// The codec against the .proto schema: every message round-trips, and what protobufjs would
// silently mangle is refused.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import protobuf from 'protobufjs'
import { decode, encode, InvalidMessageError, MalformedMessageError, type KvRequest, type MasterCommand, type MessageName, type RaftMessage, type RegionDescriptor } from '../../src/rpc'
import { schema } from '../../src/rpc/schema'
import { SAMPLES } from './samples'

test('codec: every message of the schema has a sample, and every sample is a message', () => {
  const ns = schema().lookup('polyfs.v1') as protobuf.Namespace
  const inSchema = ns.nestedArray.filter((n) => n instanceof protobuf.Type).map((n) => n.name).sort()
  assert.deepEqual(Object.keys(SAMPLES).sort(), inSchema)
})

test('codec: every message round-trips field for field (the TS shapes match the .proto files)', () => {
  for (const [name, sample] of Object.entries(SAMPLES)) {
    const back = decode(name as MessageName, encode(name as MessageName, sample))
    assert.deepEqual(back, sample, name)
  }
})

test('codec: uint64 is a plain number up to 2^53 - 1; larger, negative or fractional is refused on encode', () => {
  const max = Number.MAX_SAFE_INTEGER
  const back = decode<KvRequest>('KvRequest', encode('KvRequest', { id: max, regionId: max - 1 }))
  assert.equal(typeof back.id, 'number')
  assert.equal(back.id, max)
  assert.equal(back.regionId, max - 1)
  for (const bad of [max + 1, 2 ** 64, -1, 1.5, NaN]) {
    assert.throws(() => encode('KvRequest', { id: bad }), InvalidMessageError, String(bad))
  }
  assert.throws(() => encode('ScanOp', { limit: 2 ** 32 }), /out of range/)
  assert.throws(() => encode('MasterSnapshot', { joinTokens: { t: 2 ** 53 } }), /joinTokens/)
})

test('codec: a uint64 above 2^53 - 1 on the wire is malformed, not rounded', () => {
  // field 1 (id), varint 2^64 - 1
  const wire = Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
  assert.throws(() => decode('KvRequest', wire), MalformedMessageError)
})

test('codec: bytes decode as Node Buffers, also when empty or absent', () => {
  const r = decode<RegionDescriptor>('RegionDescriptor', encode('RegionDescriptor', { startKey: Buffer.from('abc') }))
  assert.ok(Buffer.isBuffer(r.startKey))
  assert.ok(Buffer.isBuffer(r.endKey))
  assert.equal(r.endKey.length, 0)
  assert.ok(Buffer.from('abc').equals(r.startKey))
  const fromUint8 = decode<RegionDescriptor>('RegionDescriptor', new Uint8Array(encode('RegionDescriptor', { endKey: Buffer.from('z') })))
  assert.ok(Buffer.isBuffer(fromUint8.endKey))
  assert.throws(() => encode('GetOp', { key: 'not bytes' }), InvalidMessageError)
})

test('codec: an unset nested message is absent, not null; scalars and arrays get their defaults', () => {
  const r = decode<RegionDescriptor>('RegionDescriptor', encode('RegionDescriptor', { id: 1 }))
  assert.equal('epoch' in r, false)
  assert.deepEqual(r.voters, [])
  assert.equal(r.leader, 0)
  assert.equal(decode<KvRequest>('KvRequest', Buffer.alloc(0)).id, 0)
})

test('codec: oneof carries a discriminator naming the set member; two members or a wrong tag are refused', () => {
  const req = decode<KvRequest>('KvRequest', encode('KvRequest', { id: 1, get: { key: Buffer.from('k') } }))
  assert.equal(req.op, 'get')
  assert.equal(req.scan, undefined)
  assert.equal(decode<KvRequest>('KvRequest', encode('KvRequest', { id: 1 })).op, undefined)
  const cmd = decode<MasterCommand>('MasterCommand', encode('MasterCommand', { addNode: { joinToken: 't' } }))
  assert.equal(cmd.cmd, 'addNode')
  assert.equal(cmd.addNode?.joinToken, 't')
  assert.throws(() => encode('KvRequest', { get: { key: Buffer.from('k') }, scan: {} }), /more than one member/)
  assert.throws(() => encode('KvRequest', { op: 'scan', get: { key: Buffer.from('k') } }), /discriminator/)
})

test('codec: enums are names; an unknown name is refused, an unknown number (a newer peer) reads as the zero value', () => {
  const m = decode<RaftMessage>('RaftMessage', encode('RaftMessage', { type: 'RAFT_VOTE' }))
  assert.equal(m.type, 'RAFT_VOTE')
  assert.throws(() => encode('RaftMessage', { type: 'RAFT_NOPE' }), /unknown RaftMessageType/)
  assert.equal(decode<RaftMessage>('RaftMessage', Buffer.from([0x08, 99])).type, 'RAFT_UNKNOWN')
})

test('codec: fields this build does not know are skipped (a newer peer may add fields)', () => {
  const known = encode('NodeAddr', { nodeId: 3, address: 'h:1' })
  // field 99, length-delimited, 2 bytes; then field 98, varint 7
  const extra = Buffer.concat([known, Buffer.from([0x9a, 0x06, 0x02, 0x68, 0x69, 0x90, 0x06, 0x07])])
  assert.deepEqual(decode('NodeAddr', extra), { nodeId: 3, address: 'h:1' })
})

test('codec: bytes that do not parse throw MalformedMessageError naming the message', () => {
  for (const bad of [Buffer.from([0x0a, 0xff]), Buffer.from([0x0f]), Buffer.from([0x08]), Buffer.from([0x1a, 0x05, 0x08])]) {
    assert.throws(
      () => decode('KvRequest', bad),
      (err: unknown) => err instanceof MalformedMessageError && /^malformed polyfs\.v1\.KvRequest/.test(err.message),
      bad.toString('hex'),
    )
  }
  // A string whose length runs past the end: protobufjs alone would return it truncated.
  assert.throws(() => decode('NodeAddr', Buffer.from([0x12, 0x05, 0x61])), MalformedMessageError)
  // A wire type that does not exist, on a field number no message uses.
  assert.throws(() => decode('NodeAddr', Buffer.from([0xa7, 0x06])), MalformedMessageError)
})
