// The status page in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; `make test` installs it): against a real 3-node cluster it loads without a
// console error, shows the nodes and the master leader, and after kill -9 of a node shows it
// down and its region under-replicated within seconds. A second test feeds the page a hostile
// picture (every string is shown as text, never parsed as HTML) and a failing /api/status (a
// banner, the last picture kept). Screenshots go to $POLYFS_TEST_ARTIFACTS (test-artifacts/).
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { pageHtml } from '../../src/http/page'
import type { Picture } from '../../src/observe'
import { dumpLogs, startCluster, type Cluster } from '../helpers/cluster'
import { REPO, waitFor, type Cleanup } from '../helpers/mount'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = path.resolve(REPO, process.env.POLYFS_TEST_ARTIFACTS ?? 'test-artifacts')

async function launchBrowser(t: Cleanup): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: the status page's browser test needs Debian's chromium (\`make test\` installs it; or apt-get install -y chromium)`)
  // playwright-core never downloads a browser: it drives the given executable only.
  const { chromium } = require('playwright-core') as typeof import('playwright-core')
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.after(() => browser.close().catch(() => undefined))
  return browser
}

/** A page that records every console error, uncaught exception and failed request. */
async function newPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } })
  page.setDefaultTimeout(15_000)
  const errors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`)
  })
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`))
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}: ${r.failure()?.errorText ?? ''}`))
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.url()}`)
  })
  return { page, errors }
}

async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true })
  const file = path.join(ARTIFACTS, name)
  await page.screenshot({ path: file, fullPage: true, timeout: 15_000 })
  console.log(`screenshot: ${file}`)
  return file
}

function getJson(url: string, timeoutMs = 5000): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let data = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (data += d))
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) })
        } catch (err) {
          reject(err)
        }
      })
    })
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

/** The HTTP address of node i+1: its own loopback address, its RPC port + 20 (the helper gives a
 * cluster 40 ports, waypoints at +0.., nodes at +10..; +30.. is free). */
function httpAddress(c: Cluster, i: number): string {
  const [host, port] = c.nodeAddress(i).split(':') as [string, string]
  return `${host}:${Number(port) + 20}`
}

