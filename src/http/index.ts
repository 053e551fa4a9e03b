// The HTTP side of a PolyFS process (express): the status page at /, its data at /api/status,
// Prometheus metrics at /metrics, and /healthz and /readyz for orchestrators. Read-only: nothing
// here changes the cluster, so it carries no secret (docs/operations.md says where to bind it).
import express from 'express'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { collectProcessMetrics, registry, type Picture } from '../observe'
import type { Logger } from '../util/log'
import { pageHtml } from './page'

/** A check's outcome: true, or why not. */
export type Checks = Record<string, true | string>

export interface HttpOptions {
  /** host:port (port 0: any). */
  listen: string
  logger: Logger
  /** The cluster picture (gathered on demand; cached for PICTURE_CACHE_MS). */
  picture?: () => Promise<Picture>
  /** Liveness: the process works (answering at all is most of it). */
  health: () => Checks
  /** Readiness: the process can serve (joined, a master known, groups led, mount up). */
  ready: () => Checks
}

export interface HttpServer {
  /** The bound host:port. */
  readonly address: string
  close(): Promise<void>
}

/** Concurrent page loads share one gathering within this window. */
const PICTURE_CACHE_MS = 500

function parseListen(listen: string): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(listen.trim())
  if (!m || Number(m[2]) > 65535) throw new Error(`--http ${listen}: expected host:port`)
  const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0'
  return { host, port: Number(m[2]) }
}

function answerChecks(res: express.Response, checks: Checks): void {
  const failed = Object.entries(checks).filter(([, v]) => v !== true)
  res.status(failed.length ? 503 : 200).json({ ok: failed.length === 0, checks })
}

export async function startHttp(o: HttpOptions): Promise<HttpServer> {
  const { host, port } = parseListen(o.listen)
  // RSS, CPU seconds, fds, heap, GC and event-loop lag, once per process (idempotent).
  collectProcessMetrics()
  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  let cached: { at: number; p: Promise<Picture> } | null = null

  app.get('/', (_req, res) => {
    res.type('html').set('Cache-Control', 'no-store').send(pageHtml())
  })
  app.get('/api/status', async (_req, res) => {
    if (!o.picture) {
      res.status(404).json({ error: 'this process has no cluster picture' })
      return
    }
    const now = Date.now()
    if (!cached || now - cached.at > PICTURE_CACHE_MS) cached = { at: now, p: o.picture() }
    try {
      res.set('Cache-Control', 'no-store').json(await cached.p)
    } catch (err) {
      res.status(503).json({ error: (err as Error).message })
    }
  })
  app.get('/metrics', async (_req, res) => {
    try {
      res.set('Content-Type', registry.contentType).send(await registry.metrics())
    } catch (err) {
      res.status(500).type('text').send(`metrics failed: ${(err as Error).message}\n`)
    }
  })
  app.get('/healthz', (_req, res) => answerChecks(res, o.health()))
  app.get('/readyz', (_req, res) => answerChecks(res, o.ready()))
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found: try /, /api/status, /metrics, /healthz or /readyz' })
  })

  const server: Server = await new Promise((resolve, reject) => {
    // Express 5 hands a listen error to the callback (and the server then has no address).
    const fail = (err: Error) => reject(new Error(`cannot serve HTTP on ${o.listen}: ${err.message}`))
    const s = app.listen(port, host, (err?: Error) => (err ? fail(err) : resolve(s)))
    s.once('error', fail)
  })
  server.keepAliveTimeout = 5000
  const a = server.address() as AddressInfo
  const address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
  o.logger.info({ address }, 'http: status page, /metrics, /healthz and /readyz')
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
