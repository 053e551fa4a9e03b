// Docker's VolumeDriver protocol (plugin API v1) over HTTP on a unix socket, with express.
// Every call is a POST with a JSON body; every answer is JSON with `Err` empty on success.
// A refusal is HTTP 200 with Err set (Docker shows Err to the user); a body that is not JSON
// is HTTP 400 with Err. https://docs.docker.com/engine/extend/plugins_volume/
import express, { type NextFunction, type Request, type Response } from 'express'
import type { Logger } from '../util'
import { VolumeError, type VolumeStore } from './volumes'

export interface DriverBackend {
  /** Resolves when the node is in its cluster and the filesystem is mounted; throws why not. */
  ready(): Promise<VolumeStore>
}

type Handler = (body: Record<string, unknown>) => Promise<Record<string, unknown>>

export function volumeDriverApp(backend: DriverBackend, log: Logger): express.Express {
  const app = express()
  app.disable('x-powered-by')
  // Docker sends application/vnd.docker.plugins.v1.x+json, sometimes with an empty body.
  app.use(express.json({ type: () => true, strict: false, limit: '1mb' }))

  const route = (path: string, handler: Handler) => {
    app.post(path, (req: Request, res: Response) => {
      const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {}
      const t0 = Date.now()
      handler(body).then(
        (reply) => {
          log.debug({ call: path, name: body.Name, ms: Date.now() - t0 }, 'volume call')
          res.json({ Err: '', ...reply })
        },
        (err: unknown) => {
          const message = err instanceof Error ? err.message : String(err)
          if (err instanceof VolumeError) log.info({ call: path, name: body.Name, err: message }, 'volume call refused')
          else log.error({ call: path, name: body.Name, err: err instanceof Error ? err.stack : message }, 'volume call failed')
          res.json({ Err: message })
        },
      )
    })
  }

  const store = () => backend.ready()
  const str = (v: unknown): string => (typeof v === 'string' ? v : '')

  route('/Plugin.Activate', async () => ({ Implements: ['VolumeDriver'] }))
  route('/VolumeDriver.Capabilities', async () => ({ Capabilities: { Scope: 'global' } }))
  route('/VolumeDriver.Create', async (b) => {
    await (await store()).create(str(b.Name), b.Opts)
    return {}
  })
  route('/VolumeDriver.Remove', async (b) => {
    await (await store()).remove(str(b.Name))
    return {}
  })
  route('/VolumeDriver.Mount', async (b) => ({ Mountpoint: await (await store()).mount(str(b.Name), str(b.ID)) }))
  route('/VolumeDriver.Unmount', async (b) => {
    await (await store()).unmount(str(b.Name), str(b.ID))
    return {}
  })
  route('/VolumeDriver.Path', async (b) => ({ Mountpoint: await (await store()).path(str(b.Name)) }))
  route('/VolumeDriver.Get', async (b) => ({ Volume: await (await store()).get(str(b.Name)) }))
  route('/VolumeDriver.List', async () => ({ Volumes: await (await store()).list() }))

  app.use((req: Request, res: Response) => {
    res.status(404).json({ Err: `unknown call ${req.method} ${req.path}` })
  })
  // Malformed JSON and anything else express itself rejects.
  app.use((err: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    res.status(err.status && err.status >= 400 && err.status < 500 ? err.status : 500).json({ Err: `bad request: ${err.message}` })
  })
  return app
}