test('status page: a real cluster in Chromium, healthy, then a node killed', { timeout: 240_000 }, async (t) => {
  const c = startCluster(t, { nodeArgs: ['--down-after', '3'] })
  for (let i = 0; i < 3; i++) c.addNode(['--http', httpAddress(c, i)]).start()
  const base = `http://${httpAddress(c, 0)}`
  try {
    const map = await c.waitMap(
      (m) => (m.nodes ?? []).filter((n) => n.state === 'NODE_UP').length === 3 && (m.regions ?? []).length > 0 && (m.regions ?? []).every((r) => (r.voters ?? []).length === 3 && (r.learners ?? []).length === 0) && !!m.master?.leader?.nodeId,
      90_000,
      'three nodes up and every region fully replicated',
    )
    // The page's node (node 1) answers a healthy picture before the browser looks.
    let picture: Picture | null = null
    await waitFor(
      async () => {
        const r = await getJson(`${base}/api/status`).catch(() => null)
        picture = r?.status === 200 ? (r.body as Picture) : null
        return !!picture && picture.healthy && picture.nodes.filter((n) => n.health === 'up').length === 3
      },
      30_000,
      `a healthy picture of three nodes at ${base}/api/status`,
    )
    const leader = map.master!.leader!.nodeId
    // Node ids come from the join order: find them by address. The page is served by the first
    // process; the victim is neither it nor the master leader, so the page keeps its source and
    // its master while the node dies.
    const idOf = (i: number) => (map.nodes ?? []).find((n) => n.address === c.nodes[i]!.address)!.nodeId
    const self = idOf(0)
    const victimIndex = [1, 2].find((i) => idOf(i) !== leader) as number
    const victim = idOf(victimIndex)

    const browser = await launchBrowser(t)
    const { page, errors } = await newPage(browser)
    const started = Date.now()
    await page.goto(`${base}/`, { waitUntil: 'load', timeout: 15_000 })
    await page.waitForSelector('#cluster-health[data-healthy="true"]', { timeout: 15_000 })
    await page.waitForSelector('#nodes [data-node-id][data-health="up"] >> nth=2', { timeout: 15_000 })
    assert.equal(await page.locator('#nodes .node[data-node-id]').count(), 3, 'three node cards')
    assert.equal(await page.locator('#nodes .node[data-health="up"]').count(), 3, 'all three up')
    assert.equal(await page.locator('#master-leader').getAttribute('data-node-id'), String(leader))
    assert.equal((await page.locator('#master-leader').textContent())?.trim(), `node ${leader}`)
    assert.equal(await page.locator(`#nodes .node[data-node-id="${leader}"] .role.r-master-leader`).count(), 1, 'the leader card says master leader')
    assert.equal(await page.locator(`#master-members [data-member-id="${leader}"][data-role="leader"]`).count(), 1)
    assert.equal(await page.locator('#nodes .node[data-self="true"]').getAttribute('data-node-id'), String(self), 'the node serving the page is marked')
    assert.ok((await page.locator('#regions tr[data-region-id]').count()) >= 1, 'regions are listed')
    assert.equal(await page.locator('#regions tr[data-region-id]:not([data-health="ok"])').count(), 0, 'every region ok')
    assert.equal(await page.locator('#regions td.cell[data-role="leader"]').count(), await page.locator('#regions tr[data-region-id]').count(), 'one leader cell per region')
    assert.ok((await page.locator('#events li').count()) > 0, 'events are shown')
    assert.ok(await page.locator('#problems').isHidden(), 'no problems list when healthy')
    assert.ok(await page.locator('#conn-banner').isHidden(), 'no connection banner')
    assert.equal(await page.locator('#cluster-id').textContent(), picture!.clusterId)
    // It refreshes by itself (no reload): a newer picture arrives within a few polls.
    const firstAt = Number(await page.locator('body').getAttribute('data-picture-at'))
    await waitFor(async () => Number(await page.locator('body').getAttribute('data-picture-at')) > firstAt, 10_000, 'a newer picture')
    await screenshot(page, 'status-page-healthy.png')

    await c.nodes[victimIndex]!.kill9()
    const killed = Date.now()
    const sel = `#nodes .node[data-node-id="${victim}"]`
    await page.waitForSelector(`${sel}[data-health="unreachable"], ${sel}[data-health="down"]`, { timeout: 10_000 })
    const seenMs = Date.now() - killed
    await page.waitForSelector('#regions tr[data-region-id][data-health="under-replicated"]', { timeout: 10_000 })
    await page.waitForSelector('#cluster-health[data-healthy="false"]', { timeout: 10_000 })
    assert.ok(await page.locator('#problems').isVisible(), 'the problems list shows')
    assert.match((await page.locator('#problems').textContent()) ?? '', new RegExp(`node ${victim} `))
    const row = page.locator('#regions tr[data-region-id][data-health="under-replicated"]').first()
    assert.match((await row.locator('.why').textContent()) ?? '', /not live|wanted/, 'the row says why')
    // The master's own verdict follows after --down-after 3 s without a heartbeat.
    await page.waitForSelector(`${sel}[data-health="down"]`, { timeout: 20_000 })
    await page.waitForSelector(`#events li[data-kind="node-down"][data-subject-node="${victim}"]`, { timeout: 10_000 })
    const downMs = Date.now() - killed
    assert.equal(await page.locator(`#regions td.cell[data-node-id="${victim}"][data-live="false"]`).count(), await page.locator(`#regions td.cell[data-node-id="${victim}"]:not([data-role="absent"])`).count(), 'its replicas are marked dead')
    assert.ok((await page.locator(`#regions td.cell[data-node-id="${victim}"][data-live="false"]`).count()) >= 1)
    assert.equal(await page.locator('#nodes .node[data-health="up"]').count(), 2)
    assert.ok(await page.locator('#conn-banner').isHidden(), 'the page node still answers')
    await screenshot(page, 'status-page.png')
    console.log(`page loaded in ${killed - started} ms before the kill; node ${victim} shown unreachable/down ${seenMs} ms after kill -9, down (master) after ${downMs} ms`)
    assert.deepEqual(errors, [], 'no console errors, page errors or failed requests')
  } catch (err) {
    console.error(dumpLogs(c))
    throw err
  }
})

/** A picture with hostile strings everywhere the page shows one. */
function hostilePicture(): Picture {
  const x = (s: string) => `${s} <img src=x onerror="window.__xss=1"><b>bold</b>&amp;`
  const now = Date.now()
  const series = Array.from({ length: 60 }, (_, i) => 10 + 8 * Math.sin(i / 6))
  const node = (id: number, health: Picture['nodes'][number]['health']): Picture['nodes'][number] => ({
    id,
    address: x(`127.0.0.${id}:1`),
    httpAddress: x('h'),
    health,
    masterState: x('NODE_UP'),
    error: health === 'up' ? '' : x('ECONNREFUSED'),
    roles: [id === 1 ? 'master-leader' : 'master', 'data', x('role')],
    capacityBytes: 100 * 2 ** 30,
    freeBytes: 30 * 2 ** 30,
    rssBytes: 80 * 2 ** 20,
    cpuCores: 0.12,
    loopLagMs: 2.5,
    lastHeartbeatMs: now - 500,
    uptimeMs: 65_000,
    replicas: 1,
    leads: id === 1 ? 1 : 0,
    kvOps: series,
    kvLatencyMs: series.map((v) => v / 4),
    fuseOps: series.map((v) => v / 2),
  })
  return {
    atMs: now,
    clusterId: x('cluster'),
    mapVersion: 7,
    master: { leader: 1, leaderAddress: x('127.0.0.1:1'), term: 3, voters: [1, 2, 3], learners: [] },
    settings: { dataReplicas: 3, downAfterMs: 3000 },
    nodes: [node(1, 'up'), node(2, 'up'), node(3, 'unreachable')],
    regions: [
      {
        id: 1,
        startKey: '',
        endKey: '',
        epoch: x('3/1'),
        leader: 1,
        voters: [1, 2, 3],
        learners: [],
        health: 'under-replicated',
        why: x('1 of 3 voters not live'),
        sizeBytes: 4096,
        replicas: [
          { nodeId: 1, role: 'leader', live: true, appliedIndex: 10 },
          { nodeId: 2, role: 'follower', live: true, appliedIndex: 10 },
          { nodeId: 3, role: 'follower', live: false, appliedIndex: 0 },
        ],
      },
    ],
    events: [
      { atMs: now - 4000, kind: x('node-joined'), nodeId: 1, subjectNode: 3, regionId: 0, message: x('joined'), level: 'info' },
      { atMs: now - 1000, kind: 'node-down', nodeId: 1, subjectNode: 3, regionId: 0, message: x('down'), level: 'warn' },
    ],
    tasks: [
      { id: x('task'), kind: 'snapshot-send', label: x('region 1: snapshot to node 3'), done: 3 << 20, total: 12 << 20, unit: 'bytes', rate: 1 << 20, etaMs: 9000, startedMs: now - 3000, finishedMs: 0, failed: false, regionId: 1, nodeId: 3 },
    ],
    totals: { stepMs: 1000, kvOps: series, kvLatencyMs: series.map((v) => v / 4), fuseOps: series.map((v) => v / 2) },
    problems: [x('node 3 is unreachable'), x('region 1 is under-replicated')],
    healthy: false,
  }
}

