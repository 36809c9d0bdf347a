import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { startAgent, type TunnelAgent } from '../src/agent/start-agent.ts'
import { loadAgentConfig } from '../src/config/agent-config.ts'
import { AGENT_CONNECT_PATH, AGENT_UPGRADE_TOKEN } from '../src/protocol/index.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { errorCodeOf, ingressRequest, startConnectedTunnel, type ConnectedTunnel } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

/** Longest any single slow client here may live before the test calls it a failure. */
const GIVE_UP_MS = 8_000

interface Dripped {
  /** everything the server sent before it closed */
  received: string
  /** the server closed the connection (the client never ends or destroys it before GIVE_UP_MS) */
  closedByServer: boolean
  /** parts written before the close */
  written: number
}

/**
 * Sends `first`, then one part of `drip` every `everyMs`, and never finishes on its own: only the
 * server can end this exchange. Bounded by GIVE_UP_MS and by the number of parts.
 */
function drip(socket: Socket, first: string, parts: string[], everyMs: number): Promise<Dripped> {
  return new Promise((resolve) => {
    let received = ''
    let written = 0
    let timer: NodeJS.Timeout | undefined
    const giveUp = setTimeout(() => finish(false), GIVE_UP_MS)
    function finish(closedByServer: boolean): void {
      clearInterval(timer)
      clearTimeout(giveUp)
      socket.destroy()
      resolve({ received, closedByServer, written })
    }
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => finish(true))
    const start = (): void => {
      if (first !== '') socket.write(first)
      timer = setInterval(() => {
        if (written < parts.length && socket.writable) socket.write(parts[written++]!, () => {})
      }, everyMs)
    }
    if (socket.readyState === 'open' && !(socket as { connecting?: boolean }).connecting) start()
    else socket.once('connect', start).once('secureConnect', () => {})
  })
}

const lines = (n: number, make: (i: number) => string): string[] => Array.from({ length: n }, (_, i) => make(i))

/** A console sign-in as a browser sends it (same origin), but for its body of `length` bytes. */
const signInHead = (path: string, length: number): string =>
  `POST ${path} HTTP/1.1\r\nHost: localhost\r\nOrigin: https://localhost\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`

