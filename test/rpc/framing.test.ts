// Framing in place (docs/protocol.md): grpc-js, patched (patches/@grpc+grpc-js+*.patch), frames a
// message made by encodeForWire in the 5 bytes reserved in front of it instead of copying it into
// a new buffer; anything else is framed as before. Checked on the two places grpc-js frames
// (a client's or a stream's send, a server's answer) and end to end over a real Kv.Session. And a
// message in parts (encodeForWireParts): its large bytes fields sent from their own memory.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { decode, encode, encodeForWire, encodeForWireParts, WIRE_HEADROOM, type KvRequest, type RaftBatch } from '../../src/rpc'
import { partsUnderstood, type WireParts } from '../../src/rpc/codec'
import { clients, startServer } from './helpers'
import { SAMPLES } from './samples'

// grpc-js internals, as the patch changes them.
const { CompressionFilter } = require('@grpc/grpc-js/build/src/compression-filter') as {
  CompressionFilter: new (options: object, shared: object) => { sendMessage(m: Promise<{ message: Buffer; flags?: number }>): Promise<{ message: Buffer }> }
}
const { BaseServerInterceptingCall } = require('@grpc/grpc-js/build/src/server-interceptors') as {
  BaseServerInterceptingCall: { prototype: { serializeMessage(this: unknown, value: unknown): Buffer } }
}

const clientFrame = async (message: Buffer) => (await new CompressionFilter({}, {}).sendMessage(Promise.resolve({ message }))).message
const serverFrame = (message: Buffer) => BaseServerInterceptingCall.prototype.serializeMessage.call({ handler: { serialize: (v: Buffer) => v } }, message)

function checkFrame(framed: Buffer, body: Buffer, what: string): void {
  assert.equal(framed.length, body.length + WIRE_HEADROOM, what)
  assert.equal(framed[0], 0, `${what}: the uncompressed flag`)
  assert.equal(framed.readUInt32BE(1), body.length, `${what}: the length`)
  assert.ok(framed.subarray(WIRE_HEADROOM).equals(body), `${what}: the message`)
}

test('framing: encodeForWire gives the bytes encode gives, for every message of the schema', () => {
  for (const [name, sample] of Object.entries(SAMPLES)) {
    const wire = encodeForWire(name as keyof typeof SAMPLES, sample)
    assert.ok(wire.equals(encode(name as keyof typeof SAMPLES, sample)), name)
    assert.ok(wire.byteOffset >= WIRE_HEADROOM, `${name}: room in front`)
  }
})

test('framing: the patched grpc-js frames an encodeForWire message in place, and copies any other', async () => {
  const req: KvRequest = { id: 7, regionId: 1, op: 'get', get: { key: randomBytes(300_000) } }
  for (const [frame, side] of [
    [clientFrame, 'a client send'],
    [serverFrame, 'a server answer'],
  ] as const) {
    const wire = encodeForWire('KvRequest', req)
    const framed = await frame(wire)
    checkFrame(framed, wire, side)
    assert.equal(framed.buffer, wire.buffer, `${side}: framed in the message's own memory`)
    assert.equal(framed.byteOffset, wire.byteOffset - WIRE_HEADROOM, `${side}: in the room in front`)
    const plain = encode('KvRequest', req)
    const copied = await frame(plain)
    checkFrame(copied, plain, `${side} (plain)`)
    assert.notEqual(copied.buffer, plain.buffer, `${side}: a plain message is copied, as unpatched`)
  }
})

test('framing: large and small messages framed in place cross a real Kv.Session intact, both ways', async (t) => {
  const { address } = await startServer(t, (s) => s.addKv({ handle: async (req) => ({ id: req.id, found: true, value: req.get?.key }) }))
  const kv = clients(t).kv(address)
  for (const size of [0, 1, 4095, 70_000, 2 * 1024 * 1024]) {
    const key = randomBytes(size)
    const res = await kv.call({ regionId: 1, get: { key } })
    assert.ok((res.value ?? Buffer.alloc(0)).equals(key), `${size} bytes`)
  }
  // And what the server decodes is what the client encoded, for a request with every kind of field.
  const back = decode<KvRequest>('KvRequest', encodeForWire('KvRequest', SAMPLES.KvRequest as KvRequest))
  assert.deepEqual(back, SAMPLES.KvRequest)
})

const joined = (m: WireParts | Buffer) => (Buffer.isBuffer(m) ? m : Buffer.concat(m.parts as Buffer[]))

