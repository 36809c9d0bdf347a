/**
 * The on-prem app of the benchmark, in its own process so it never shares an event loop with the
 * load or the tunnel. Both the direct runs and the tunnel runs reach this same process.
 *
 *   GET  /small      → 100 bytes
 *   GET  /bytes?n=N  → N pattern bytes in 64 KiB writes (with back-pressure)
 *   POST /echo       → the body back, streamed
 *   WS   /ws         → WebSocket echo
 *
 * Tells its parent { port } over IPC when listening; exits when the parent disconnects.
 */
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'
import { PATTERN_BLOCK } from './lib/pattern.ts'

const SMALL = Buffer.alloc(100, 'x')

const server = createServer((req, res) => {
  const url = req.url ?? '/'
  if (url === '/small') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL.length }).end(SMALL)
  } else if (url.startsWith('/bytes?n=')) {
    const n = Number(url.slice('/bytes?n='.length))
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n })
    let left = n
    const pump = (): void => {
      while (left > 0) {
        const take = Math.min(left, PATTERN_BLOCK.length)
        left -= take
        const more = res.write(take === PATTERN_BLOCK.length ? PATTERN_BLOCK : PATTERN_BLOCK.subarray(0, take))
        if (!more) {
          res.once('drain', pump)
          return
        }
      }
      res.end()
    }
    pump()
  } else if (url === '/echo' && req.method === 'POST') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...(req.headers['content-length'] === undefined ? {} : { 'content-length': req.headers['content-length'] }) })
    req.pipe(res)
  } else {
    res.writeHead(404, { 'content-length': 0 }).end()
  }
})
server.keepAliveTimeout = 60_000
server.on('connection', (s) => s.setNoDelay(true))

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
server.on('upgrade', (req, socket, head) => {
  if (req.url !== '/ws') {
    socket.destroy()
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m, isBinary) => ws.send(m, { binary: isBinary })))
})

server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as { port: number }).port })
})
process.on('disconnect', () => process.exit(0))