describe('slow clients are cut off on every listener', () => {
  let fixture: ConnectedTunnel
  let apiPort: number
  let ingressPort: number
  let token: string

  before(async () => {
    fixture = await startConnectedTunnel(
      {
        tlsHandshakeTimeoutMs: 400,
        apiHeadTimeoutMs: 500,
        apiRequestTimeoutMs: 800,
        headTimeoutMs: 400,
        bodyTimeoutMs: 300,
        bodyMinBytesPerSecond: 1000,
        metricsListen: '127.0.0.1:0',
        metricsHeadTimeoutMs: 400,
        metricsRequestTimeoutMs: 700,
      },
      'slowloris',
    )
    apiPort = fixture.server.apiAddress.port
    ingressPort = fixture.server.ingressAddress.port
    token = (await readFile(join(fixture.server.dataDir, 'admin-token'), 'utf8')).trim()
  })
  after(() => fixture.close())

  function tls(): Socket {
    return tlsConnect({ host: '127.0.0.1', port: apiPort, ca: fixture.server.certificatePem, servername: 'localhost', checkServerIdentity: () => undefined })
  }

  test('HTTPS listener: a connection that never starts its TLS handshake is closed', async () => {
    const r = await drip(connect(apiPort, '127.0.0.1'), '', [], 1000)
    assert.equal(r.closedByServer, true, 'closed by the TLS handshake timeout')
    assert.equal(r.received, '')
  })

  test('HTTPS listener: a TLS handshake dripped one byte at a time is closed', async () => {
    // The start of a TLS 1.2 ClientHello record header, then one byte every 100 ms.
    const hello = Buffer.from('160301020001', 'hex').toString('latin1')
    const r = await drip(connect(apiPort, '127.0.0.1'), hello, lines(60, () => '\u0003'), 100)
    assert.equal(r.closedByServer, true)
    assert.ok(r.written < 60, `closed before the drip ran out (${r.written} bytes dripped)`)
  })

  test('admin API: a request head dripped line by line is answered 408 and closed', async () => {
    const r = await drip(tls(), `GET /api/v1/tunnels HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n`, lines(60, (i) => `X-Drip-${i}: 1\r\n`), 100)
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 408 /)
    assert.ok(r.written < 60)
  })

  test('agent endpoint: a connect request head dripped line by line is closed before any upgrade', async () => {
    const r = await drip(
      tls(),
      `GET ${AGENT_CONNECT_PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: ${AGENT_UPGRADE_TOKEN}\r\n`,
      lines(60, (i) => `X-Drip-${i}: 1\r\n`),
      100,
    )
    assert.equal(r.closedByServer, true)
    assert.doesNotMatch(r.received, /101 Switching/)
    assert.ok(r.written < 60)
  })

  test('admin API: a request body dripped byte by byte is answered 408 and closed', async () => {
    const body = JSON.stringify({ name: 'never-created' })
    const r = await drip(
      tls(),
      `POST /api/v1/tunnels HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      [...body],
      100,
    )
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 408 /)
    assert.ok(r.written < body.length, 'the body never completed')
    const names = (await fixture.server.tunnels.list({ orgId: fixture.server.orgId, name: 'test', sourceAddress: '127.0.0.1' })).map((t) => t.name)
    assert.ok(!names.includes('never-created'))
  })

  test('cloud console (served on the HTTPS listener): a sign-in body dripped byte by byte is answered 408 and closed', async () => {
    const body = JSON.stringify({ username: 'admin', password: 'never-complete' })
    const r = await drip(tls(), signInHead('/console/api/session', body.length), [...body], 100)
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 408 /)
    assert.ok(r.written < body.length, 'the body never completed')
  })

  test('metrics listener: a request head dripped line by line is closed', async () => {
    const r = await drip(connect(fixture.server.metricsAddress!.port, '127.0.0.1'), 'GET /metrics HTTP/1.1\r\nHost: localhost\r\n', lines(60, (i) => `X-Drip-${i}: 1\r\n`), 100)
    assert.equal(r.closedByServer, true)
    // The listener drops a client error without an answer: a scraper has nothing to learn from one.
    assert.equal(r.received, '')
    assert.ok(r.written < 60, `closed before the drip ran out (${r.written} lines dripped)`)
  })

  test('metrics listener: a request body dripped byte by byte is cut off, although it was answered (405) at once', async () => {
    const r = await drip(connect(fixture.server.metricsAddress!.port, '127.0.0.1'), 'POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 60\r\n\r\n', lines(60, () => 'x'), 100)
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 405 /)
    assert.ok(r.written < 60, `closed before the drip ran out (${r.written} bytes dripped)`)
  })

  test('ingress: a request body slower than the minimum rate is answered 408 and the upstream request is aborted', async () => {
    const seenBefore = fixture.upstream.seen.length
    const abortedBefore = fixture.upstream.aborted
    // 10 bytes per 100 ms = 100 B/s, a tenth of the 1000 B/s minimum.
    const r = await drip(
      connect(ingressPort, '127.0.0.1'),
      `POST /sha256 HTTP/1.1\r\nHost: ${fixture.tunnel.hostHeader}\r\nContent-Length: 100000\r\n\r\n`,
      lines(60, () => 'x'.repeat(10)),
      100,
    )
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 408 /)
    assert.match(r.received, /TUN_ERR_HTTP_REQUEST_TIMEOUT/)
    assert.match(r.received, /too slowly/)
    assert.ok(r.written < 60)
    assert.equal(fixture.upstream.seen.length, seenBefore + 1, 'the request had reached the upstream')
    await eventually(() => fixture.upstream.aborted > abortedBefore, 'the upstream saw the request aborted', GIVE_UP_MS)
  })

  test('ingress: a body that keeps the minimum rate over many windows goes through whole', async () => {
    // 1,500 bytes every 100 ms for 1.2 s: four body windows, each well above 300 bytes.
    const chunks = lines(12, (i) => String.fromCharCode(97 + i).repeat(1500))
    const whole = chunks.join('')
    const r = await drip(
      connect(ingressPort, '127.0.0.1'),
      `POST /sha256 HTTP/1.1\r\nHost: ${fixture.tunnel.hostHeader}\r\nContent-Length: ${whole.length}\r\nConnection: close\r\n\r\n`,
      chunks,
      100,
    )
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 200 /)
    assert.ok(r.received.includes(createHash('sha256').update(whole).digest('hex')), r.received)
  })

  test('the tunnel still serves normal callers afterwards', async () => {
    const res = await ingressRequest({ port: ingressPort }, fixture.tunnel.hostHeader)
    assert.equal(res.status, 200, errorCodeOf(res))
    assert.equal(res.body.toString(), 'hello')
  })
})

describe('slow clients are cut off on an agent node\'s listeners', () => {
  let root: string
  let node: TunnelAgent

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-slowloris-node-'))
    // A node of an instance that has no key yet: its console and metrics listeners are up all the same.
    node = await startAgent(
      loadAgentConfig({
        upstream: '127.0.0.1:9',
        database: join(root, 'instance.db'),
        dataDir: join(root, 'node'),
        consoleListen: '127.0.0.1:0',
        consoleTlsHandshakeTimeoutMs: 400,
        consoleHeadTimeoutMs: 500,
        consoleRequestTimeoutMs: 800,
        metricsListen: '127.0.0.1:0',
        metricsHeadTimeoutMs: 400,
        metricsRequestTimeoutMs: 700,
        logLevel: 'silent',
      }),
    )
  })
  after(async () => {
    await node?.close()
    await rm(root, { recursive: true, force: true })
  })

  const consolePort = (): number => node.instanceConsole!.address.port
  function tls(): Socket {
    return tlsConnect({ host: '127.0.0.1', port: consolePort(), ca: node.instanceConsole!.certificatePem, servername: 'localhost', checkServerIdentity: () => undefined })
  }

  test('on-prem console: a connection that never starts its TLS handshake is closed', async () => {
    const r = await drip(connect(consolePort(), '127.0.0.1'), '', [], 1000)
    assert.equal(r.closedByServer, true, 'closed by the TLS handshake timeout')
    assert.equal(r.received, '')
  })

  test('on-prem console: a TLS handshake dripped one byte at a time is closed', async () => {
    const hello = Buffer.from('160301020001', 'hex').toString('latin1')
    const r = await drip(connect(consolePort(), '127.0.0.1'), hello, lines(60, () => '\u0003'), 100)
    assert.equal(r.closedByServer, true)
    assert.ok(r.written < 60, `closed before the drip ran out (${r.written} bytes dripped)`)
  })

  test('on-prem console: a request head dripped line by line is answered 408 and closed', async () => {
    const r = await drip(tls(), 'GET /api/v1/instance HTTP/1.1\r\nHost: localhost\r\n', lines(60, (i) => `X-Drip-${i}: 1\r\n`), 100)
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 408 /)
    assert.ok(r.written < 60)
  })

  test('on-prem console: a sign-in body dripped byte by byte is answered 408 and closed', async () => {
    const body = JSON.stringify({ username: 'admin', password: 'never-complete' })
    const r = await drip(tls(), signInHead('/api/v1/session', body.length), [...body], 100)
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 408 /)
    assert.ok(r.written < body.length, 'the body never completed')
  })

  test('agent metrics listener: a request head dripped line by line is closed', async () => {
    const r = await drip(connect(node.metricsAddress!.port, '127.0.0.1'), 'GET /metrics HTTP/1.1\r\nHost: localhost\r\n', lines(60, (i) => `X-Drip-${i}: 1\r\n`), 100)
    assert.equal(r.closedByServer, true)
    // The listener drops a client error without an answer: a scraper has nothing to learn from one.
    assert.equal(r.received, '')
    assert.ok(r.written < 60, `closed before the drip ran out (${r.written} lines dripped)`)
  })

  test('agent metrics listener: a request body dripped byte by byte is cut off, although it was answered (405) at once', async () => {
    const r = await drip(connect(node.metricsAddress!.port, '127.0.0.1'), 'POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 60\r\n\r\n', lines(60, () => 'x'), 100)
    assert.equal(r.closedByServer, true)
    assert.match(r.received, /^HTTP\/1\.1 405 /)
    assert.ok(r.written < 60, `closed before the drip ran out (${r.written} bytes dripped)`)
  })
})
