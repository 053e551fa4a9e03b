// The status page's stylesheet (inline in the page: nothing is loaded from outside).
export const STYLE = String.raw`
:root {
  --bg: #f3f5f9; --card: #fff; --line: #e2e6ee; --line2: #eef1f6;
  --text: #1c2333; --muted: #6a7386; --faint: #9aa2b1;
  --green: #1e9b57; --green-bg: #e5f6ec; --red: #d43f3f; --red-bg: #fdeded;
  --amber: #c77c02; --amber-bg: #fff4dc; --blue: #2d6cdf; --blue-bg: #e8f0fd;
  --violet: #7c4ddb; --violet-bg: #f1ebfd; --grey-bg: #eef0f4;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
  --radius: 10px;
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body { background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", sans-serif; }
.mono { font-family: var(--mono); font-size: 12.5px; }
.muted { color: var(--muted); }
[hidden] { display: none !important; }

/* Top bar */
#topbar { position: sticky; top: 0; z-index: 5; background: #151b28; color: #e9edf5; box-shadow: 0 1px 0 rgba(0,0,0,.2); }
#topbar .inner { max-width: 1440px; margin: 0 auto; padding: 10px 24px; display: flex; align-items: center; gap: 22px; flex-wrap: wrap; }
.brand { font-weight: 700; font-size: 18px; letter-spacing: .2px; display: flex; align-items: center; gap: 9px; }
.brand .logo { width: 22px; height: 22px; border-radius: 6px; background: linear-gradient(135deg, #4f8cff, #7c4ddb); display: inline-block; }
.hstat { display: flex; flex-direction: column; line-height: 1.2; }
.hstat .k { font-size: 10.5px; text-transform: uppercase; letter-spacing: .7px; color: #8d97ab; }
.hstat .v { font-size: 14px; color: #fff; }
.hstat .v.mono { font-size: 12.5px; }
.hstat .v, #master-address { max-width: 340px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#master-address { display: inline-block; max-width: 200px; vertical-align: bottom; }
.spacer { flex: 1; }
#cluster-health { font-weight: 700; font-size: 13px; padding: 5px 12px 5px 10px; border-radius: 999px; display: inline-flex; align-items: center; gap: 7px; background: #2a3245; color: #cfd6e4; }
#cluster-health::before { content: ""; width: 9px; height: 9px; border-radius: 50%; background: #8d97ab; }
#cluster-health[data-healthy="true"] { background: rgba(30,155,87,.18); color: #5fe39a; }
#cluster-health[data-healthy="true"]::before { background: #35d07f; box-shadow: 0 0 0 3px rgba(53,208,127,.25); }
#cluster-health[data-healthy="false"] { background: rgba(212,63,63,.22); color: #ff9a9a; }
#cluster-health[data-healthy="false"]::before { background: #ff5b5b; box-shadow: 0 0 0 3px rgba(255,91,91,.25); }
#updated[data-stale="true"] { color: #ffb648; }

/* Banner and problems */
#conn-banner { background: var(--red); color: #fff; font-weight: 600; }
#conn-banner .inner { max-width: 1440px; margin: 0 auto; padding: 9px 24px; display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
#conn-banner .detail { font-weight: 400; opacity: .9; font-family: var(--mono); font-size: 12.5px; }

main { max-width: 1440px; margin: 0 auto; padding: 18px 24px 40px; display: flex; flex-direction: column; gap: 18px; }
section > h2, .card > h2 { margin: 0 0 10px; font-size: 13px; text-transform: uppercase; letter-spacing: .8px; color: var(--muted); font-weight: 650; display: flex; align-items: baseline; gap: 10px; }
h2 .count { font-weight: 500; text-transform: none; letter-spacing: 0; color: var(--faint); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius); padding: 14px 16px; box-shadow: 0 1px 2px rgba(20,30,50,.04); }
#problems { border-color: #f3c1c1; background: #fff8f8; border-left: 4px solid var(--red); }
#problems h2 { color: var(--red); }
#problems ul { margin: 0; padding-left: 18px; }
#problems li { margin: 2px 0; }
.empty { color: var(--faint); font-style: italic; padding: 6px 0; }

/* Overview */
#overview { display: grid; grid-template-columns: minmax(230px, 1fr) repeat(3, minmax(220px, 1.3fr)); gap: 14px; }
.tiles { display: grid; grid-template-columns: 1fr 1fr; gap: 10px 14px; }
.tile .k { font-size: 11px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); }
.tile .v { font-size: 22px; font-weight: 650; line-height: 1.2; }
.tile .v small { font-size: 13px; font-weight: 500; color: var(--muted); }
.tile .v.bad { color: var(--red); }
.tile .v.warn { color: var(--amber); }
.chart .head { display: flex; align-items: baseline; justify-content: space-between; gap: 8px; }
.chart .now { font-size: 22px; font-weight: 650; }
.chart .now small { font-size: 12px; font-weight: 500; color: var(--muted); margin-left: 3px; }
.chart .peak { font-size: 11.5px; color: var(--faint); }
.chart svg { display: block; width: 100%; height: 64px; margin-top: 6px; }
.chart .axis { display: flex; justify-content: space-between; font-size: 10.5px; color: var(--faint); margin-top: 2px; }
svg .area { stroke: none; }
svg .line { fill: none; stroke-width: 1.6; stroke-linejoin: round; stroke-linecap: round; }
svg .base { stroke: var(--line); stroke-width: 1; }
.s-kv .line { stroke: var(--blue); } .s-kv .area { fill: rgba(45,108,223,.12); }
.s-fuse .line { stroke: var(--violet); } .s-fuse .area { fill: rgba(124,77,219,.12); }
.s-lat .line { stroke: var(--amber); } .s-lat .area { fill: rgba(199,124,2,.12); }

/* Nodes */
#node-list { display: grid; grid-template-columns: repeat(auto-fit, minmax(310px, 1fr)); gap: 14px; }
.node { border-left: 4px solid var(--green); display: flex; flex-direction: column; gap: 9px; }
.node[data-health="down"], .node[data-health="unreachable"] { border-left-color: var(--red); background: #fffafa; }
.node[data-health="unknown"] { border-left-color: var(--amber); }
.node[data-health="removed"] { border-left-color: var(--faint); opacity: .65; }
.node .top { display: flex; align-items: center; gap: 8px; }
.node .name { font-weight: 700; font-size: 16px; }
.node .self { font-size: 11px; color: var(--muted); border: 1px dashed var(--faint); border-radius: 999px; padding: 0 7px; }
.node .addr { margin-left: auto; color: var(--muted); }
.badge { display: inline-block; font-size: 11px; font-weight: 700; text-transform: uppercase; letter-spacing: .5px; padding: 2px 8px; border-radius: 999px; background: var(--grey-bg); color: var(--muted); white-space: nowrap; }
.badge.h-up, .badge.h-ok { background: var(--green-bg); color: var(--green); }
.badge.h-down, .badge.h-unreachable, .badge.h-unavailable { background: var(--red-bg); color: var(--red); }
.badge.h-unknown, .badge.h-under-replicated { background: var(--amber-bg); color: var(--amber); }
.badge.h-removed { background: var(--grey-bg); color: var(--faint); }
.roles { display: flex; gap: 5px; flex-wrap: wrap; min-height: 20px; }
.role { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-size: 11.5px; padding: 1px 8px; border-radius: 5px; background: var(--grey-bg); color: var(--muted); border: 1px solid transparent; }
.role.r-master-leader { background: var(--blue); color: #fff; font-weight: 600; }
.role.r-master { background: var(--blue-bg); color: var(--blue); }
.role.r-master-learner { background: var(--violet-bg); color: var(--violet); }
.role.r-data { background: #fff; border-color: var(--line); color: var(--text); }
.disk .label { display: flex; justify-content: space-between; font-size: 12px; color: var(--muted); margin-bottom: 3px; }
.bar { height: 8px; background: var(--line2); border-radius: 999px; overflow: hidden; }
.bar > span { display: block; height: 100%; background: var(--blue); border-radius: 999px; }
.bar.warn > span { background: var(--amber); }
.bar.bad > span { background: var(--red); }
.metrics { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6px 10px; }
.metric .k { font-size: 10.5px; text-transform: uppercase; letter-spacing: .5px; color: var(--faint); }
.metric .v { font-size: 13.5px; font-weight: 600; font-variant-numeric: tabular-nums; }
.metric .v.warn { color: var(--amber); }
.metric .v.bad { color: var(--red); }
.node .spark { border-top: 1px solid var(--line2); padding-top: 7px; }
.node .spark svg { display: block; width: 100%; height: 32px; margin-top: 3px; }
.node .spark .lbl { display: flex; gap: 14px; font-size: 11.5px; color: var(--muted); white-space: nowrap; }
.node .spark .lbl b { color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }
.node .spark .lbl .fuse b { color: var(--violet); }
.node .spark .lbl .kv b { color: var(--blue); }
.node .foot { display: flex; justify-content: space-between; gap: 8px; font-size: 11.5px; color: var(--muted); font-family: var(--mono); }
.node .foot span { min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.node .error { color: var(--red); font-size: 12px; font-family: var(--mono); word-break: break-word; background: var(--red-bg); border-radius: 6px; padding: 5px 8px; }
.node a { color: inherit; }

/* Master group */
#master-members { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
.member { display: inline-flex; align-items: center; gap: 6px; border: 1px solid var(--line); border-radius: 8px; padding: 4px 10px; background: #fff; }
.member .dot { width: 8px; height: 8px; border-radius: 50%; background: var(--green); }
.member[data-live="false"] .dot { background: var(--red); }
.member[data-live="false"] { border-color: #f3c1c1; background: #fff8f8; }
.member[data-role="leader"] { border-color: var(--blue); box-shadow: inset 0 0 0 1px var(--blue); }
.member .mrole { font-size: 11px; color: var(--muted); }
.member[data-role="leader"] .mrole { color: var(--blue); font-weight: 700; }
.master-line { display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
.master-line h2 { margin: 0; font-size: 13px; text-transform: uppercase; letter-spacing: .8px; color: var(--muted); font-weight: 650; }

/* Regions */
.table-wrap { overflow-x: auto; }
table { border-collapse: separate; border-spacing: 0; width: 100%; }
th { text-align: left; font-size: 11px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); font-weight: 650; padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th .sub { display: block; font-weight: 400; text-transform: none; letter-spacing: 0; color: var(--faint); font-family: var(--mono); font-size: 11px; }
th.nodecol, td.cell { text-align: center; }
th.nodecol[data-health="down"], th.nodecol[data-health="unreachable"] { color: var(--red); }
td { padding: 7px 10px; border-bottom: 1px solid var(--line2); vertical-align: middle; }
tr:last-child td { border-bottom: none; }
tr[data-health="under-replicated"] td { background: var(--amber-bg); }
tr[data-health="under-replicated"] td:first-child { box-shadow: inset 4px 0 0 var(--amber); }
tr[data-health="unavailable"] td { background: var(--red-bg); }
tr[data-health="unavailable"] td:first-child { box-shadow: inset 4px 0 0 var(--red); }
.rid { font-weight: 700; }
td.keys, td.epoch, td.size { white-space: nowrap; }
td.epoch { max-width: 160px; overflow: hidden; text-overflow: ellipsis; }
.why { font-size: 12px; color: var(--text); margin-top: 3px; }
tr[data-health="unavailable"] .why { color: var(--red); }
tr[data-health="under-replicated"] .why { color: #8a5600; }
.rep { display: inline-flex; flex-direction: column; align-items: center; min-width: 74px; padding: 3px 8px; border-radius: 7px; font-size: 12px; font-weight: 600; line-height: 1.25; }
.rep small { font-weight: 400; font-size: 10.5px; opacity: .8; font-family: var(--mono); }
.rep.leader { background: var(--blue); color: #fff; }
.rep.follower { background: var(--blue-bg); color: var(--blue); }
.rep.learner { background: var(--violet-bg); color: var(--violet); border: 1px dashed var(--violet); }
.rep.dead { background: #fff; color: var(--red); border: 1px solid var(--red); }
.rep.dead .role-name { text-decoration: line-through; }
.absent { color: var(--faint); }

/* Tasks and events */
.twocol { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.25fr); gap: 18px; align-items: start; }
#task-list { display: flex; flex-direction: column; gap: 12px; }
.task .row1 { display: flex; gap: 8px; align-items: baseline; }
.task .label { font-weight: 600; flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.task .pct { font-variant-numeric: tabular-nums; font-weight: 700; }
.task .row3 { display: flex; gap: 14px; font-size: 12px; color: var(--muted); margin-top: 3px; flex-wrap: wrap; font-variant-numeric: tabular-nums; }
.task .bar { margin-top: 4px; height: 9px; }
.task[data-state="running"] .bar > span { background: linear-gradient(90deg, var(--blue), #5d8ff0); }
.task[data-state="finished"] .bar > span { background: var(--green); }
.task[data-state="failed"] .bar > span { background: var(--red); }
.task[data-state="finished"] { opacity: .72; }
.kind { font-size: 11px; padding: 1px 7px; border-radius: 5px; background: var(--grey-bg); color: var(--muted); white-space: nowrap; font-weight: 500; }
.state-running { color: var(--blue); } .state-finished { color: var(--green); } .state-failed { color: var(--red); }
#events ul { list-style: none; margin: 0; padding: 0; max-height: 460px; overflow-y: auto; }
#events li { display: grid; grid-template-columns: 8px 66px minmax(0, 1fr); gap: 4px 10px; align-items: baseline; padding: 6px 4px; border-bottom: 1px solid var(--line2); }
#events li:last-child { border-bottom: none; }
#events .lvl { width: 8px; height: 8px; border-radius: 50%; background: var(--blue); align-self: center; }
#events li[data-level="warn"] .lvl { background: var(--amber); }
#events li[data-level="error"] .lvl { background: var(--red); }
#events li[data-level="warn"] { background: #fffbf0; }
#events li[data-level="error"] { background: #fff6f6; }
#events time { font-family: var(--mono); font-size: 12px; color: var(--muted); }
#events .msg { min-width: 0; }
#events .meta { display: flex; gap: 8px; align-items: baseline; font-size: 11.5px; color: var(--faint); margin-top: 1px; }
#events li[data-level="error"] .msg-text { color: var(--red); }
#events li[data-level="warn"] .msg-text { color: #8a5600; }
footer { max-width: 1440px; margin: 0 auto; padding: 0 24px 24px; color: var(--faint); font-size: 12px; }

@media (max-width: 1100px) { #overview { grid-template-columns: 1fr 1fr; } .twocol { grid-template-columns: 1fr; } }
@media (max-width: 640px) { #overview { grid-template-columns: 1fr; } .metrics { grid-template-columns: 1fr 1fr; } }
`
