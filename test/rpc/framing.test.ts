// Framing in place (docs/protocol.md): grpc-js, patched (patches/@grpc+grpc-js+*.patch), frames a
// message made by encodeForWire in the 5 bytes reserved in front of it instead of copying it into
// a new buffer; anything else is framed as before. Checked on the two places grpc-js frames
// (a client's or a stream's send, a server's answer) and end to end over a real Kv.Session.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { decode, encode, encodeForWire, WIRE_HEADROOM, type KvRequest } from '../../src/rpc'
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
