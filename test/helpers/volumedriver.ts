// A client of Docker's VolumeDriver protocol over a unix socket, as dockerd calls it.
import http from 'node:http'

export interface DriverReply {
  status: number
  body: Record<string, any>
}

/** POSTs `body` (an object, or a raw string sent as is) to /<call>; the JSON answer. */
export function driverCall(socket: string, call: string, body: unknown = {}, timeoutMs = 60_000): Promise<DriverReply> {
  const data = typeof body === 'string' ? body : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: socket, agent: false, path: `/${call}`, method: 'POST', headers: { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(data) }, timeout: timeoutMs },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d))
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) })
          } catch {
            reject(new Error(`${call}: answer is not JSON (HTTP ${res.statusCode}): ${text.slice(0, 200)}`))
          }
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error(`${call}: no answer within ${timeoutMs} ms`)))
    req.on('error', (err) => reject(new Error(`${call} on ${socket}: ${err.message}`)))
    req.end(data)
  })
}

/** The call's answer when Err is empty; throws with Err otherwise. */
export async function driverOk(socket: string, call: string, body: unknown = {}): Promise<Record<string, any>> {
  const r = await driverCall(socket, call, body)
  if (r.status !== 200 || r.body.Err) throw new Error(`${call} ${JSON.stringify(body)}: HTTP ${r.status}: ${r.body.Err}`)
  return r.body
}

/** The Err of a call that must be refused; throws when it succeeds. */
export async function driverErr(socket: string, call: string, body: unknown = {}): Promise<string> {
  const r = await driverCall(socket, call, body)
  if (!r.body.Err) throw new Error(`${call} ${JSON.stringify(body)} succeeded; a refusal was expected`)
  return r.body.Err as string
}
