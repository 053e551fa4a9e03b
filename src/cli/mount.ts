// A FileSystem on a local classic-level store, mounted through FUSE until a signal arrives.
import { mkdirSync, readFileSync } from 'node:fs'
import { FileSystem } from '../fs'
import { checkMountpoint, mount } from '../fuse'
import { LocalKV } from '../kv'
import { logger, setLogLevel } from '../util'
import { onStopSignals } from './signals'

export interface LocalMountArgs {
  dataDir: string
  mountpoint: string
  logLevel: string
  attrTimeoutSec?: number
  debug?: boolean
  createMountpoint?: boolean
  banner?: boolean
}

export async function runLocalMount(a: LocalMountArgs): Promise<void> {
  setLogLevel(a.logLevel)
  const log = logger('cli')
  if (a.createMountpoint) mkdirSync(a.mountpoint, { recursive: true })
  // Check before opening the store, so a bad mountpoint changes nothing on disk.
  const problem = await checkMountpoint(a.mountpoint)
  if (problem) throw new Error(problem)
  mkdirSync(a.dataDir, { recursive: true })
  const kv = await LocalKV.open(a.dataDir)
  const fs = await FileSystem.open(kv)
  let mounted
  try {
    mounted = await mount(fs, a.mountpoint, { attrTimeoutSec: a.attrTimeoutSec, entryTimeoutSec: a.attrTimeoutSec, debug: a.debug })
  } catch (err) {
    await fs.close()
    throw err
  }
  if (a.banner) process.stdout.write(`PolyFS is mounted at ${mounted.mountpoint} (data in ${a.dataDir}). Ctrl-C to unmount.\n`)
  let watch: NodeJS.Timeout | null = null
  const stop = onStopSignals(log, async () => {
    // The external-unmount watch must not fire while we unmount ourselves.
    if (watch) clearInterval(watch)
    watch = null
    await mounted.close()
  })
  // Keeps the process alive (fuse-native's handles are unref'd) and notices an unmount done
  // from outside (fusermount -u): then commit what is buffered, close the store and exit.
  watch = setInterval(() => {
    if (isMounted(mounted.mountpoint)) return
    if (watch) clearInterval(watch)
    log.warn({ mountpoint: mounted.mountpoint }, 'unmounted from outside; closing')
    stop('external unmount')
  }, WATCH_MS)
}

const WATCH_MS = 2000

function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === mnt)
}
