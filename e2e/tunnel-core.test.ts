import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createServer, request } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { WebSocket } from 'ws'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { patternBytes, writePattern, type TestUpstream } from '../src/testing/test-upstream.ts'
import { errorCodeOf, ingressRequest, startConnectedTunnel, startTestAgent, startTestServer, type ConnectedTunnel, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const MiB = 1024 * 1024

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex')
}

/** Streams `size` pattern bytes as a request body; resolves with the response status and body hash. */
function streamRequest(port: number, host: string, method: string, path: string, size: number): Promise<{ status: number; sha: string; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host, 'content-length': size }, agent: false }, (res) => {
      const h = createHash('sha256')
      let bytes = 0
      let text = ''
      res.on('data', (c: Buffer) => {
        h.update(c)
        bytes += c.length
        if (text.length < 1024) text += c.toString('latin1')
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sha: h.digest('hex'), bytes, text }))
      res.on('error', reject)
    })
    req.on('error', reject)
    writePattern(req, size)
  })
}

function patternSha(size: number): string {
  const h = createHash('sha256')
  for (const c of patternBytes(size)) h.update(c)
  return h.digest('hex')
}

describe('tunnel core over real TLS on loopback', () => {
  let server: TestServer
  let upstream: TestUpstream
  let tunnel: Awaited<ReturnType<TestServer['createTunnel']>>

  let fixture: ConnectedTunnel

  before(async () => {
    fixture = await startConnectedTunnel({}, 'core')
    ;({ server, upstream, tunnel } = fixture)
  })
  after(() => fixture.close())

  test('a GET reaches the upstream with Host kept and X-Forwarded-* set, hop-by-hop dropped', async () => {
    const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, {
      path: '/headers',
      headers: { 'x-forwarded-for': '6.6.6.6', 'keep-alive': 'timeout=5', 'x-drop-me': '1', connection: 'x-drop-me' },
    })
    assert.equal(res.status, 200)
    const h = JSON.parse(res.body.toString()) as Record<string, string>
    assert.equal(h.host, tunnel.hostHeader)
    assert.equal(h['x-forwarded-for'], '127.0.0.1')
    assert.equal(h['x-forwarded-proto'], 'http')
    assert.equal(h['x-forwarded-host'], tunnel.hostHeader)
    assert.equal(h['keep-alive'], undefined)
    assert.equal(h['x-drop-me'], undefined)
  })

  test('64 MiB POST up and 64 MiB GET down, bytes compared by hash', async () => {
    const expected = patternSha(64 * MiB)
    const up = await streamRequest(server.ingressAddress.port, tunnel.hostHeader, 'POST', '/sha256', 64 * MiB)
    assert.equal(up.status, 200)
    assert.equal(up.text, expected, 'the upstream received exactly the bytes sent')
    const echoed = await streamRequest(server.ingressAddress.port, tunnel.hostHeader, 'POST', '/echo', 64 * MiB)
    assert.equal(echoed.status, 200)
    assert.equal(echoed.bytes, 64 * MiB)
    assert.equal(echoed.sha, expected)
    const down = await streamRequest(server.ingressAddress.port, tunnel.hostHeader, 'GET', `/bytes?n=${64 * MiB}`, 0)
    assert.equal(down.status, 200)
    assert.equal(down.bytes, 64 * MiB)
    assert.equal(down.sha, expected)
  })

  test('200 concurrent requests all answer correctly', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        ingressRequest(server.ingressAddress, tunnel.hostHeader, { method: 'POST', path: '/echo', body: `request-${i}` }),
      ),
    )
    results.forEach((r, i) => {
      assert.equal(r.status, 200)
      assert.equal(r.body.toString(), `request-${i}`)
    })
  })

  test('keep-alive: several requests on one client connection all go through', async () => {
    const { Agent } = await import('node:http')
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 })
    try {
      for (let i = 0; i < 20; i++) {
        const r = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { method: 'POST', path: '/echo', body: `ka-${i}`, agent: keepAlive })
        assert.equal(r.body.toString(), `ka-${i}`)
      }
    } finally {
      keepAlive.destroy()
    }
  })

  test('WebSocket echo through the tunnel', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.ingressAddress.port}/ws`, { headers: { host: tunnel.hostHeader } })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    const replies: string[] = []
    const done = new Promise<void>((resolve) =>
      ws.on('message', (m: Buffer) => {
        replies.push(m.toString())
        if (replies.length === 50) resolve()
      }),
    )
    for (let i = 0; i < 50; i++) ws.send(`msg-${i}`)
    await done
    assert.deepEqual(replies, Array.from({ length: 50 }, (_, i) => `msg-${i}`))
    const big = Buffer.alloc(1024 * 1024, 7)
    const echoed = new Promise<Buffer>((resolve) => ws.once('message', (m: Buffer) => resolve(m)))
    ws.send(big)
    assert.equal(sha256(await echoed), sha256(big))
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve())
      ws.close()
    })
  })

  test('404 with a code for a host that names no tunnel', async () => {
    const unknown = await ingressRequest(server.ingressAddress, 'zzzzzzzzzzzzzzzz.localhost')
    assert.equal(unknown.status, 404)
    assert.equal(errorCodeOf(unknown), 'TUN_ERR_INGRESS_UNKNOWN_TUNNEL')
    const other = await ingressRequest(server.ingressAddress, 'example.com')
    assert.equal(other.status, 404)
    assert.equal(errorCodeOf(other), 'TUN_ERR_INGRESS_UNKNOWN_TUNNEL')
  })

  test("the upstream closing an idle keep-alive connection does not close the caller's: the next request gets a fresh upstream connection", async () => {
    // Answers keep-alive, then closes the idle connection 100 ms later, as an app's keep-alive timeout does.
    const app = createServer((req, res) => {
      res.end(`path ${req.url}`)
      res.on('finish', () => setTimeout(() => req.socket.end(), 100))
    })
    let upstreamConnections = 0
    app.on('connection', () => upstreamConnections++)
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
    const t = await server.createTunnel('idle close')
    const a = await startTestAgent(t.key, `127.0.0.1:${(app.address() as AddressInfo).port}`, { nodeId: 'idle-close' })
    const client = connect({ host: '127.0.0.1', port: server.ingressAddress.port })
    try {
      await a.waitFor((st) => st.status === 'CONNECTED')
      let received = ''
      let ended = false
      client.setEncoding('latin1').on('data', (d: string) => (received += d))
      client.on('end', () => (ended = true))
      const exchange = async (path: string): Promise<string> => {
        received = ''
        client.write(`GET ${path} HTTP/1.1\r\nHost: ${t.hostHeader}\r\n\r\n`)
        await eventually(() => /\r\n\r\n/.test(received) && received.endsWith(`path ${path}`), `answer to ${path}`)
        return received
      }
      assert.match(await exchange('/first'), /^HTTP\/1\.1 200/)
      // The app drops its idle connection after 100 ms; the caller's connection must stay usable.
      await new Promise((r) => setTimeout(r, 500))
      assert.equal(ended, false, 'the ingress kept the caller connection open')
      assert.match(await exchange('/second'), /^HTTP\/1\.1 200/)
      assert.equal(upstreamConnections, 2, 'the second request went over a fresh upstream connection')
    } finally {
      client.destroy()
      await a.close()
      await new Promise<void>((r) => app.close(() => r()))
    }
  })

  test('503 with the tunnel status for a tunnel that has no live session', async () => {
    const idle = await server.createTunnel('never connected')
    const res = await ingressRequest(server.ingressAddress, idle.hostHeader)
    assert.equal(res.status, 503)
    assert.equal(errorCodeOf(res), 'TUN_ERR_INGRESS_NO_SESSION')
    assert.match(res.body.toString(), /INCOMPLETE/)
  })

  test('504 with a code when the upstream does not answer in time', async () => {
    const fast = await startTestServer({ upstreamResponseTimeoutMs: 300 })
    const t = await fast.createTunnel('slow')
    const a = await startTestAgent(t.key, upstream.address)
    try {
      await a.waitFor((s) => s.status === 'CONNECTED')
      const res = await ingressRequest(fast.ingressAddress, t.hostHeader, { path: '/never' })
      assert.equal(res.status, 504)
      assert.equal(errorCodeOf(res), 'TUN_ERR_UPSTREAM_TIMEOUT')
      const ok = await ingressRequest(fast.ingressAddress, t.hostHeader, { path: '/slow?ms=50' })
      assert.equal(ok.status, 200)
    } finally {
      await a.close()
      await fast.dispose()
    }
  })

  test('smuggling attempts and oversize heads are refused at the ingress with codes', async () => {
    const { connect } = await import('node:net')
    const raw = (payload: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = connect(server.ingressAddress.port, '127.0.0.1')
        let out = ''
        s.on('data', (d) => (out += d.toString('latin1')))
        s.on('end', () => resolve(out))
        s.on('close', () => resolve(out))
        s.on('error', reject)
        s.write(payload)
      })
    const h = tunnel.hostHeader
    const clte = await raw(`POST /echo HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`)
    assert.match(clte, /^HTTP\/1\.1 400 /)
    assert.match(clte, /TUN_ERR_HTTP_AMBIGUOUS_FRAMING/)
    const dupCl = await raw(`POST /echo HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`)
    assert.match(dupCl, /^HTTP\/1\.1 400 /)
    const bareLf = await raw(`GET /hello HTTP/1.1\nHost: ${h}\n\n`)
    assert.match(bareLf, /^HTTP\/1\.1 400 /)
    const big = await raw(`GET /hello HTTP/1.1\r\nHost: ${h}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
    assert.match(big, /^HTTP\/1\.1 431 /)
    assert.match(big, /TUN_ERR_HTTP_HEADERS_TOO_LARGE/)
  })
})
