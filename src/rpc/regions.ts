// Rules about region descriptors that the node and the client must agree on.
import type { RegionDescriptor } from './messages'

/** Whether `key` is in [startKey, endKey) (an empty endKey: to the end of the keyspace). */
export function keyInRegion(key: Buffer, r: RegionDescriptor): boolean {
  if (Buffer.compare(key, r.startKey ?? Buffer.alloc(0)) < 0) return false
  return !r.endKey || r.endKey.length === 0 || Buffer.compare(key, r.endKey) < 0
}

/** Whether a's epoch is newer than b's: a later split (version), else a later membership change. */
export function newerEpoch(a: RegionDescriptor, b: RegionDescriptor): boolean {
  const ea = a.epoch ?? { confVer: 0, version: 0 }
  const eb = b.epoch ?? { confVer: 0, version: 0 }
  return ea.version > eb.version || (ea.version === eb.version && ea.confVer > eb.confVer)
}
