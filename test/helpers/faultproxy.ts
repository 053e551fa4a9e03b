// Test helpers: fault-injecting TCP proxies on loopback, and a mesh of them between cluster
// processes. Every process's gRPC client dials through POLYFS_DIAL_MAP, so giving node i a map
// of "peer j -> proxy (i -> j)" puts one proxy on every directed link, and a test can cut links
// one way or both. A blocked link is a blackhole, not a refusal: bytes vanish and connections
// hang, as in a real partition, so the code under test must notice by its own timeouts.
import net from 'node:net'
import type { Cluster } from './cluster'
import type { Cleanup } from './mount'

/** One accepted connection and, when forwarding, its upstream half. */
interface Conn {
  readonly down: net.Socket
  up: net.Socket | null
  /** Blackholed: its bytes are dropped and its ends are not passed on; unblock() destroys it. */
  holed: boolean
}

/** A proxy to one target; block() and unblock() switch it between forwarding and blackhole. */
export interface Proxy {
  /** host:port to dial instead of the target. */
  readonly address: string
  readonly target: string
  readonly blocked: boolean
  /** From now on bytes in both directions are dropped, on open and new connections alike. */
  block(): void
  /** Destroys every blackholed connection (both sides see a reset and reconnect); new
   * connections forward again. */
  unblock(): void
  close(): Promise<void>
}

/** Most connections one proxy keeps; beyond it new ones are refused (a runaway reconnect loop
 * in the code under test should fail a test, not exhaust the machine). */
const MAX_CONNECTIONS = 256

function splitAddress(a: string): { host: string; port: number } {
  const i = a.lastIndexOf(':')
  const port = Number(a.slice(i + 1))
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65_535) throw new Error(`not a host:port: ${a}`)
  return { host: a.slice(0, i), port }
}

/** A proxy on 127.0.0.1 (port chosen by the kernel) forwarding every connection to `target`. */
export async function startProxy(target: string): Promise<Proxy> {
  const to = splitAddress(target)
  const conns = new Set<Conn>()
  let blocked = false

  const drop = (c: Conn) => {
    conns.delete(c)
    c.down.destroy()
    c.up?.destroy()
  }

  // Data from `from` goes to `to` unless the connection is blackholed; backpressure pauses
  // the sender (a blackholed connection is always flowing: its bytes are read and dropped).
  const forward = (c: Conn, from: net.Socket, other: () => net.Socket | null) => {
    from.on('data', (buf) => {
      const o = other()
      if (c.holed || !o) return
      if (!o.write(buf)) {
        from.pause()
        o.once('drain', () => from.resume())
      }
    })
    from.on('end', () => {
      if (!c.holed) other()?.end()
    })
    // An end seen while blackholed is not passed on: in a partition the FIN is lost too.
    from.on('close', () => {
      if (!c.holed) drop(c)
    })
    from.on('error', () => undefined)
  }

  const server = net.createServer((down) => {
    if (conns.size >= MAX_CONNECTIONS) {
      down.destroy()
      return
    }
    const c: Conn = { down, up: null, holed: blocked }
    conns.add(c)
    forward(c, down, () => c.up)
    if (c.holed) return // accepted, never forwarded: unblock() destroys it
    down.pause()
    const up = net.connect(to.port, to.host)
    c.up = up
    forward(c, up, () => c.down)
    up.once('connect', () => {
      if (!c.holed) down.resume()
    })
  })
  server.on('error', () => undefined)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as net.AddressInfo).port

  return {
    address: `127.0.0.1:${port}`,
    target,
    get blocked() {
      return blocked
    },
    block() {
      blocked = true
      for (const c of conns) {
        c.holed = true
        // Keep reading so that a paused side does not hold bytes it would deliver later.
        c.down.resume()
        c.up?.resume()
      }
    },
    unblock() {
      blocked = false
      for (const c of [...conns]) if (c.holed) drop(c)
    },
    async close() {
      blocked = true
      for (const c of [...conns]) drop(c)
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

/** Proxies on every directed link between n nodes and any number of client mounts. Endpoints
 * are numbered: nodes 0..n-1 (node i is c.nodes[i], at c.nodeAddress(i)), then clients in the
 * order addClient() made them. Links to the waypoints stay direct. */
export interface Mesh {
  readonly size: number
  /** The environment node i must start with: c.addNode(args, mesh.nodeEnv(i)). */
  nodeEnv(i: number): NodeJS.ProcessEnv
  /** A client endpoint with a proxy to every node; mount with c.mount(args, env). */
  addClient(): Promise<{ index: number; env: NodeJS.ProcessEnv }>
  /** The proxy on the link from -> to (undefined when there is none, e.g. node -> client). */
  link(from: number, to: number): Proxy | undefined
  /** Blocks every link between the two groups, both directions; other links are untouched. */
  partition(a: readonly number[], b: readonly number[]): void
  /** Unblocks every link. */
  heal(): void
  close(): Promise<void>
}

/** Starts the n*(n-1) node-to-node proxies; closed by t.after. */
export async function startMesh(t: Cleanup, c: Cluster, n: number): Promise<Mesh> {
  const links = new Map<string, Proxy>()
  const key = (from: number, to: number) => `${from}>${to}`
  let clients = 0
  let closed = false
  t.after(() => mesh.close())

  const dialEnv = (from: number): NodeJS.ProcessEnv => {
    const map: Record<string, string> = {}
    for (let j = 0; j < n; j++) {
      const p = links.get(key(from, j))
      if (p) map[c.nodeAddress(j)] = p.address
    }
    return { POLYFS_DIAL_MAP: JSON.stringify(map) }
  }

  const mesh: Mesh = {
    get size() {
      return n + clients
    },
    nodeEnv(i) {
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`no node ${i} in a mesh of ${n}`)
      return dialEnv(i)
    },
    async addClient() {
      if (closed) throw new Error('mesh closed')
      const index = n + clients++
      for (let j = 0; j < n; j++) links.set(key(index, j), await startProxy(c.nodeAddress(j)))
      return { index, env: dialEnv(index) }
    },
    link(from, to) {
      return links.get(key(from, to))
    },
    partition(a, b) {
      const overlap = a.filter((x) => b.includes(x))
      if (overlap.length > 0) throw new Error(`endpoints ${overlap.join(',')} are on both sides`)
      for (const x of a) {
        for (const y of b) {
          links.get(key(x, y))?.block()
          links.get(key(y, x))?.block()
        }
      }
    },
    heal() {
      for (const p of links.values()) p.unblock()
    },
    async close() {
      if (closed) return
      closed = true
      await Promise.all([...links.values()].map((p) => p.close()))
    },
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) if (i !== j) links.set(key(i, j), await startProxy(c.nodeAddress(j)))
  }
  return mesh
}
