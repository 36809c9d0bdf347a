import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { WebSocketServer } from 'ws'

export interface TestUpstream {
  port: number
  address: string
  /** requests seen, by path */
  seen: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>
  /** connections whose peer reset or closed them before the response finished */
  aborted: number
  /** TCP connections to the app open now, upgraded ones included */
  openConnections: number
  close(): Promise<void>
}

/** Deterministic bytes for /bytes?n= so a receiver can check a download by hash. */
export function patternBytes(n: number, chunk = 64 * 1024): Generator<Buffer> {
  return (function* () {
    const block = Buffer.alloc(chunk)
    for (let i = 0; i < chunk; i++) block[i] = (i * 31 + 7) & 0xff
    let left = n
    while (left > 0) {
      const take = Math.min(left, chunk)
      yield take === chunk ? block : block.subarray(0, take)
      left -= take
    }
  })()
}

/** Writes n pattern bytes to w in 64 KiB writes, waiting for 'drain' when w is full, then ends it. */
export function writePattern(w: NodeJS.WritableStream, n: number): void {
  const gen = patternBytes(n)
  const pump = (): void => {
    for (;;) {
      const next = gen.next()
      if (next.done === true) {
        w.end()
        return
      }
      if (!w.write(next.value)) {
        w.once('drain', pump)
        return
      }
    }
  }
  pump()
}

/**
 * A small real HTTP app on 127.0.0.1:0 for tests:
 *   GET  /hello         → "hello"
 *   GET  /headers       → the request headers as JSON
 *   POST /echo          → the body back, streamed
 *   POST /sha256        → hex SHA-256 of the body
 *   GET  /bytes?n=N     → N pattern bytes streamed in 64 KiB writes
 *   GET  /never         → never answers (for upstream timeouts)
 *   GET  /hangup        → closes the connection without answering
 *   GET  /slow?ms=N     → answers after N ms
 *   WS   /ws            → WebSocket echo
 */
export async function startTestUpstream(port = 0): Promise<TestUpstream> {
  const seen: TestUpstream['seen'] = []
  const sockets = new Set<Socket>()
  const state = { aborted: 0 }
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x')
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    res.on('close', () => {
      if (!res.writableFinished) state.aborted++
    })
    if (url.pathname === '/hello') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 }).end('hello')
    } else if (url.pathname === '/headers') {
      const body = JSON.stringify(req.headers)
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    } else if (url.pathname === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      req.pipe(res)
    } else if (url.pathname === '/sha256') {
      const h = createHash('sha256')
      req.on('data', (c: Buffer) => h.update(c))
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(h.digest('hex')))
    } else if (url.pathname === '/bytes') {
      const n = Number(url.searchParams.get('n') ?? '0')
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n })
      writePattern(res, n)
    } else if (url.pathname === '/hangup') {
      req.socket.destroy()
    } else if (url.pathname === '/never') {
      // answer nothing; the connection stays open until the client or the test goes
    } else if (url.pathname === '/slow') {
      const t = setTimeout(() => res.end('slow'), Number(url.searchParams.get('ms') ?? '100'))
      res.on('close', () => clearTimeout(t))
    } else {
      res.writeHead(404).end('not found')
    }
  })
  server.keepAliveTimeout = 5000
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  const wss = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req, socket, head) => {
    if ((req.url ?? '').startsWith('/ws')) wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m, isBinary) => ws.send(m, { binary: isBinary })))
    else socket.destroy()
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const addr = server.address() as { port: number }
  return {
    port: addr.port,
    address: `127.0.0.1:${addr.port}`,
    seen,
    get aborted() {
      return state.aborted
    },
    get openConnections() {
      return sockets.size
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate()
        wss.close()
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      }),
  }
}