test('framing: encodeForWireParts gives encode\'s bytes, leaving large fields in their own memory', () => {
  for (const [name, sample] of Object.entries(SAMPLES)) {
    const m = encodeForWireParts(name as keyof typeof SAMPLES, sample)
    assert.ok(joined(m).equals(encode(name as keyof typeof SAMPLES, sample)), name)
  }
  const values = [randomBytes(20_000), randomBytes(100), randomBytes(8 * 1024), randomBytes(8 * 1024 - 1), randomBytes(300_000)]
  const req: KvRequest = { id: 9, regionId: 3, op: 'commit', commit: { reads: [], scans: [], writes: values.map((v, i) => ({ key: Buffer.from(`k${i}`), value: v, delete: false })), txnId: randomBytes(16), patches: [] } }
  const m = encodeForWireParts('KvRequest', req) as WireParts
  assert.ok(!Buffer.isBuffer(m), 'in parts')
  assert.equal(m.length, encode('KvRequest', req).length)
  assert.ok(joined(m).equals(encode('KvRequest', req)))
  // The three values of 8 KiB or more are parts of their own, the very buffers given.
  for (const v of [values[0], values[2], values[4]]) assert.ok(m.parts.some((p) => p === v), `${v!.length} bytes: its own memory`)
  for (const v of [values[1], values[3]]) assert.ok(!m.parts.some((p) => p === v), `${v!.length} bytes: copied with the small fields`)
  assert.ok(m.parts[0]!.byteOffset >= WIRE_HEADROOM, 'room in front of the first part')
  // A Raft batch: the entries' data.
  const data = randomBytes(2 * 1024 * 1024)
  const sample = SAMPLES.RaftBatch as unknown as RaftBatch
  const batch: RaftBatch = { ...sample, messages: sample.messages.map((e) => ({ ...e, message: { ...e.message!, entries: [...(e.message!.entries ?? []), { term: 5, index: 12, type: 'ENTRY_NORMAL', data }] } })) } as RaftBatch
  const rb = encodeForWireParts('RaftBatch', batch) as WireParts
  assert.ok(rb.parts.includes(data))
  assert.ok(joined(rb).equals(encode('RaftBatch', batch)))
  // No large field: encodeForWire's Buffer.
  assert.ok(Buffer.isBuffer(encodeForWireParts('KvRequest', { id: 1, regionId: 1, op: 'get', get: { key: randomBytes(100) } })))
  // The installed grpc-js says it sends parts (the patch is applied); a grpc-js that does not
  // say so gets plain Buffers, which any grpc-js sends.
  assert.equal(partsUnderstood(), true, 'both patched grpc-js modules set their flag')
  const flag = Symbol.for('polyfs.grpc.parts.writer')
  const g = globalThis as { [k: symbol]: unknown }
  g[flag] = undefined
  try {
    const plain = encodeForWireParts('KvRequest', req)
    assert.ok(Buffer.isBuffer(plain) && plain.equals(encode('KvRequest', req)), 'without the flag: one Buffer')
  } finally {
    g[flag] = true
  }
})

test('framing: the patched grpc-js frames a message in parts in its first part\'s room, and it crosses a real Kv.Session intact', async (t) => {
  const value = randomBytes(100_000)
  const req: KvRequest = { id: 1, regionId: 1, op: 'commit', commit: { reads: [], scans: [], writes: [{ key: Buffer.from('k'), value, delete: false }], txnId: randomBytes(16), patches: [] } }
  const m = encodeForWireParts('KvRequest', req) as WireParts
  const framed = (await new CompressionFilter({}, {}).sendMessage(Promise.resolve({ message: m as unknown as Buffer }))).message as unknown as WireParts
  assert.equal(framed.length, m.length + WIRE_HEADROOM)
  const head = framed.parts[0]!
  assert.equal(head.buffer, m.parts[0]!.buffer, 'framed in the first part\'s own memory')
  assert.equal(head[0], 0)
  assert.equal(head.readUInt32BE(1), m.length)
  assert.ok(framed.parts.includes(value), 'the large value is still its own buffer')
  assert.ok(joined(framed).subarray(WIRE_HEADROOM).equals(encode('KvRequest', req)))

  // End to end: commits with large and small values, echoed back by the server.
  const { address } = await startServer(t, (s) => s.addKv({ handle: async (r) => ({ id: r.id, found: true, value: Buffer.concat((r.commit?.writes ?? []).map((w) => w.value ?? Buffer.alloc(0))) }) }))
  const kv = clients(t).kv(address)
  for (const sizes of [[0], [8 * 1024], [16 * 1024 + 6, 16 * 1024 + 6, 5], [2 * 1024 * 1024, 1, 70_000]]) {
    const vs = sizes.map((n) => randomBytes(n))
    const res = await kv.call({ regionId: 1, op: 'commit', commit: { reads: [], scans: [], writes: vs.map((v, i) => ({ key: Buffer.from([i]), value: v, delete: false })), txnId: randomBytes(16), patches: [] } })
    assert.ok((res.value ?? Buffer.alloc(0)).equals(Buffer.concat(vs)), `values of ${sizes.join(', ')} bytes`)
  }
})
