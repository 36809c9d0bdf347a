import assert from 'node:assert/strict'
import { once } from 'node:events'
import { request } from 'node:https'
import { connect as tlsConnect } from 'node:tls'
import { before, test } from 'node:test'
import { silentLogger } from '../observability/index.ts'
import { eventually } from '../testing/eventually.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { generateSelfSigned } from '../transport/self-signed-certificate.ts'
import { HttpsFront, type HttpsFrontOptions, type HttpsRoute } from './https-front.ts'

checkNoLeakedHandles()

let cert: { cert: string; key: string }
before(async () => {
  cert = await generateSelfSigned(['localhost'])
})

const API: HttpsRoute = { matches: (url) => (url ?? '').startsWith('/api/'), handle: (_req, res) => res.end('api') }
const CATCH_ALL: HttpsRoute = { matches: (url) => (url ?? '').startsWith('/'), handle: (req, res) => res.end(req.url === '/healthz' ? 'shadowed' : 'console') }

async function withFront(
  options: Partial<HttpsFrontOptions>,
  body: (front: HttpsFront, port: number, upgrades: string[]) => Promise<void>,
  routes: HttpsRoute[] = [API],
): Promise<void> {
  const upgrades: string[] = []
  const front = new HttpsFront(
    { ...cert, handshakeTimeoutMs: 5000, headTimeoutMs: 5000, requestTimeoutMs: 10_000, ...options },
    {
      routes,
      upgrade: {
        matches: (req) => req.url === '/agent',
        handleUpgrade: (req, socket) => {
          upgrades.push(req.url ?? '')
          socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n')
        },
      },
      log: silentLogger(),
    },
  )
  const { port } = await front.listen('127.0.0.1', 0)
  try {
    await body(front, port, upgrades)
  } finally {
    await front.close()
  }
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, ca: cert.cert, servername: 'localhost', agent: false, headers }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('upgrade', (res, socket) => {
      socket.destroy()
      resolve({ status: res.statusCode ?? 0, body: '' })
    })
    req.setTimeout(3000, () => req.destroy(new Error('no answer within 3 s')))
    req.on('error', reject)
    req.end()
  })
}

test('a request goes to the first route that matches; /healthz and unknown paths are answered by the front', async () => {
  await withFront({}, async (_front, port) => {
    assert.deepEqual(await get(port, '/api/v1/tunnels'), { status: 200, body: 'api' })
    assert.deepEqual(await get(port, '/healthz'), { status: 200, body: '{"status":"ok"}' })
    const missing = await get(port, '/nothing-here')
    assert.equal(missing.status, 404)
    assert.deepEqual(JSON.parse(missing.body), { error: { code: 'TUN_ERR_API_ROUTE_NOT_FOUND', message: 'nothing at /nothing-here' } })
  })
})

test('routes are tried in order: an earlier catch-all takes what a later route would', async () => {
  await withFront(
    {},
    async (_front, port) => {
      assert.deepEqual(await get(port, '/api/x'), { status: 200, body: 'api' })
      assert.deepEqual(await get(port, '/healthz'), { status: 200, body: 'shadowed' })
    },
    [API, CATCH_ALL],
  )
})

test('an upgrade the upgrade route matches is handed over; any other upgrade is dropped', async () => {
  await withFront({}, async (_front, port, upgrades) => {
    assert.equal((await get(port, '/agent', { Connection: 'Upgrade', Upgrade: 'test' })).status, 101)
    assert.deepEqual(upgrades, ['/agent'])
    await assert.rejects(get(port, '/other', { Connection: 'Upgrade', Upgrade: 'test' }), /socket hang up|ECONNRESET/)
    assert.deepEqual(upgrades, ['/agent'])
  })
})

test('a request head dripped slower than the head timeout is cut off within about a second of it', async () => {
  await withFront({ headTimeoutMs: 300 }, async (_front, port) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: cert.cert, servername: 'localhost' })
    await once(socket, 'secureConnect')
    let got = ''
    let closed = false
    socket.on('data', (d: Buffer) => (got += d.toString()))
    socket.on('close', () => (closed = true))
    socket.on('error', () => {})
    socket.write('GET /api/x HTTP/1.1\r\nHost: localhost\r\n')
    const drip = setInterval(() => socket.writable && socket.write('X-Drip: 1\r\n'), 100)
    try {
      await eventually(() => closed, 'the connection is closed', 3000)
    } finally {
      clearInterval(drip)
      socket.destroy()
    }
    assert.match(got, /^HTTP\/1.1 408/)
  })
})

test('close() drops connections in the middle of a request instead of waiting for them', async () => {
  await withFront({}, async (front, port) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: cert.cert, servername: 'localhost' })
    await once(socket, 'secureConnect')
    let closed = false
    socket.on('close', () => (closed = true))
    socket.on('error', () => {})
    socket.write('GET /api/x HTTP/1.1\r\nHost: localhost\r\n')
    await new Promise((r) => setTimeout(r, 50))
    const closing = front.close()
    try {
      await eventually(() => closed, 'the half-sent request is dropped', 2000)
    } finally {
      socket.destroy()
    }
    await closing
    assert.equal(front.listening, false)
  })
})
