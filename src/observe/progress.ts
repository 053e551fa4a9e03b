// Long work in progress (a learner catching up, a snapshot being sent): what is done, of how
// much, how fast, and when it will be finished. Shown by the status page and `polyfs status`,
// and by bench/ for its long phases. A finished task stays listed for KEEP_FINISHED_MS.
import type { TaskProgress } from '../rpc'

export const KEEP_FINISHED_MS = 60_000
/** Smoothing of the rate: the weight of the newest sample (per update, by elapsed time). */
const RATE_HALF_LIFE_MS = 3_000

export interface TaskInput {
  id: string
  kind: string
  label: string
  total?: number
  unit?: string
  regionId?: number
  nodeId?: number
}

export class Task {
  done = 0
  total: number
  rate = 0
  readonly startedMs = Date.now()
  finishedMs = 0
  failed = false
  private lastMs = Date.now()
  private lastDone = 0

  constructor(readonly input: TaskInput, private readonly onEnd: () => void) {
    this.total = input.total ?? 0
  }

  /** Sets progress (absolute); the rate follows by exponential smoothing over time. */
  update(done: number, total?: number): void {
    if (total !== undefined) this.total = total
    const now = Date.now()
    const dt = now - this.lastMs
    if (dt > 0) {
      const inst = ((done - this.lastDone) * 1000) / dt
      const w = 1 - Math.pow(0.5, dt / RATE_HALF_LIFE_MS)
      this.rate = this.rate === 0 ? Math.max(0, inst) : Math.max(0, this.rate + w * (inst - this.rate))
      this.lastMs = now
      this.lastDone = done
    }
    this.done = done
  }

  finish(ok = true): void {
    if (this.finishedMs) return
    this.finishedMs = Date.now()
    this.failed = !ok
    if (ok && this.total) this.done = this.total
    this.onEnd()
  }

  /** Milliseconds left at the current rate (0 = unknown or done). */
  etaMs(): number {
    if (this.finishedMs || !this.total || this.rate <= 0) return 0
    return Math.max(0, Math.round(((this.total - this.done) / this.rate) * 1000))
  }

  toWire(): TaskProgress {
    const i = this.input
    return { id: i.id, kind: i.kind, label: i.label, done: this.done, total: this.total, unit: i.unit ?? '', rate: this.rate, etaMs: this.etaMs(), startedMs: this.startedMs, finishedMs: this.finishedMs, failed: this.failed, regionId: i.regionId ?? 0, nodeId: i.nodeId ?? 0 }
  }
}

export class TaskList {
  private readonly tasks = new Map<string, Task>()

  /** The running task with this id, or a new one. */
  start(input: TaskInput): Task {
    const cur = this.tasks.get(input.id)
    if (cur && !cur.finishedMs) return cur
    const t = new Task(input, () => undefined)
    this.tasks.set(input.id, t)
    return t
  }

  get(id: string): Task | undefined {
    const t = this.tasks.get(id)
    return t && !t.finishedMs ? t : undefined
  }

  /** Running tasks and those finished in the last KEEP_FINISHED_MS. */
  list(): TaskProgress[] {
    const now = Date.now()
    for (const [id, t] of this.tasks) if (t.finishedMs && now - t.finishedMs > KEEP_FINISHED_MS) this.tasks.delete(id)
    return [...this.tasks.values()].map((t) => t.toWire())
  }
}

/** The process's tasks. */
export const tasks = new TaskList()

/** "1.2 GiB", "340 entries": a task's amount in its unit. */
export function formatAmount(n: number, unit: string): string {
  if (unit === 'bytes') {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
    let v = n
    let i = 0
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024
      i++
    }
    return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
  }
  return `${Math.round(n)}${unit ? ' ' + unit : ''}`
}

/** "42% 1.2 MiB/s ETA 0:31" for one task. */
export function formatProgress(t: TaskProgress): string {
  const pct = t.total ? `${Math.min(100, Math.floor((t.done / t.total) * 100))}%` : formatAmount(t.done, t.unit)
  const rate = t.rate ? ` ${formatAmount(t.rate, t.unit)}/s` : ''
  const eta = t.finishedMs ? (t.failed ? ' failed' : ' done') : t.etaMs ? ` ETA ${clock(t.etaMs)}` : ''
  return `${pct}${rate}${eta}`
}

function clock(ms: number): string {
  const s = Math.round(ms / 1000)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}
