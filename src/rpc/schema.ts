// Loads proto/polyfs/v1/*.proto at run time into one protobufjs Root, configured so that 64-bit
// integers are plain JS numbers. The .proto files are the contract; nothing is generated.
import { existsSync } from 'node:fs'
import path from 'node:path'
import protobuf from 'protobufjs'

/** The proto package every PolyFS message lives in. */
export const PACKAGE = 'polyfs.v1'

/** The files of the package, in the order they are loaded (imports resolve by path). */
const PROTO_FILES = ['common.proto', 'waypoint.proto', 'raft.proto', 'master.proto', 'admin.proto', 'kv.proto']

// Without long.js protobufjs reads uint64 as a JS number (LongBits.toNumber). This is global
// protobufjs state; it is set here, once, before any Type builds its converters, because every
// id, index and byte count in PolyFS fits in 2^53 and the codec refuses anything bigger.
const pbUtil = protobuf.util as { Long: unknown }
pbUtil.Long = undefined
protobuf.configure()

// protobufjs's Buffer reader clamps a string's length to the bytes left (Math.min), so a
// truncated message decodes "successfully" to a shorter string. Read strings through bytes(),
// which checks the bound and throws: a truncated string is a malformed message.
protobuf.BufferReader.prototype.string = function readStringChecked(this: protobuf.BufferReader): string {
  return (this.bytes() as Buffer).toString('utf8')
}

let root: protobuf.Root | undefined

/** The directory holding polyfs/v1/*.proto: next to the build (dist/src/rpc -> ../../../proto), else found by walking up to package.json. */
export function protoDir(): string {
  const fromBuild = path.resolve(__dirname, '../../../proto')
  if (existsSync(path.join(fromBuild, 'polyfs/v1/common.proto'))) return fromBuild
  // Walk up at most 10 levels: a bound, and deeper than any layout we ship.
  let dir = __dirname
  for (let i = 0; i < 10; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'proto/polyfs/v1/common.proto'))) return path.join(dir, 'proto')
    const up = path.dirname(dir)
    if (up === dir) break
    dir = up
  }
  throw new Error(`polyfs: cannot find proto/polyfs/v1/*.proto from ${__dirname}`)
}

/** The loaded schema (loaded synchronously on first use, then cached). */
export function schema(): protobuf.Root {
  if (root) return root
  const dir = protoDir()
  const r = new protobuf.Root()
  r.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target))
  r.loadSync(PROTO_FILES.map((f) => `polyfs/v1/${f}`), { keepCase: false })
  r.resolveAll()
  root = r
  return r
}

/** A message type of the package by its short name ('KvRequest'). */
export function messageType(name: string): protobuf.Type {
  return schema().lookupType(`${PACKAGE}.${name}`)
}
