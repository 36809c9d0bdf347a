import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { createLogger } from '../src/observability/index.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { rawExchange } from '../src/testing/raw-exchange.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

/**
 * What the ingress tells a caller must be true: no part of a response head it has not checked, no
 * answer out of request order, no bytes nobody asked for, and an answer to a caller that
 * half-closed after its requests. Callers and misbehaving apps are raw sockets.
 */

const exchange = rawExchange

interface Response {
  status: number
  headers: string
  body: string
}

/** Splits what a caller received into responses (Content-Length or chunked bodies only). */
function responses(out: string): Response[] {
  const list: Response[] = []
  let pos = 0
  while (pos < out.length) {
    const headEnd = out.indexOf('\r\n\r\n', pos)
    if (headEnd === -1) throw new Error(`an incomplete head at ${pos}: ${JSON.stringify(out.slice(pos, pos + 200))}`)
    const head = out.slice(pos, headEnd + 2)
    const status = /^HTTP\/1\.1 (\d{3}) /.exec(head)
    if (status === null) throw new Error(`not a status line at ${pos}: ${JSON.stringify(head.slice(0, 200))}`)
    let body = ''
    pos = headEnd + 4
    const length = /\r\ncontent-length: *(\d+)\r\n/i.exec(head)
    if (length !== null) {
      body = out.slice(pos, pos + Number(length[1]))
      pos += Number(length[1])
    } else if (/\r\ntransfer-encoding: *chunked\r\n/i.test(head)) {
      for (;;) {
        const lineEnd = out.indexOf('\r\n', pos)
        const size = parseInt(out.slice(pos, lineEnd), 16)
        pos = lineEnd + 2
        if (size === 0) {
          pos = out.indexOf('\r\n\r\n', pos - 2) + 4
          break
        }
        body += out.slice(pos, pos + size)
        pos += size + 2
      }
    }
    list.push({ status: Number(status[1]), headers: head, body })
  }
  return list
}

function codeOf(r: Response): string | undefined {
  return (JSON.parse(r.body) as { error?: { code?: string } }).error?.code
}

/** A raw TCP app: `answer` gets each request head (bodies are not expected) and its connection's index. */
interface RawApp {
  address: string
  connections: number
  closedByPeer: number
  close(): Promise<void>
}

