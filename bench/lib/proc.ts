// Process and mount helpers for the benchmark harness. Every child is tracked by PID and only
// those PIDs are signalled; every mount made here is unmounted with fusermount -u (then -uz).
import { ChildProcess, execFile, spawn } from 'node:child_process'
import { promises as fsp } from 'node:fs'

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
/** A timer that does not keep the process alive (for races against an exit). */
const deadline = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref())

export interface RunResult { code: number | null; stdout: string; stderr: string; ms: number }

/** Run a command to completion with a hard time limit (SIGKILL of that one PID when exceeded). */
export function run(cmd: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<RunResult> {
  const t0 = process.hrtime.bigint()
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: env ?? process.env }, (err, stdout, stderr) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      const c: unknown = err ? (err as { code?: unknown }).code : 0
      resolve({ code: typeof c === 'number' ? c : 1, stdout: String(stdout), stderr: String(stderr), ms })
    })
  })
}

export async function isMounted(mnt: string): Promise<boolean> {
  const mounts = await fsp.readFile('/proc/self/mounts', 'utf8')
  return mounts.split('\n').some((l) => l.split(' ')[1] === mnt)
}

export async function waitMounted(mnt: string, child: ChildProcess | null, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await isMounted(mnt)) return
    if (child && child.exitCode !== null) throw new Error(`mount process exited with code ${child.exitCode} before mounting ${mnt}`)
    await sleep(50)
  }
  throw new Error(`${mnt} not mounted after ${timeoutMs} ms`)
}

export async function fusermountU(mnt: string): Promise<void> {
  if (!(await isMounted(mnt))) return
  const r = await run('fusermount', ['-u', mnt], 10_000)
  if (r.code !== 0 && (await isMounted(mnt))) await run('fusermount', ['-uz', mnt], 10_000)
}

/** A long-running child (a mount daemon) with its stderr kept for diagnostics. */
export class Daemon {
  readonly child: ChildProcess
  stderr = ''
  private exited: Promise<number | null>

  constructor(cmd: string, args: string[], env?: NodeJS.ProcessEnv) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: env ?? process.env })
    this.child.stderr!.on('data', (d: Buffer) => {
      if (this.stderr.length < 1 << 20) this.stderr += d.toString()
    })
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)))
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  /** SIGTERM this PID and wait; SIGKILL the same PID if it has not exited in time. */
  async stop(timeoutMs: number): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode
    this.child.kill('SIGTERM')
    const code = await Promise.race([this.exited, deadline(timeoutMs).then(() => 'timeout' as const)])
    if (code !== 'timeout') return code
    this.child.kill('SIGKILL')
    return Promise.race([this.exited, deadline(5000).then(() => null)])
  }
}

/** Drop the page, dentry and inode caches so the next phase starts cold. */
export async function dropCaches(): Promise<boolean> {
  await run('sync', [], 120_000)
  try {
    await fsp.writeFile('/proc/sys/vm/drop_caches', '3')
    return true
  } catch {
    return false
  }
}
