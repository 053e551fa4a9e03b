// What the storing processes of a system cost: resident memory (/proc/PID/status VmRSS, idle
// and the maximum under load) and bytes sent to storage (/proc/PID/io write_bytes, summed over
// all of a process's threads, so LevelDB's background compactions count too).
import { promises as fsp } from 'node:fs'
import { sleep } from './proc'

/** A process the harness started and watches. */
export interface Proc { name: string; pid: number; role: 'node' | 'client' }

/** A storing process of a system, when it has a PID. */
export const nodeProc = (name: string, pid: number | undefined): Proc[] => (pid === undefined ? [] : [{ name, pid, role: 'node' }])

/** A multi-process system once it is up: its client mount's process and its storing ones. */
export function processesUp(dir: string, client: { name: string; pid: number | undefined }, nodes: Proc[], replicas: number, down: () => Promise<void>): ProcessesUp {
  return { dir, pid: client.pid, nodes, client: client.pid === undefined ? null : { name: client.name, pid: client.pid, role: 'client' }, replicas, down }
}

/** What a multi-process system's setup returns (the PolyFS cluster and the peers). */
export interface ProcessesUp {
  dir: string
  /** The client mount's PID. */
  pid?: number
  /** The processes that store the data. */
  nodes: Proc[]
  client: Proc | null
  replicas: number
  down(): Promise<void>
}

/** Quiet time after setup before the idle RSS sample. */
export const IDLE_QUIET_MS = 2000
/** RSS sampling period while the rows run. */
export const RSS_PERIOD_MS = 200

/** VmRSS of PID in bytes, or null when the process is gone. */
export async function rssBytes(pid: number): Promise<number | null> {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await fsp.readFile(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

/** write_bytes of /proc/PID/io (bytes this process caused to be written to storage), or null. */
export async function writeBytes(pid: number): Promise<number | null> {
  try {
    const m = /^write_bytes:\s+(\d+)/m.exec(await fsp.readFile(`/proc/${pid}/io`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

export interface RssReport { name: string; pid: number; role: Proc['role']; idleBytes: number | null; maxBytes: number | null; samples: number }

/** Idle RSS now, then the maximum of samples every RSS_PERIOD_MS until stop(). */
export class RssWatch {
  private readonly out: RssReport[]
  private timer: NodeJS.Timeout | null = null
  private busy = false

  private constructor(out: RssReport[]) {
    this.out = out
  }

  /** Waits IDLE_QUIET_MS, takes the idle sample, then starts sampling. */
  static async start(procs: Proc[]): Promise<RssWatch> {
    await sleep(IDLE_QUIET_MS)
    const out: RssReport[] = []
    for (const p of procs) {
      const idle = await rssBytes(p.pid)
      out.push({ name: p.name, pid: p.pid, role: p.role, idleBytes: idle, maxBytes: idle, samples: idle === null ? 0 : 1 })
    }
    const w = new RssWatch(out)
    w.timer = setInterval(() => void w.sample(), RSS_PERIOD_MS)
    return w
  }

  private async sample(): Promise<void> {
    if (this.busy) return
    this.busy = true
    try {
      for (const r of this.out) {
        const b = await rssBytes(r.pid)
        if (b === null) continue
        r.samples++
        r.maxBytes = Math.max(r.maxBytes ?? 0, b)
      }
    } finally {
      this.busy = false
    }
  }

  stop(): RssReport[] {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    return this.out
  }
}

export interface WriteAmp {
  row: string
  /** Bytes of file data fio wrote (including its end fsync). */
  fileBytes: number
  /** Copies of each byte the nodes keep. */
  replicas: number
  perProc: { name: string; pid: number; bytes: number | null }[]
  /** Sum over the nodes; null when a node's counter could not be read. */
  totalBytes: number | null
}

/** write_bytes of each node, to be subtracted from a later reading. */
export async function ioSnapshot(procs: Proc[]): Promise<(number | null)[]> {
  return Promise.all(procs.map((p) => writeBytes(p.pid)))
}

export async function writeAmp(row: string, procs: Proc[], before: (number | null)[], fileBytes: number, replicas: number): Promise<WriteAmp> {
  const after = await ioSnapshot(procs)
  const perProc = procs.map((p, i) => {
    const a = after[i]
    const b = before[i]
    return { name: p.name, pid: p.pid, bytes: a === null || a === undefined || b === null || b === undefined ? null : a - b }
  })
  const totalBytes = perProc.some((x) => x.bytes === null) ? null : perProc.reduce((s, x) => s + (x.bytes ?? 0), 0)
  return { row, fileBytes, replicas, perProc, totalBytes }
}
