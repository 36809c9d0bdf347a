import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

/**
 * A small on-prem app for the demo: a page that shows what the tunnel delivered (Host and
 * X-Forwarded-* as the app sees them) and an echo endpoint.
 */
export function createSampleApp(): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'POST' && req.url === '/echo') {
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' })
      req.pipe(res)
      return
    }
    if (req.url === '/api/whoami') {
      const body = JSON.stringify({ host: req.headers.host, forwardedFor: req.headers['x-forwarded-for'], forwardedProto: req.headers['x-forwarded-proto'], forwardedHost: req.headers['x-forwarded-host'] })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
      return
    }
    const esc = (s: unknown): string => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
    const page = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>apptunnel sample app</title></head>
<body><main><h1>Hello from the on-prem sample app</h1>
<p>This page was served by an app on a private network and reached you through apptunnel.</p>
<dl><dt>Host</dt><dd>${esc(req.headers.host)}</dd><dt>X-Forwarded-For</dt><dd>${esc(req.headers['x-forwarded-for'])}</dd>
<dt>X-Forwarded-Proto</dt><dd>${esc(req.headers['x-forwarded-proto'])}</dd><dt>Path</dt><dd>${esc(req.url)}</dd></dl></main></body></html>\n`
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(page) }).end(page)
  })
}
