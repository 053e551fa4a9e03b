// The status page: one self-contained HTML document (no framework, no CDN) that polls
// /api/status and draws the cluster. Placeholder until the page is written.
export function pageHtml(): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>PolyFS</title></head><body><pre id="s">loading</pre><script>
async function r(){try{const p=await (await fetch('/api/status')).json();document.getElementById('s').textContent=JSON.stringify(p,null,2)}catch(e){document.getElementById('s').textContent=String(e)}}
r();setInterval(r,2000)</script></body></html>`
}
