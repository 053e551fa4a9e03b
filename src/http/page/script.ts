// The status page's script: plain browser JS (the project's TypeScript has no DOM lib), inline in
// the page. It polls /api/status, keeps the last picture when a poll fails (and says so), and
// draws every section with createElement/textContent: no string from the picture ever reaches
// innerHTML. Written without backticks or "${" so that it sits in a String.raw template.
export const SCRIPT = String.raw`
'use strict';
(function () {
  var POLL_MS = 1500;
  var FETCH_TIMEOUT_MS = 6000;
  var SERIES_POINTS = 120;
  var SVGNS = 'http://www.w3.org/2000/svg';

  var last = null;          // the last picture
  var lastAt = 0;           // when it arrived (this browser's clock)
  var failing = null;       // the last poll's error, or null

  // ---- small helpers ---------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  // h('div', {class: 'x', 'data-a': 1}, child, 'text', [more]) — text is always a text node.
  function h(tag, attrs) {
    var el = document.createElement(tag);
    setAttrs(el, attrs);
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function s(tag, attrs) {
    var el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (var k in attrs) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      el.setAttribute(k, String(v));
    }
  }
  function add(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { for (var i = 0; i < c.length; i++) add(el, c[i]); return; }
    if (typeof c === 'object' && c.nodeType) { el.appendChild(c); return; }
    el.appendChild(document.createTextNode(String(c)));
  }
  function fill(el, children) {
    while (el.firstChild) el.removeChild(el.firstChild);
    add(el, children);
  }
  function text(id, v) { var el = $(id); if (el) el.textContent = String(v); }
  function num(v) { return typeof v === 'number' && isFinite(v) ? v : 0; }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function str(v) { return v === null || v === undefined ? '' : String(v); }

  function fmtBytes(b) {
    b = num(b);
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    var i = 0;
    while (Math.abs(b) >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? String(Math.round(b)) : b.toFixed(b >= 100 ? 0 : 1)) + ' ' + u[i];
  }
  function fmtNum(v) {
    v = num(v);
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    if (Math.abs(v) >= 100) return String(Math.round(v));
    if (Math.abs(v) >= 10) return v.toFixed(1).replace(/\.0$/, '');
    return v.toFixed(2).replace(/\.?0+$/, '') || '0';
  }
  function fmtDur(ms) {
    ms = Math.max(0, num(ms));
    if (ms < 1000) return Math.round(ms) + ' ms';
    var sec = ms / 1000;
    if (sec < 60) return (sec < 10 ? sec.toFixed(1) : String(Math.round(sec))) + ' s';
    var m = Math.floor(sec / 60);
    if (m < 60) return m + ' m ' + Math.floor(sec % 60) + ' s';
    var hr = Math.floor(m / 60);
    if (hr < 24) return hr + ' h ' + (m % 60) + ' m';
    return Math.floor(hr / 24) + ' d ' + (hr % 24) + ' h';
  }
  function fmtAgo(ms) {
    ms = num(ms);
    if (ms < 1500) return 'just now';
    return fmtDur(ms).replace(/ \d+ (s|m|h)$/, '') + ' ago';
  }
  function pad2(n) { return (n < 10 ? '0' : '') + n; }
  function clock(ms) {
    var d = new Date(num(ms));
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }
  function lastOf(a) { a = arr(a); return a.length ? num(a[a.length - 1]) : 0; }
  // The newest point is often still filling: "now" is the mean of the last three.
  function recent(a) {
    a = arr(a);
    var n = Math.min(3, a.length);
    if (!n) return 0;
    var t = 0;
    for (var i = a.length - n; i < a.length; i++) t += num(a[i]);
    return t / n;
  }
  function peak(a) { var m = 0; arr(a).forEach(function (v) { if (num(v) > m) m = num(v); }); return m; }
  // The server's "now" as seen from here (the server and browser clocks may differ).
  function serverNow() { return last ? num(last.atMs) + (Date.now() - lastAt) : Date.now(); }
  function nodeHealth(id) {
    if (!last) return 'unknown';
    var n = arr(last.nodes).filter(function (x) { return x.id === id; })[0];
    return n ? str(n.health) : 'unknown';
  }

  // A sparkline: the series right-aligned in SERIES_POINTS slots (a young series fills from the
  // right), scaled to max(its peak, minMax).
  function sparkline(values, cls, opts) {
    opts = opts || {};
    var W = 240, H = opts.height || 60;
    var vs = arr(values).slice(-SERIES_POINTS).map(num);
    var max = Math.max(peak(vs), opts.minMax || 1);
    var step = W / (SERIES_POINTS - 1);
    var x0 = W - (vs.length - 1) * step;
    var pts = vs.map(function (v, i) {
      return [x0 + i * step, H - 2 - (v / max) * (H - 4)];
    });
    var svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', class: 'spark ' + cls, role: 'img', 'aria-label': opts.label || '' });
    if (opts.label) svg.appendChild(s('title', null, opts.label));
    svg.appendChild(s('line', { class: 'base', x1: 0, x2: W, y1: H - 1.5, y2: H - 1.5, 'vector-effect': 'non-scaling-stroke' }));
    if (pts.length >= 2) {
      var line = pts.map(function (p) { return p[0].toFixed(1) + ',' + p[1].toFixed(1); }).join(' ');
      var area = 'M' + pts[0][0].toFixed(1) + ',' + (H - 1.5) + ' L' + line.split(' ').join(' L') + ' L' + pts[pts.length - 1][0].toFixed(1) + ',' + (H - 1.5) + ' Z';
      svg.appendChild(s('path', { class: 'area', d: area }));
      svg.appendChild(s('polyline', { class: 'line', points: line, 'vector-effect': 'non-scaling-stroke' }));
    }
    return svg;
  }

  // ---- sections --------------------------------------------------------------------------------
  function drawHeader(p) {
    var ch = $('cluster-health');
    var problems = arr(p.problems);
    ch.setAttribute('data-healthy', p.healthy ? 'true' : 'false');
    ch.textContent = p.healthy ? 'Healthy' : (problems.length === 1 ? '1 problem' : problems.length + ' problems');
    text('cluster-id', str(p.clusterId) || '—');
    var m = p.master || {};
    var ml = $('master-leader');
    ml.setAttribute('data-node-id', String(num(m.leader)));
    ml.textContent = m.leader ? 'node ' + m.leader : 'none';
    ml.title = str(m.leaderAddress);
    text('master-address', str(m.leaderAddress));
    text('master-term', String(num(m.term)));
    text('map-version', String(num(p.mapVersion)));
    document.title = 'PolyFS · ' + (p.healthy ? 'healthy' : ch.textContent);
    setFavicon(p.healthy ? '#1e9b57' : '#d43f3f');
  }

  var favColor = '';
  function setFavicon(color) {
    if (color === favColor) return;
    favColor = color;
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="' + color + '"/></svg>';
    $('favicon').setAttribute('href', 'data:image/svg+xml,' + encodeURIComponent(svg));
  }

  function drawProblems(p) {
    var problems = arr(p.problems);
    var box = $('problems');
    box.hidden = problems.length === 0;
    text('problems-count', problems.length ? '(' + problems.length + ')' : '');
    fill($('problem-list'), problems.map(function (x) { return h('li', null, str(x)); }));
  }

  function drawOverview(p) {
    var nodes = arr(p.nodes).filter(function (n) { return n.health !== 'removed'; });
    var up = nodes.filter(function (n) { return n.health === 'up'; }).length;
    var regions = arr(p.regions);
    var ok = regions.filter(function (r) { return r.health === 'ok'; }).length;
    var settings = p.settings || {};
    var tasks = arr(p.tasks).filter(function (t) { return !t.finishedMs; }).length;
    function tile(id, k, v, of, cls) {
      return h('div', { class: 'tile', id: id }, h('div', { class: 'k' }, k), h('div', { class: 'v' + (cls ? ' ' + cls : '') }, String(v), of === null ? null : h('small', null, ' / ' + of)));
    }
    fill($('summary-tiles'), [
      tile('tile-nodes', 'Nodes up', up, nodes.length, up < nodes.length ? 'bad' : ''),
      tile('tile-regions', 'Regions ok', ok, regions.length, ok < regions.length ? (regions.some(function (r) { return r.health === 'unavailable'; }) ? 'bad' : 'warn') : ''),
      tile('tile-replicas', 'Replicas', num(settings.dataReplicas), null, ''),
      tile('tile-tasks', 'Tasks running', tasks, null, ''),
    ]);
    text('settings-line', 'down after ' + fmtDur(num(settings.downAfterMs)));
    var t = p.totals || {};
    var stepS = num(t.stepMs) / 1000 || 1;
    chart('chart-kv-ops', arr(t.kvOps), 's-kv', 'ops/s', 'KV ops per second', 1, stepS);
    chart('chart-fuse-ops', arr(t.fuseOps), 's-fuse', 'ops/s', 'FUSE ops per second', 1, stepS);
    chart('chart-kv-latency', arr(t.kvLatencyMs), 's-lat', 'ms', 'KV latency (ms, mean weighted by ops)', 1, stepS);
  }

  function chart(id, values, cls, unit, label, minMax, stepS) {
    var box = $(id);
    var nowEl = box.querySelector('.now');
    fill(nowEl, [fmtNum(recent(values)), h('small', null, unit)]);
    box.querySelector('.peak').textContent = 'peak ' + fmtNum(peak(values)) + ' ' + unit;
    var old = box.querySelector('svg');
    var svg = sparkline(values, cls, { label: label, minMax: minMax, height: 64 });
    if (old) box.replaceChild(svg, old); else box.insertBefore(svg, box.querySelector('.axis'));
    box.querySelector('.axis .from').textContent = '-' + fmtDur(SERIES_POINTS * stepS * 1000).replace(/ 0 s$/, '');
  }

  function metric(k, v, cls, title) {
    return h('div', { class: 'metric', title: title || null }, h('div', { class: 'k' }, k), h('div', { class: 'v' + (cls ? ' ' + cls : '') }, v));
  }

  function drawNodes(p) {
    var now = serverNow();
    var nodes = arr(p.nodes).slice().sort(function (a, b) { return num(a.id) - num(b.id); });
    text('nodes-count', nodes.length ? '(' + nodes.filter(function (n) { return n.health === 'up'; }).length + ' of ' + nodes.length + ' up)' : '');
    fill($('node-list'), nodes.length ? nodes.map(function (n) {
      var health = str(n.health) || 'unknown';
      var cap = num(n.capacityBytes), free = num(n.freeBytes);
      var used = cap > 0 ? Math.min(1, Math.max(0, (cap - free) / cap)) : 0;
      var cpu = num(n.cpuCores) * 100;
      var lag = num(n.loopLagMs);
      var hb = n.lastHeartbeatMs ? now - num(n.lastHeartbeatMs) : -1;
      var live = health === 'up';
      var kv = arr(n.kvOps), fuse = arr(n.fuseOps);
      var fuseShown = peak(fuse) > 0;
      var self = !!n.httpAddress && str(n.httpAddress) === location.host;
      return h('div', { class: 'card node', 'data-node-id': n.id, 'data-health': health, 'data-self': self ? 'true' : null },
        h('div', { class: 'top' },
          h('span', { class: 'name' }, 'node ' + n.id),
          h('span', { class: 'badge h-' + health, 'data-role': 'health' }, health),
          self ? h('span', { class: 'self', title: 'this page is served by this node' }, 'this page') : null,
          h('span', { class: 'addr mono', title: 'gRPC address' }, str(n.address))),
        h('div', { class: 'roles' }, arr(n.roles).length ? arr(n.roles).map(function (r) {
          return h('span', { class: 'role r-' + str(r) }, str(r) === 'master-leader' ? '★ master leader' : str(r) === 'master-learner' ? 'master learner' : str(r));
        }) : h('span', { class: 'role' }, 'no roles')),
        h('div', { class: 'disk' },
          h('div', { class: 'label' }, h('span', null, 'Disk ' + (cap ? Math.round(used * 100) + '% used' : 'unknown')), h('span', null, cap ? fmtBytes(free) + ' free of ' + fmtBytes(cap) : '')),
          h('div', { class: 'bar' + (used > 0.9 ? ' bad' : used > 0.75 ? ' warn' : ''), role: 'meter', 'aria-valuenow': Math.round(used * 100), 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('span', { style: 'width:' + (used * 100).toFixed(1) + '%' }))),
        h('div', { class: 'metrics' },
          metric('RSS', n.rssBytes ? fmtBytes(n.rssBytes) : '—'),
          metric('CPU', live ? cpu.toFixed(cpu < 10 ? 1 : 0) + ' %' : '—', cpu > 150 ? 'bad' : cpu > 80 ? 'warn' : '', '100 % = one core'),
          metric('Loop lag', live ? (lag < 10 ? lag.toFixed(1) : Math.round(lag)) + ' ms' : '—', lag > 200 ? 'bad' : lag > 50 ? 'warn' : '', 'event-loop delay'),
          metric('Heartbeat', hb < 0 ? 'never' : fmtAgo(hb), hb > num((p.settings || {}).downAfterMs || 10000) ? 'bad' : hb > 3000 ? 'warn' : '', 'last heartbeat the master received'),
          metric('Uptime', live && n.uptimeMs ? fmtDur(n.uptimeMs) : '—'),
          metric('Replicas', num(n.replicas) + ' · ' + num(n.leads) + ' led', '', 'data region replicas it hosts, and how many it leads')),
        h('div', { class: 'spark' },
          h('div', { class: 'lbl' },
            h('span', { class: 'kv' }, 'KV ', h('b', null, fmtNum(recent(kv))), ' ops/s'),
            fuseShown ? h('span', { class: 'fuse' }, 'FUSE ', h('b', null, fmtNum(recent(fuse))), ' ops/s') : null,
            h('span', null, 'latency ', h('b', null, fmtNum(recent(arr(n.kvLatencyMs)))), ' ms')),
          sparkline(kv, 's-kv', { label: 'node ' + n.id + ' KV ops/s over the last 2 minutes', height: 32 })),
        h('div', { class: 'foot' },
          n.httpAddress ? h('span', null, 'http ', h('a', { href: 'http://' + str(n.httpAddress) + '/' }, str(n.httpAddress))) : h('span', null, 'no http'),
          h('span', { title: 'the master\'s state for it' }, str(n.masterState))),
        n.error ? h('div', { class: 'error' }, str(n.error)) : null);
    }) : h('div', { class: 'empty' }, 'no nodes in the cluster map'));
  }

  function drawMaster(p) {
    var m = p.master || {};
    var voters = arr(m.voters), learners = arr(m.learners);
    var members = voters.map(function (id) { return { id: id, role: id === m.leader ? 'leader' : 'voter' }; })
      .concat(learners.map(function (id) { return { id: id, role: 'learner' }; }));
    fill($('master-members'), members.length ? members.map(function (x) {
      var live = nodeHealth(x.id) === 'up';
      return h('span', { class: 'member', 'data-member-id': x.id, 'data-role': x.role, 'data-live': live ? 'true' : 'false', title: 'node ' + x.id + ' is ' + nodeHealth(x.id) },
        h('span', { class: 'dot' }), h('b', null, 'node ' + x.id), h('span', { class: 'mrole' }, x.role === 'leader' ? '★ leader' : x.role));
    }) : h('span', { class: 'empty' }, 'no members'));
    var quorum = Math.floor(voters.length / 2) + 1;
    var liveVoters = voters.filter(function (id) { return nodeHealth(id) === 'up'; }).length;
    text('master-quorum', voters.length ? liveVoters + ' of ' + voters.length + ' voters live, quorum ' + quorum : '');
  }

  function keyText(hex, open) {
    hex = str(hex);
    if (!hex) return open;
    return hex.length > 16 ? hex.slice(0, 14) + '…' : hex;
  }

  function drawRegions(p) {
    var regions = arr(p.regions);
    var ids = [];
    arr(p.nodes).forEach(function (n) { if (n.health !== 'removed') ids.push(n.id); });
    regions.forEach(function (r) { arr(r.replicas).forEach(function (x) { if (ids.indexOf(x.nodeId) < 0) ids.push(x.nodeId); }); });
    ids.sort(function (a, b) { return a - b; });
    var bad = regions.filter(function (r) { return r.health !== 'ok'; }).length;
    text('regions-count', '(' + regions.length + (bad ? ', ' + bad + ' not ok' : '') + ')');
    var head = h('tr', null,
      h('th', null, 'Region'), h('th', null, 'Keys'), h('th', null, 'Epoch'), h('th', null, 'Size'),
      ids.map(function (id) {
        var hl = nodeHealth(id);
        return h('th', { class: 'nodecol', 'data-node-id': id, 'data-health': hl }, 'node ' + id, h('span', { class: 'sub' }, hl));
      }),
      h('th', null, 'Health'));
    var rows = regions.map(function (r) {
      var health = str(r.health) || 'ok';
      var byNode = {};
      arr(r.replicas).forEach(function (x) { byNode[x.nodeId] = x; });
      return h('tr', { 'data-region-id': r.id, 'data-health': health },
        h('td', { class: 'rid' }, '#' + r.id),
        h('td', { class: 'mono keys', title: (str(r.startKey) || '(start)') + ' … ' + (str(r.endKey) || '(end)') }, keyText(r.startKey, '−∞') + ' … ' + keyText(r.endKey, '+∞')),
        h('td', { class: 'mono epoch', title: 'epoch (conf version / version) ' + str(r.epoch) }, str(r.epoch)),
        h('td', { class: 'size' }, fmtBytes(r.sizeBytes)),
        ids.map(function (id) {
          var x = byNode[id];
          if (!x) return h('td', { class: 'cell', 'data-node-id': id, 'data-role': 'absent' }, h('span', { class: 'absent' }, '—'));
          var role = str(x.role);
          return h('td', { class: 'cell', 'data-node-id': id, 'data-role': role, 'data-live': x.live ? 'true' : 'false' },
            h('span', { class: 'rep ' + role + (x.live ? '' : ' dead'), title: 'node ' + id + ': ' + role + (x.live ? '' : ' (not live: node is ' + nodeHealth(id) + ')') + ', applied index ' + num(x.appliedIndex) },
              h('span', { class: 'role-name' }, (role === 'leader' ? '★ ' : '') + role), x.live ? h('small', null, 'applied ' + num(x.appliedIndex)) : h('small', null, '✕ ' + nodeHealth(id))));
        }),
        h('td', null, h('span', { class: 'badge h-' + health }, health), r.why ? h('div', { class: 'why' }, str(r.why)) : null));
    });
    fill($('region-table'), [h('thead', null, head), h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: 5 + ids.length, class: 'empty' }, 'no regions')))]);
  }

  function fmtAmount(v, unit) { return unit === 'bytes' ? fmtBytes(v) : fmtNum(v) + ' ' + str(unit); }

  function drawTasks(p) {
    var now = serverNow();
    var all = arr(p.tasks);
    var running = all.filter(function (t) { return !t.finishedMs; });
    var finished = all.filter(function (t) { return t.finishedMs; }).sort(function (a, b) { return num(b.finishedMs) - num(a.finishedMs); }).slice(0, 8);
    text('tasks-count', '(' + running.length + ' running' + (finished.length ? ', ' + finished.length + ' recent' : '') + ')');
    var shown = running.concat(finished);
    fill($('task-list'), shown.length ? shown.map(function (t) {
      var state = t.finishedMs ? (t.failed ? 'failed' : 'finished') : 'running';
      var total = num(t.total), done = num(t.done);
      var frac = total > 0 ? Math.min(1, done / total) : (state === 'finished' ? 1 : 0);
      var pct = Math.round(frac * 100);
      return h('div', { class: 'task', 'data-task-id': str(t.id), 'data-state': state, 'data-kind': str(t.kind) },
        h('div', { class: 'row1' },
          h('span', { class: 'label', title: str(t.label) }, str(t.label)),
          h('span', { class: 'kind' }, str(t.kind)),
          h('span', { class: 'pct state-' + state }, state === 'failed' ? '✕ failed' : state === 'finished' ? '✓ ' + pct + ' %' : pct + ' %')),
        h('div', { class: 'bar', role: 'progressbar', 'aria-valuenow': pct, 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('span', { style: 'width:' + (frac * 100).toFixed(1) + '%' })),
        h('div', { class: 'row3' },
          h('span', null, fmtAmount(done, t.unit) + ' of ' + (total ? fmtAmount(total, t.unit) : '?')),
          state === 'running' ? h('span', null, (t.unit === 'bytes' ? fmtBytes(t.rate) : fmtNum(t.rate) + ' ' + str(t.unit)) + '/s') : null,
          state === 'running' ? h('span', null, 'ETA ' + (num(t.etaMs) > 0 ? fmtDur(t.etaMs) : '—')) : null,
          state === 'running' ? h('span', null, 'started ' + fmtAgo(now - num(t.startedMs))) : h('span', null, 'took ' + fmtDur(num(t.finishedMs) - num(t.startedMs)) + ', ' + fmtAgo(now - num(t.finishedMs))),
          t.nodeId ? h('span', null, 'node ' + t.nodeId) : null));
    }) : h('div', { class: 'empty' }, 'nothing running'));
  }

  function drawEvents(p) {
    var now = serverNow();
    var evs = arr(p.events).slice().sort(function (a, b) { return num(b.atMs) - num(a.atMs); });
    text('events-count', '(' + evs.length + ')');
    var list = $('event-list');
    fill(list, evs.map(function (e) {
      var level = str(e.level) || 'info';
      return h('li', { 'data-level': level, 'data-kind': str(e.kind), 'data-node-id': num(e.nodeId), 'data-subject-node': num(e.subjectNode), 'data-region-id': num(e.regionId) },
        h('span', { class: 'lvl', title: level }),
        h('time', { datetime: new Date(num(e.atMs)).toISOString(), title: new Date(num(e.atMs)).toString() }, clock(e.atMs)),
        h('div', { class: 'msg' },
          h('div', { class: 'msg-text' }, str(e.message)),
          h('div', { class: 'meta' }, h('span', { class: 'kind' }, str(e.kind)), h('span', null, fmtAgo(now - num(e.atMs))), e.nodeId ? h('span', null, 'reported by node ' + e.nodeId) : null)));
    }));
    $('events-empty').hidden = evs.length > 0;
  }

  function draw(p) {
    var steps = [drawHeader, drawProblems, drawOverview, drawNodes, drawMaster, drawRegions, drawTasks, drawEvents];
    for (var i = 0; i < steps.length; i++) {
      try { steps[i](p); } catch (err) { console.warn('status page: drawing failed', err); }
    }
    document.body.setAttribute('data-loaded', 'true');
    document.body.setAttribute('data-picture-at', String(num(p.atMs)));
  }

  // ---- freshness and polling -------------------------------------------------------------------
  function tick() {
    var u = $('updated');
    if (!lastAt) { u.textContent = failing ? 'never' : 'loading…'; }
    else {
      var age = Date.now() - lastAt;
      u.textContent = age < 1500 ? 'just now' : fmtAgo(age);
    }
    u.setAttribute('data-stale', failing ? 'true' : 'false');
    var b = $('conn-banner');
    b.hidden = !failing;
    document.body.setAttribute('data-state', failing ? 'stale' : lastAt ? 'ok' : 'loading');
    if (failing) {
      text('conn-error', failing);
      text('conn-kept', lastAt ? 'Showing the picture from ' + fmtAgo(Date.now() - lastAt) + '; retrying every ' + (POLL_MS / 1000) + ' s.' : 'Nothing to show yet; retrying every ' + (POLL_MS / 1000) + ' s.');
    }
  }

  function poll() {
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctl) ctl.abort(); }, FETCH_TIMEOUT_MS);
    fetch('/api/status', { cache: 'no-store', headers: { accept: 'application/json' }, signal: ctl ? ctl.signal : undefined })
      .then(function (res) {
        return res.text().then(function (body) {
          var data = null;
          try { data = JSON.parse(body); } catch (e) { data = null; }
          if (!res.ok) throw new Error('HTTP ' + res.status + (data && data.error ? ': ' + data.error : ''));
          if (!data || typeof data !== 'object' || !Array.isArray(data.nodes)) throw new Error('not a cluster picture');
          return data;
        });
      })
      .then(function (p) {
        last = p; lastAt = Date.now(); failing = null;
        draw(p);
      }, function (err) {
        failing = err && err.name === 'AbortError' ? 'no answer within ' + (FETCH_TIMEOUT_MS / 1000) + ' s' : str(err && err.message ? err.message : err);
      })
      .then(function () {
        clearTimeout(timer);
        tick();
        setTimeout(poll, POLL_MS);
      });
  }

  setInterval(tick, 1000);
  tick();
  poll();
})();
`
