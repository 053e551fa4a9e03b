// Per-second samples for the status page's sparklines and the CPU and event-loop figures of
// NodeStatus: plain counters bumped on the hot path (an add, no allocation), turned into one
// point per second by an unref'd timer. SERIES_POINTS points are kept (two minutes).
import { monitorEventLoopDelay } from 'node:perf_hooks'

export const SERIES_STEP_MS = 1000
export const SERIES_POINTS = 120

export class Series {
  private kvCount = 0
  private kvMs = 0
  private fuseCount = 0
  readonly kvOps: number[] = []
  readonly kvLatencyMs: number[] = []
  readonly fuseOps: number[] = []
  cpuCores = 0
  loopLagMs = 0
  private timer: NodeJS.Timeout | null = null
  private lastCpu = process.cpuUsage()
  private lastAt = performance.now()
  private readonly loop = monitorEventLoopDelay({ resolution: 20 })

  /** A KV request served, taking `ms`. */
  noteKv(ms: number): void {
    this.kvCount++
    this.kvMs += ms
  }

  /** A FUSE operation answered. */
  noteFuse(): void {
    this.fuseCount++
  }

  /** Starts sampling (idempotent); the timer never keeps the process alive. */
  start(): void {
    if (this.timer) return
    this.loop.enable()
    this.lastCpu = process.cpuUsage()
    this.lastAt = performance.now()
    this.timer = setInterval(() => this.sample(), SERIES_STEP_MS)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.loop.disable()
  }

  private sample(): void {
    const now = performance.now()
    const secs = Math.max(0.001, (now - this.lastAt) / 1000)
    const cpu = process.cpuUsage()
    this.cpuCores = (cpu.user - this.lastCpu.user + cpu.system - this.lastCpu.system) / 1e6 / secs
    this.lastCpu = cpu
    this.lastAt = now
    this.loopLagMs = Number.isFinite(this.loop.mean) ? Math.max(0, this.loop.mean / 1e6 - 20) : 0
    this.loop.reset()
    push(this.kvOps, this.kvCount / secs)
    push(this.kvLatencyMs, this.kvCount ? this.kvMs / this.kvCount : 0)
    push(this.fuseOps, this.fuseCount / secs)
    this.kvCount = 0
    this.kvMs = 0
    this.fuseCount = 0
  }
}

function push(a: number[], v: number): void {
  a.push(Math.round(v * 100) / 100)
  if (a.length > SERIES_POINTS) a.shift()
}

/** The process's series. */
export const series = new Series()
