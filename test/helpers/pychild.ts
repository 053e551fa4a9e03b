// Test helpers: file operations run in python3 child processes, so that a call that blocks in
// the kernel (a FUSE request the cluster cannot answer) never blocks the test process. Each
// child has a hard lifetime and is killed by PID when the test ends.
import { spawn, type ChildProcess } from 'node:child_process'
import type { Cleanup } from './mount'

/** How a child ended: its JSON line (ok, errno, data), or how it died. */
export interface PyResult {
  readonly ok: boolean
  readonly errno?: number
  readonly error?: string
  readonly data?: string
  /** Exit code (null when killed by a signal). */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly ms: number
}

export interface PyChild {
  readonly proc: ChildProcess
  /** Settles when the child exits (never rejects). */
  readonly done: Promise<PyResult>
  /** The result once the child has exited, else null (still pending). */
  result(): PyResult | null
  /** The result if the child exits within `ms`, else null; the child keeps running. */
  within(ms: number): Promise<PyResult | null>
  kill(): void
}

// Every script prints one JSON line; an OSError is a clean failure (exit 3), anything else a crash.
const WRITE = `
import json, os, sys
path, data = sys.argv[1], sys.argv[2]
try:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    print(json.dumps({'ok': True}))
except OSError as e:
    print(json.dumps({'ok': False, 'errno': e.errno, 'error': str(e)}))
    sys.exit(3)
`

const READ = `
import json, sys
try:
    with open(sys.argv[1]) as f:
        print(json.dumps({'ok': True, 'data': f.read()}))
except OSError as e:
    print(json.dumps({'ok': False, 'errno': e.errno, 'error': str(e)}))
    sys.exit(3)
`

/** How long cleanup waits for killed children. A child inside a FUSE FLUSH waits
 * uninterruptibly (SIGKILL included) until the mount answers or goes away, so cleanup must not
 * wait for it without a bound: the mount's own teardown is what frees it. */
const KILL_WAIT_MS = 5_000

/** Children a test started, killed (SIGKILL, by PID) at the end of the test. Register this
 * before startCluster so children die before their mounts are torn down. */
export function pyChildren(t: Cleanup): { write(path: string, data: string, lifetimeMs: number): PyChild; read(path: string, lifetimeMs: number): PyChild } {
  const live = new Set<PyChild>()
  t.after(async () => {
    const all = [...live]
    for (const c of all) c.kill()
    await Promise.all(all.map((c) => c.within(KILL_WAIT_MS)))
  })
  const run = (script: string, args: string[], lifetimeMs: number): PyChild => {
    const started = Date.now()
    const proc = spawn('python3', ['-c', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    proc.stdout?.on('data', (b: Buffer) => (out += b.toString()))
    proc.stderr?.on('data', (b: Buffer) => (err += b.toString()))
    let settled: PyResult | null = null
    // The bound on the child's life; one stuck in a FUSE FLUSH dies only once the mount answers.
    const hard = setTimeout(() => proc.kill('SIGKILL'), lifetimeMs)
    const done = new Promise<PyResult>((resolve) => {
      proc.once('close', (code, signal) => {
        clearTimeout(hard)
        let parsed: { ok?: boolean; errno?: number; error?: string; data?: string } = {}
        try {
          parsed = JSON.parse(out.trim().split('\n').pop() ?? '')
        } catch {
          parsed = { ok: false, error: `no result line; stderr: ${err.trim().slice(-500)}` }
        }
        settled = { ok: parsed.ok === true && code === 0, errno: parsed.errno, error: parsed.error, data: parsed.data, code, signal, ms: Date.now() - started }
        live.delete(child)
        resolve(settled)
      })
    })
    const child: PyChild = {
      proc,
      done,
      result: () => settled,
      async within(ms) {
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)))
        try {
          return await Promise.race([done, timeout])
        } finally {
          clearTimeout(timer)
        }
      },
      kill() {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      },
    }
    live.add(child)
    return child
  }
  return {
    write: (path, data, lifetimeMs) => run(WRITE, [path, data], lifetimeMs),
    read: (path, lifetimeMs) => run(READ, [path], lifetimeMs),
  }
}
