// What Docker may ask for: volume names and `-o` options, checked before anything is created.
// docs/plugin.md lists the same rules for users.

/** Letters, digits, `_`, `.` and `-`, starting with a letter or digit; at most 128 bytes. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** A clear sentence when `name` cannot be a volume name; null when it can. */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'a volume name is required'
  if (name.includes('\0')) return 'a volume name cannot contain NUL'
  if (name.includes('/')) return `volume name "${name}" cannot contain "/"`
  if (name === '.' || name === '..' || name.includes('..')) return `volume name "${name}" cannot contain ".."`
  if (Buffer.byteLength(name) > 128) return `volume name is ${Buffer.byteLength(name)} bytes; at most 128`
  if (!NAME.test(name)) return `volume name "${name}" is not valid: use letters, digits, "_", "." and "-", starting with a letter or digit`
  return null
}

/** The options `docker volume create -o` takes, and what each means. */
export const VOLUME_OPTIONS: Record<string, string> = {
  uid: 'owner of the volume directory (a number, default 0)',
  gid: 'group of the volume directory (a number, default 0)',
  mode: 'permissions of the volume directory, octal (default 0755)',
}

export interface VolumeOptions {
  uid: number
  gid: number
  mode: number
}

const ID_MAX = 0xfffffffe

/** Parses and checks Docker's Opts; throws an Error with a sentence on anything unknown or bad. */
export function parseOptions(opts: unknown): { parsed: VolumeOptions; sorted: [string, string][] } {
  const parsed: VolumeOptions = { uid: 0, gid: 0, mode: 0o755 }
  if (opts === undefined || opts === null) return { parsed, sorted: [] }
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new Error('Opts must be an object of strings')
  const sorted: [string, string][] = []
  for (const [k, v] of Object.entries(opts as Record<string, unknown>)) {
    if (!(k in VOLUME_OPTIONS)) throw new Error(`unknown option "${k}" (PolyFS volumes take: ${Object.keys(VOLUME_OPTIONS).join(', ')})`)
    if (typeof v !== 'string') throw new Error(`option ${k} must be a string`)
    if (k === 'mode') {
      if (!/^0?[0-7]{3,4}$/.test(v) || parseInt(v, 8) > 0o7777) throw new Error(`option mode=${v} is not an octal mode such as 0755 or 700`)
      parsed.mode = parseInt(v, 8)
    } else {
      if (!/^[0-9]{1,10}$/.test(v) || Number(v) > ID_MAX) throw new Error(`option ${k}=${v} is not a numeric id (0 to ${ID_MAX})`)
      parsed[k as 'uid' | 'gid'] = Number(v)
    }
    sorted.push([k, v])
  }
  sorted.sort((a, b) => (a[0] < b[0] ? -1 : 1))
  return { parsed, sorted }
}
