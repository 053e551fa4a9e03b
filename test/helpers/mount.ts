// Test helpers: a real `polyfs mount --local` process on a temp dir, cleaned up by t.after
// even when the test fails (process killed by PID, mount detached, temp dir removed).
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { HEAP_FLAGS } from '../../src/util'

export const REPO = path.resolve(__dirname, '../../..')
export const POLYFS = path.join(REPO, 'bin', 'polyfs')

/** Anything with node:test's `after` (a TestContext, or the module-level hook). */
export interface Cleanup {
  after(fn: () => void | Promise<void>): void
}

export function tempDir(t: Cleanup, prefix = 'polyfs-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === mnt)
}

/** Polls `cond` every 20 ms until it holds; throws after `timeoutMs`. Not a sleep: a bound. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export interface LocalMount {
  readonly root: string
  readonly mnt: string
  readonly dataDir: string
  readonly logFile: string
  proc: ChildProcess
  /** SIGTERM and wait: the clean path (flush, unmount, exit 0). Returns the exit code. */
  stop(): Promise<number | null>
  /** kill -9 the process and detach its dead mount. */
  kill9(): Promise<void>
  /** Start a new process on the same data dir and mountpoint. */
  start(): Promise<void>
  log(): string
  /** Stops the process (SIGTERM, then SIGKILL after 10 s), detaches the mount, removes the dir. */
  cleanup(): Promise<void>
}

/**
 * Starts `polyfs mount --local` on a new temp dir. With `t`, cleanup runs in t.after; without,
 * the caller registers `after(() => m.cleanup())` itself (module-level suites).
 */
export async function startLocalMount(t?: Cleanup, extraArgs: string[] = [], dataDirIn?: string): Promise<LocalMount> {
  const root = mkdtempSync(path.join(tmpdir(), 'polyfs-mnt-'))
  chmodSync(root, 0o755) // other uids (setpriv tests) must reach the mountpoint
  const mnt = path.join(root, 'mnt')
  const dataDir = dataDirIn ?? path.join(root, 'data')
  const logFile = path.join(root, 'polyfs.log')
  mkdirSync(mnt)
  const m: LocalMount = {
    root,
    mnt,
    dataDir,
    logFile,
    proc: null as unknown as ChildProcess,
    cleanup: async () => undefined,
    log: () => readFileSync(logFile, 'utf8'),
    async start() {
      const out = openSync(logFile, 'a')
      m.proc = spawn(process.execPath, [...HEAP_FLAGS, POLYFS, 'mount', '--local', dataDir, mnt, ...extraArgs], { stdio: ['ignore', out, out] })
      const proc = m.proc
      let exited = false
      proc.once('exit', () => (exited = true))
      await waitFor(() => exited || isMounted(mnt), 20_000, `mount at ${mnt}`)
      if (exited) throw new Error(`polyfs exited before mounting:\n${m.log()}`)
    },
    async stop() {
      const proc = m.proc
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
      const done = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
      proc.kill('SIGTERM')
      return done
    },
    async kill9() {
      const proc = m.proc
      if (proc.exitCode === null && proc.signalCode === null) {
        const done = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGKILL')
        await done
      }
      spawnSync('fusermount', ['-uz', mnt])
    },
  }
  m.cleanup = async () => {
    const proc = m.proc
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const done = new Promise((r) => proc.once('exit', r))
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      await done
      clearTimeout(timer)
    }
    if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt])
    rmSync(root, { recursive: true, force: true })
  }
  if (t) t.after(() => m.cleanup())
  try {
    await m.start()
  } catch (err) {
    await m.cleanup()
    throw err
  }
  return m
}

/** Runs a command as another user (setpriv); returns status and output, never throws. */
export function runAs(uid: number, gid: number, cmd: string, args: string[], cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', cmd, ...args], { encoding: 'utf8', cwd })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Runs python3 code with argv (common indentation removed); throws with stderr on failure. */
export function py(code: string, ...args: string[]): string {
  const lines = code.split('\n')
  const indents = lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)?.[0].length ?? 0)
  const cut = indents.length ? Math.min(...indents) : 0
  return execFileSync('python3', ['-c', lines.map((l) => l.slice(cut)).join('\n'), ...args], { encoding: 'utf8' })
}

/** Seeded PRNG (mulberry32): tests print their seed so a failure replays exactly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function testSeed(): number {
  const env = process.env.POLYFS_SEED
  return env ? Number(env) : Math.floor(Math.random() * 2 ** 31)
}
