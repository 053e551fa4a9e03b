// The status page: one self-contained HTML document (inline CSS and JS, no framework, nothing
// loaded from outside) that polls /api/status every 1.5 s and draws the cluster: health, the
// master group, the nodes, regions by node, tasks, events and throughput. The skeleton below
// carries the stable ids the script fills in (and tests look for): #cluster-health,
// #master-leader, #conn-banner, #problems, #nodes [data-node-id][data-health], #regions
// [data-region-id][data-health], #tasks [data-task-id][data-state], #events li[data-level].
import { SCRIPT } from './page/script'
import { STYLE } from './page/style'

function chartCard(id: string, title: string): string {
  return `<div class="card chart" id="${id}"><h2>${title}</h2><div class="head"><span class="now">–</span><span class="peak"></span></div><div class="axis"><span class="from">-2 m</span><span>now</span></div></div>`
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PolyFS status</title>
<link rel="icon" id="favicon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-state="loading">
<header id="topbar"><div class="inner">
  <div class="brand"><span class="logo"></span>PolyFS</div>
  <div class="hstat"><span class="k">Cluster</span><span class="v mono" id="cluster-id">…</span></div>
  <span id="cluster-health" data-healthy="unknown">Loading</span>
  <div class="hstat"><span class="k">Master leader</span><span class="v"><b id="master-leader" data-node-id="0">…</b> <span class="mono muted" id="master-address"></span></span></div>
  <div class="hstat"><span class="k">Term</span><span class="v" id="master-term">–</span></div>
  <div class="hstat"><span class="k">Map version</span><span class="v" id="map-version">–</span></div>
  <div class="spacer"></div>
  <div class="hstat"><span class="k">Updated</span><span class="v" id="updated" data-stale="false">loading…</span></div>
</div></header>
<div id="conn-banner" role="alert" hidden><div class="inner"><span>Cannot reach /api/status</span><span class="detail" id="conn-error"></span><span class="detail" id="conn-kept"></span></div></div>
<main>
  <section id="problems" class="card" hidden><h2>Problems <span class="count" id="problems-count"></span></h2><ul id="problem-list"></ul></section>
  <section id="overview">
    <div class="card" id="summary"><h2>Cluster <span class="count" id="settings-line"></span></h2><div class="tiles" id="summary-tiles"></div></div>
    ${chartCard('chart-kv-ops', 'KV throughput')}
    ${chartCard('chart-fuse-ops', 'FUSE throughput')}
    ${chartCard('chart-kv-latency', 'KV latency')}
  </section>
  <section id="nodes"><h2>Nodes <span class="count" id="nodes-count"></span></h2><div id="node-list"><div class="empty">loading…</div></div></section>
  <section id="master" class="card"><div class="master-line"><h2>Master group</h2><div id="master-members"></div><span class="muted" id="master-quorum"></span></div></section>
  <section id="regions" class="card"><h2>Regions by node <span class="count" id="regions-count"></span></h2><div class="table-wrap"><table id="region-table"></table></div></section>
  <div class="twocol">
    <section id="tasks" class="card"><h2>Tasks <span class="count" id="tasks-count"></span></h2><div id="task-list"></div></section>
    <section id="events" class="card"><h2>Recent events <span class="count" id="events-count"></span></h2><ul id="event-list"></ul><div class="empty" id="events-empty" hidden>no events yet</div></section>
  </div>
</main>
<footer>Read-only view of <span class="mono">/api/status</span>, refreshed every 1.5 s. Also: <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a> · <a href="/api/status">/api/status</a></footer>
<script>${SCRIPT}</script>
</body>
</html>
`

export function pageHtml(): string {
  return PAGE
}