test('status page: escapes every string, and keeps the last picture when /api/status fails', { timeout: 120_000 }, async (t) => {
  let mode: 'ok' | 'fail' = 'ok'
  const picture = hostilePicture()
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(pageHtml())
    } else if (req.url === '/api/status' && mode === 'ok') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...picture, atMs: Date.now() }))
    } else if (req.url === '/api/status') {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'no master leader answers <i>x</i>' }))
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const browser = await launchBrowser(t)
  const { page, errors } = await newPage(browser)
  await page.goto(`${base}/`, { waitUntil: 'load', timeout: 15_000 })
  await page.waitForSelector('#cluster-health[data-healthy="false"]', { timeout: 15_000 })
  await page.waitForSelector('#nodes .node[data-node-id="3"][data-health="unreachable"]')
  await page.waitForSelector('#regions tr[data-region-id="1"][data-health="under-replicated"]')
  // Every hostile string is text: no <img> or <b> from the picture reached the DOM, nothing ran.
  assert.equal(await page.locator('body img').count(), 0, 'no <img> was parsed out of a picture string')
  assert.equal(await page.locator('b:text-is("bold")').count(), 0, 'no <b> was parsed out of a picture string')
  assert.equal(await page.evaluate('typeof window.__xss'), 'undefined')
  assert.match((await page.locator('#cluster-id').textContent()) ?? '', /<img src=x onerror="window.__xss=1"><b>bold<\/b>&amp;/)
  assert.match((await page.locator('#problem-list li').first().textContent()) ?? '', /^node 3 is unreachable <img/)
  assert.match((await page.locator('#regions tr[data-region-id="1"] .why').textContent()) ?? '', /<img/)
  assert.match((await page.locator('#events li').first().textContent()) ?? '', /down <img/, 'newest event first')
  assert.equal(await page.locator('#events li').first().getAttribute('data-level'), 'warn')
  assert.equal(await page.locator('#tasks [data-state="running"]').count(), 1)
  assert.match((await page.locator('#tasks [data-state="running"]').textContent()) ?? '', /25 %/)
  assert.match((await page.locator('#tasks [data-state="running"]').textContent()) ?? '', /ETA 9\.0 s/)
  assert.equal(await page.locator('#chart-kv-ops svg polyline').count(), 1, 'the throughput sparkline is drawn')
  assert.equal(await page.locator('#regions td.cell[data-node-id="3"][data-live="false"]').count(), 1)
  assert.ok(await page.locator('#conn-banner').isHidden())

  // /api/status fails: a banner says so, with the error, and the last picture stays.
  mode = 'fail'
  await page.waitForSelector('#conn-banner:visible', { timeout: 10_000 })
  assert.match((await page.locator('#conn-banner').textContent()) ?? '', /Cannot reach \/api\/status.*HTTP 503: no master leader answers <i>x<\/i>/)
  assert.equal(await page.locator('#nodes .node[data-node-id]').count(), 3, 'the last picture is kept')
  assert.equal(await page.locator('body').getAttribute('data-state'), 'stale')
  await screenshot(page, 'status-page-unreachable.png')
  mode = 'ok'
  await page.waitForSelector('#conn-banner', { state: 'hidden', timeout: 10_000 })
  assert.equal(await page.locator('body').getAttribute('data-state'), 'ok')
  // The 503s are the only errors the browser logged (Chromium logs a failed load as a console
  // error); nothing threw.
  assert.deepEqual(errors.filter((e) => !/503/.test(e)), [])
})