async function startRawApp(answer: (socket: Socket, requestLine: string, connection: number) => void): Promise<RawApp> {
  const sockets = new Set<Socket>()
  const state = { connections: 0, closedByPeer: 0 }
  // Half-open allowed: like many HTTP servers, this app still answers a client that half-closed.
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    const connection = state.connections++
    sockets.add(socket)
    let buffered = ''
    /** answers to /late requests, in order */
    let chain = Promise.resolve()
    Object.assign(socket, { later: (answer: () => void, ms: number) => (chain = chain.then(() => new Promise<void>((r) => setTimeout(() => (answer(), r()), ms)))) })
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1')
      for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end)
        buffered = buffered.slice(end + 4)
        answer(socket, head.slice(0, head.indexOf('\r\n')), connection)
      }
    })
    socket.on('end', () => {
      state.closedByPeer++
      // Answers still due go out first (see /late), then the app closes too.
      void chain.then(() => socket.writable && socket.end())
    })
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    get connections() {
      return state.connections
    },
    get closedByPeer() {
      return state.closedByPeer
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/** Log lines of the server under test, parsed. */
function logSink(): { stream: Writable; entries: Array<Record<string, unknown>> } {
  const entries: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') entries.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  return { stream, entries }
}

describe('ingress edges: the caller is never told something false', () => {
  let server: TestServer
  let upstream: TestUpstream
  let misbehaving: RawApp
  const agents: TunnelAgent[] = []
  const log = logSink()
  /** tunnel to the well-behaved test app */
  let app: Awaited<ReturnType<TestServer['createTunnel']>>
  /** tunnel to the raw app, whose answers each test picks through the request path */
  let raw: Awaited<ReturnType<TestServer['createTunnel']>>
  let other: Awaited<ReturnType<TestServer['createTunnel']>>
  let unconnected: Awaited<ReturnType<TestServer['createTunnel']>>

  before(async () => {
    upstream = await startTestUpstream()
    misbehaving = await startRawApp((socket, line, connection) => {
      const path = line.split(' ')[1] ?? ''
      if (path === '/big-head') {
        socket.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(40_000)}\r\nContent-Length: 2\r\n\r\nok`)
      } else if (path === '/split-bad-head') {
        socket.write('HTTP/1.1 200 OK\r\nX-A: 1\r\n')
        setTimeout(() => socket.writable && socket.write('Not a header\r\n\r\n'), 100)
      } else if (path === '/switch') {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: something\r\n\r\n')
      } else if (path === '/then-more') {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst')
        setTimeout(() => socket.writable && socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!'), 100)
      } else if (path === '/then-partial') {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst')
        setTimeout(() => socket.writable && socket.write('HTTP/1.1 200 OK\r\nContent-Len'), 100)
      } else if (path.startsWith('/late/')) {
        // Answers after 200 ms, after the answers to earlier /late requests on the connection.
        const name = path.slice('/late/'.length)
        ;(socket as Socket & { later(answer: () => void, ms: number): void }).later(() => socket.writable && socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${name.length}\r\n\r\n${name}`), 200)
      } else if (path === '/same-chunk') {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!')
      } else {
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${String(connection).length + 11}\r\n\r\nconnection ${connection}`)
      }
    })
    server = await startTestServer({ logLevel: 'debug' }, undefined, { log: createLogger({ level: 'debug', destination: log.stream }) })
    app = await server.createTunnel('app')
    raw = await server.createTunnel('raw')
    other = await server.createTunnel('other')
    unconnected = await server.createTunnel('unconnected')
    agents.push(await startTestAgent(app.key, upstream.address, { nodeId: 'app-node' }))
    agents.push(await startTestAgent(raw.key, misbehaving.address, { nodeId: 'raw-node' }))
    agents.push(await startTestAgent(other.key, upstream.address, { nodeId: 'other-node' }))
    for (const a of agents) await a.waitFor((s) => s.status === 'CONNECTED')
  })
  after(async () => {
    for (const a of agents) await a.close()
    await server?.dispose()
    await upstream?.close()
    await misbehaving?.close()
  })

  const port = () => server.ingressAddress.port
  const get = (path: string, host: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`
  const errorLogs = () => log.entries.filter((e) => typeof e['level'] === 'number' && (e['level'] as number) >= 50)

  test('an app response head over the limit is one clean 502, nothing of it reaches the caller', async () => {
    const out = await exchange(port(), [{ bytes: get('/big-head', raw.hostHeader) }])
    const [only, ...rest] = responses(out)
    assert.equal(only?.status, 502, out.slice(0, 300))
    assert.equal(codeOf(only!), 'TUN_ERR_UPSTREAM_BAD_RESPONSE')
    assert.deepEqual(rest, [])
    assert.ok(!out.includes('X-Big'), 'no byte of the bad head')
  })

  test('a malformed app response head arriving in two pieces is one clean 502', async () => {
    const out = await exchange(port(), [{ bytes: get('/split-bad-head', raw.hostHeader) }])
    const [only, ...rest] = responses(out)
    assert.equal(only?.status, 502, out.slice(0, 300))
    assert.equal(codeOf(only!), 'TUN_ERR_UPSTREAM_BAD_RESPONSE')
    assert.deepEqual(rest, [])
    assert.ok(!out.includes('X-A'), 'no byte of the bad head')
  })

  for (const bad of [
    { name: 'a control byte in a header', bytes: () => get('/hello?bad', app.hostHeader, 'X-A: a\x01b\r\n'), status: 400, code: 'TUN_ERR_HTTP_BAD_REQUEST', credential: false },
    { name: "another tunnel's Host", bytes: () => get('/hello?bad', other.hostHeader), status: 421, code: 'TUN_ERR_INGRESS_MISDIRECTED', credential: false },
    { name: 'no credential', bytes: () => get('/hello?bad', app.hostHeader), status: 403, code: 'TUN_ERR_INGRESS_FORBIDDEN', credential: true },
  ]) {
    test(`a later request with ${bad.name} is answered after the earlier one, in order, then the connection closes`, async () => {
      const actor = { orgId: server.orgId, name: 'test', sourceAddress: '127.0.0.1' }
      const product = bad.credential ? await server.products.add(actor, app.id, { name: 'linked' }) : undefined
      try {
        const credential = product === undefined ? '' : `X-Apptunnel-Credential: ${product.credentialValue!}\r\n`
        const seenBefore = upstream.seen.length
        const out = await exchange(port(), [
          { bytes: `POST /slow?ms=600 HTTP/1.1\r\nHost: ${app.hostHeader}\r\n${credential}Content-Length: 0\r\n\r\n` },
          // A request after the bad one is never read.
          { bytes: bad.bytes() + get('/hello?after', app.hostHeader, credential), delayMs: 200 },
        ])
        const list = responses(out)
        assert.deepEqual(
          list.map((r) => r.status),
          [200, bad.status],
          out.slice(0, 600),
        )
        assert.equal(list[0]!.body, 'slow')
        assert.equal(codeOf(list[1]!), bad.code)
        assert.deepEqual(upstream.seen.slice(seenBefore).map((r) => r.url), ['/slow?ms=600'])
      } finally {
        if (product !== undefined) await server.products.remove(actor, app.id, product.id)
      }
    })
  }

  test('a broken body of a later request is answered after the earlier response', async () => {
    const out = await exchange(port(), [
      { bytes: `GET /slow?ms=400 HTTP/1.1\r\nHost: ${app.hostHeader}\r\n\r\n` },
      { bytes: `POST /sha256 HTTP/1.1\r\nHost: ${app.hostHeader}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`, delayMs: 100 },
    ])
    assert.deepEqual(
      responses(out).map((r) => [r.status, r.status === 200 ? r.body : codeOf(r)]),
      [
        [200, 'slow'],
        [400, 'TUN_ERR_HTTP_BAD_REQUEST'],
      ],
      out.slice(0, 600),
    )
  })

  for (const variant of [
    { path: '/then-more', what: 'a whole unsolicited response' },
    { path: '/then-partial', what: 'the start of an unsolicited head' },
    { path: '/same-chunk', what: 'an unsolicited response in the same write as the answer' },
  ]) {
    test(`${variant.what} after a complete response is dropped; the caller keeps its connection and gets a fresh upstream connection`, async () => {
      const connectionsBefore = misbehaving.connections
      const closedBefore = misbehaving.closedByPeer
      const warningsBefore = log.entries.filter((e) => e['msg'] === 'the app sent bytes after its response, with no request outstanding').length
      const out = await exchange(port(), [
        { bytes: get(variant.path, raw.hostHeader) },
        { bytes: get('/next', raw.hostHeader, 'Connection: close\r\n'), delayMs: 400 },
      ])
      const list = responses(out)
      assert.deepEqual(
        list.map((r) => r.body),
        ['first', `connection ${connectionsBefore + 1}`],
        out,
      )
      assert.ok(!out.includes('EVIL'))
      assert.equal(misbehaving.connections, connectionsBefore + 2)
      await eventually(() => misbehaving.closedByPeer >= closedBefore + 1, 'the misbehaving upstream connection is closed')
      const warnings = log.entries.filter((e) => e['msg'] === 'the app sent bytes after its response, with no request outstanding')
      // Once per tunnel per minute: only the first variant logs.
      assert.equal(warnings.length, variant.path === '/then-more' ? warningsBefore + 1 : warningsBefore)
      assert.equal(warnings[0]?.['tunnelId'], raw.id)
      assert.equal(warnings[0]?.['level'], 40)
    })
  }

  test('a 101 to a request that asked for no upgrade is a 502 bad response, not an internal error', async () => {
    const errorsBefore = errorLogs().length
    const out = await exchange(port(), [{ bytes: get('/switch', raw.hostHeader) }])
    const [only, ...rest] = responses(out)
    assert.equal(only?.status, 502, out.slice(0, 300))
    assert.equal(codeOf(only!), 'TUN_ERR_UPSTREAM_BAD_RESPONSE')
    assert.deepEqual(rest, [])
    assert.deepEqual(errorLogs().slice(errorsBefore), [])
  })

  test('a caller that half-closes after one request gets the answer an app gives it, then the connection closes', async () => {
    const out = await exchange(port(), [{ bytes: get('/late/one', raw.hostHeader) }], { halfCloseAfterMs: 20 })
    assert.deepEqual(
      responses(out).map((r) => [r.status, r.body]),
      [[200, 'one']],
      out,
    )
  })

  test('a caller that half-closes after pipelined requests gets every answer, in order', async () => {
    const out = await exchange(
      port(),
      [{ bytes: get('/late/one', raw.hostHeader) + get('/late/two', raw.hostHeader) + get('/late/three', raw.hostHeader) }],
      { halfCloseAfterMs: 20 },
    )
    assert.deepEqual(
      responses(out).map((r) => [r.status, r.body]),
      [
        [200, 'one'],
        [200, 'two'],
        [200, 'three'],
      ],
      out,
    )
  })

  test('the half-close reaches the app: one that stops answering then gives the caller a 502, not silence', async () => {
    // Node's HTTP server ends a connection the client half-closed, without answering what is in progress.
    const out = await exchange(port(), [{ bytes: get('/slow?ms=300', app.hostHeader) }], { halfCloseAfterMs: 20 })
    const [only, ...rest] = responses(out)
    assert.equal(only?.status, 502, out)
    assert.equal(codeOf(only!), 'TUN_ERR_UPSTREAM_FAILED')
    assert.deepEqual(rest, [])
  })

  test('a caller that half-closes while the ingress looks the tunnel up gets its answer', async () => {
    const out = await exchange(port(), [{ bytes: get('/hello', unconnected.hostHeader) }], { halfCloseAfterMs: 0 })
    const [only, ...rest] = responses(out)
    assert.equal(only?.status, 503, out)
    assert.equal(codeOf(only!), 'TUN_ERR_INGRESS_NO_SESSION')
    assert.deepEqual(rest, [])
  })
})
