// Process and mount helpers for the benchmark harness. Every child is tracked by PID and only
// those PIDs are signalled; every mount made here is unmounted with fusermount -u (then -uz).
import { ChildProcess, execFile, spawn } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import * as net from 'node:net'

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
  /** The process could not be started (see stderr). */
  spawnFailed = false
  private exited: Promise<number | null>

  constructor(cmd: string, args: string[], env?: NodeJS.ProcessEnv) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: env ?? process.env })
    this.child.stderr!.on('data', (d: Buffer) => {
      if (this.stderr.length < 1 << 20) this.stderr += d.toString()
    })
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code) => resolve(code))
      // A binary that is missing (ENOENT) or cannot be run: no 'exit' follows, and an 'error'
      // nobody listens to would end the whole bench. Kept as this daemon's stderr instead.
      this.child.on('error', (err) => {
        this.stderr += `${cmd}: ${err.message}\n`
        this.spawnFailed = true
        resolve(null)
      })
    })
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  /** SIGTERM this PID and wait; SIGKILL the same PID if it has not exited in time. */
  async stop(timeoutMs: number): Promise<number | null> {
    if (this.spawnFailed || this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode
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

/** host:port can be bound (listened on) right now. */
export function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(port, host, () => s.close(() => resolve(true)))
  })
}

/** A random port in [min, min + span) that could be bound on host just now (at most 50 tries). */
export async function freePort(host: string, min = 20_000, span = 10_000): Promise<number> {
  const tries = 50
  for (let i = 0; i < tries; i++) {
    const port = min + Math.floor(Math.random() * span)
    if (await canBind(host, port)) return port
  }
  throw new Error(`no free port on ${host} after ${tries} tries`)
}

/** The last n lines of a (log) file, joined with ' | ', or '' when it cannot be read. */
export async function tailFile(file: string, n: number): Promise<string> {
  try {
    const t = await fsp.readFile(file, 'utf8')
    return t.trim().split('\n').slice(-n).join(' | ')
  } catch {
    return ''
  }
}

/** The last lines of a daemon's stderr, for error messages. */
export const tailStderr = (d: Daemon, chars = 400): string => d.stderr.trim().slice(-chars)

/** A process with this PID exists and is not a zombie. */
export async function pidAlive(pid: number): Promise<boolean> {
  try {
    const st = await fsp.readFile(`/proc/${pid}/stat`, 'utf8')
    // pid (comm) STATE ...: comm may hold spaces and parentheses, the state follows the last ')'.
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** NUL-separated /proc/PID/cmdline as one space-separated string ('' when gone). */
export async function cmdline(pid: number): Promise<string> {
  try {
    return (await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim()
  } catch {
    return ''
  }
}

/** Wait until none of pids is alive, polling every 100 ms for at most timeoutMs; returns those still alive. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const alive: number[] = []
    for (const p of pids) if (await pidAlive(p)) alive.push(p)
    if (!alive.length || Date.now() >= end) return alive
    await sleep(100)
  }
}

/**
 * Stop processes that are not our children but were started on our behalf (GlusterFS bricks
 * started by our glusterd): each PID is signalled only if its command line still contains
 * mustContain (a path unique to this run), SIGTERM, then SIGKILL of the same PID after timeoutMs.
 */
export async function stopForeign(pids: number[], mustContain: string, timeoutMs: number, log: (s: string) => void): Promise<void> {
  const ours: number[] = []
  for (const p of pids) if ((await pidAlive(p)) && (await cmdline(p)).includes(mustContain)) ours.push(p)
  if (!ours.length) return
  for (const p of ours) {
    try {
      process.kill(p, 'SIGTERM')
    } catch {
      /* gone */
    }
  }
  const left = await waitGone(ours, timeoutMs)
  for (const p of left) {
    if (!(await cmdline(p)).includes(mustContain)) continue
    log(`  pid ${p} still running ${timeoutMs / 1000} s after SIGTERM: SIGKILL`)
    try {
      process.kill(p, 'SIGKILL')
    } catch {
      /* gone */
    }
  }
  await waitGone(left, 5000)
}

/** Direct children of pid (all its threads'), from /proc/PID/task/TID/children. */
export async function childPids(pid: number): Promise<number[]> {
  const out: number[] = []
  try {
    for (const tid of await fsp.readdir(`/proc/${pid}/task`)) {
      const t = await fsp.readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '')
      for (const x of t.trim().split(/\s+/)) if (x && !out.includes(Number(x))) out.push(Number(x))
    }
  } catch {
    /* gone */
  }
  return out
}
