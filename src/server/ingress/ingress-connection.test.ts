import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import { test } from 'node:test'
import { silentLogger } from '../../observability/index.ts'
import { positionPattern } from '../../testing/byte-pattern.ts'
import { eventually } from '../../testing/eventually.ts'
import { countWrites } from '../../testing/count-writes.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { openSessionPair, scribbledReads, type ScriptedStream, type SessionPair } from '../../testing/session-pair.ts'
import { receiveSlabStats } from '../../transport/session-mux/receive-slabs.ts'
import { SessionRegistry } from '../agent-gateway/session-registry.ts'
import { HostRouter } from './host-router.ts'
import { IngressConnection, type IngressConnectionDeps } from './ingress-connection.ts'
import { OncePerInterval } from './once-per-interval.ts'

// IngressConnection alone: a caller on loopback on one side, real agent sessions on the other whose
// agent ends the tests script (accept, answer, refuse, abort, leave), so each rule of the relay
// (pipelining, replay, moving between sessions, upgrades, unsolicited bytes) is shown where it lives.

checkNoLeakedHandles()

const TUNNEL = 'tunnelone'
const HOST = `${TUNNEL}.example.test`
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

interface Rig {
  registry: SessionRegistry
  sessions: SessionPair[]
  /** the ingress's end of each caller connection, in the order they were accepted */
  accepted: Socket[]
  /** a new caller connection to the ingress */
  caller(): Promise<Caller>
}

interface Caller {
  socket: Socket
  send(text: string): void
  /** everything the ingress sent so far */
  readonly got: string
  until(pattern: RegExp, what: string): Promise<void>
  closed: boolean
}

async function withRig(sessionCount: number, body: (rig: Rig) => Promise<void>, deps: Partial<IngressConnectionDeps> = {}): Promise<void> {
  const registry = new SessionRegistry()
  const sessions: SessionPair[] = []
  // A drain that outlasts every wait here: a session finishes draining only because its connections let go.
  for (let i = 0; i < sessionCount; i++) sessions.push(await openSessionPair({ tunnelId: TUNNEL, drainTimeoutMs: 60_000 }))
  const connections = new Set<IngressConnection>()
  const accepted: Socket[] = []
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted.push(socket)
    const conn = new IngressConnection(socket, {
      registry,
      router: new HostRouter('example.test'),
      describeTunnel: async () => ({ status: 'DISCONNECTED' }),
      log: silentLogger(),
      limits: {},
      timeouts: { headTimeoutMs: 5000, idleTimeoutMs: 10_000, upgradedIdleTimeoutMs: 10_000, upstreamResponseTimeoutMs: 5000, bodyTimeoutMs: 5000, bodyMinBytesPerSecond: 1 },
      maxStreamsPerSession: 100,
      proto: 'http',
      unsolicitedWarnings: new OncePerInterval(60_000),
      // The client's reads the way the ingress makes them, scribbled over after each one.
      readInto: scribbledReads,
      ...deps,
    })
    connections.add(conn)
    socket.once('close', () => connections.delete(conn))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  const callers: Socket[] = []
  try {
    await body({
      registry,
      sessions,
      accepted,
      async caller() {
        const socket = connect(port, '127.0.0.1')
        callers.push(socket)
        await once(socket, 'connect')
        let got = ''
        const c: Caller = {
          socket,
          closed: false,
          send: (text) => socket.write(Buffer.from(text, 'latin1')),
          get got() {
            return got
          },
          until: (pattern, what) => eventually(() => pattern.test(got), what),
        }
        socket.on('data', (d: Buffer) => (got += d.toString('latin1')))
        socket.on('error', () => {})
        socket.on('close', () => (c.closed = true))
        return c
      },
    })
  } finally {
    for (const s of callers) s.destroy()
    for (const c of connections) c.destroy()
    server.close()
    await Promise.all(sessions.map((p) => p.close()))
  }
}

const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}\r\n`

/** The first session takes the tunnel, a new caller sends `text`, and the relay stream it opened reaches the agent. */
async function callerOnStream(rig: Rig, text: string): Promise<{ c: Caller; s: ScriptedStream }> {
  rig.registry.add(rig.sessions[0]!.session)
  const c = await rig.caller()
  c.send(text)
  return { c, s: await rig.sessions[0]!.agent.stream(0) }
}

test('a request goes to the agent with forwarding headers on a stream carrying the caller address; the answer comes back', async () => {
  await withRig(1, async (rig) => {
    const { c, s } = await callerOnStream(rig, get('/a'))
    await eventually(() => s.text().endsWith('\r\n\r\n'), 'the head reaches the agent')
    assert.equal(s.address, '127.0.0.1')
    assert.match(s.text(), new RegExp(`^GET /a HTTP/1.1\r\nHost: ${HOST}\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ${HOST}\r\n\r\n$`))
    s.accept()
    s.send(OK)
    await c.until(/ok$/, 'the answer')
    // Kept alive: the next request rides the same stream.
    c.send(get('/b'))
    await eventually(() => s.text().includes('GET /b'), 'the second request on the same stream')
    assert.equal(rig.sessions[0]!.agent.streams.length, 1)
  })
})

test('a head with nothing to drop reaches the agent as the caller sent it; one with a spoofed X-Forwarded-For is rewritten', async () => {
  await withRig(1, async (rig) => {
    const { c, s } = await callerOnStream(rig, `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nAccept:  */*  \r\nX-A:b\r\n\r\n`)
    await eventually(() => s.text().endsWith('\r\n\r\n'), 'the first head reaches the agent')
    assert.equal(s.text(), `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nAccept:  */*  \r\nX-A:b\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ${HOST}\r\n\r\n`)
    s.accept()
    s.send(OK)
    await c.until(/ok$/, 'the first answer')
    const before = s.text().length
    c.send(`GET /b HTTP/1.1\r\nHost: ${HOST}\r\nX-Forwarded-For: 10.9.9.9\r\nAccept:  */*  \r\n\r\n`)
    await eventually(() => s.text().length > before && s.text().endsWith('\r\n\r\n'), 'the second head reaches the agent')
    assert.equal(s.text().slice(before), `GET /b HTTP/1.1\r\nHost: ${HOST}\r\nAccept: */*\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ${HOST}\r\n\r\n`)
  })
})

test('a small answer leaves for the caller in one write, head and body together, and so do answers that arrive together', async () => {
  await withRig(1, async (rig) => {
    const { c, s } = await callerOnStream(rig, get('/a'))
    await eventually(() => s.text().endsWith('\r\n\r\n'), 'the head reaches the agent')
    const writes = countWrites(rig.accepted[0]!)
    s.accept()
    s.send(OK)
    await c.until(/ok$/, 'the answer')
    assert.deepEqual(writes, { single: 1, vectored: 0 })
    // Two pipelined requests answered in one piece: one write of both answers.
    c.send(get('/b') + get('/c'))
    await eventually(() => s.text().includes('GET /c'), 'both requests reach the agent')
    s.send(OK + OK)
    await c.until(/okHTTP\/1\.1 200 OK\r\nContent-Length: 2\r\n\r\nok$/, 'both answers')
    assert.deepEqual(writes, { single: 2, vectored: 0 })
  })
})

test('pipelined requests are answered in order, and a refused one waits for the answers before it', async () => {
  await withRig(1, async (rig) => {
    // Two requests, then one for another tunnel (421), in one write.
    const { c, s } = await callerOnStream(rig, get('/1') + get('/2') + `GET /3 HTTP/1.1\r\nHost: othertunnel.example.test\r\n\r\n`)
    await eventually(() => s.text().includes('GET /2'), 'both requests reach the agent')
    assert.equal(s.text().includes('GET /3'), false, 'the misdirected one is not sent on')
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(c.got, '', 'the refusal does not overtake the answers owed')
    s.accept()
    s.send('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none')
    s.send('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo')
    await eventually(() => c.closed, 'the connection closes after the refusal')
    const statuses = [...c.got.matchAll(/HTTP\/1.1 (\d{3})/g)].map((m) => m[1])
    assert.deepEqual(statuses, ['200', '200', '421'])
    assert.match(c.got, /one.*two.*TUN_ERR_INGRESS_MISDIRECTED/s)
  })
})

test('a stream the agent aborts before confirming it is replayed on another session with every byte, even a POST body', async () => {
  await withRig(2, async (rig) => {
    const [a, b] = rig.sessions as [SessionPair, SessionPair]
    rig.registry.add(a.session)
    const c = await rig.caller()
    const post = `POST /order HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n\r\nhello`
    c.send(post)
    const first = await a.agent.stream(0)
    await eventually(() => first.text().endsWith('hello'), 'the request reaches the first agent')
    // The first agent is leaving (GOAWAY) and gives up the stream it never confirmed.
    rig.registry.add(b.session)
    a.agent.mux.goaway()
    await eventually(() => !a.session.isOpen, 'the session drains')
    first.stream.abort()
    const second = await b.agent.stream(0)
    await eventually(() => second.text() === first.text(), 'the same bytes on the other session')
    second.accept()
    second.send(OK)
    await c.until(/ok$/, 'the answer from the other session')
    assert.equal(c.got.startsWith('HTTP/1.1 200 OK'), true)
  })
})

/** A POST of 4 MiB sent faster than the stream's window lets it leave; resolves once the agent has it all, checked. */
async function uploadManyWindows(rig: Rig): Promise<void> {
  const bytes = 4 * 1024 * 1024
  const body = positionPattern(bytes, 1)
  const { c, s } = await callerOnStream(rig, `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${bytes}\r\n\r\n`)
  s.accept()
  // Faster than the stream's window (64 KiB here) allows: what waits for credit is kept by the stream.
  for (let at = 0; at < bytes; at += 256 * 1024) c.socket.write(body.subarray(at, at + 256 * 1024))
  const headBytes = await (async () => {
    await eventually(() => s.text().includes('\r\n\r\n'), 'the head')
    return s.text().indexOf('\r\n\r\n') + 4
  })()
  await eventually(() => s.received.reduce((n, b) => n + b.length, 0) === headBytes + bytes, 'the whole body', 20_000)
  const got = Buffer.concat(s.received).subarray(headBytes)
  assert.ok(got.equals(body), `the body differs from byte ${got.findIndex((b, i) => b !== body[i])}`)
}

test('an upload many windows long reaches the agent byte for byte', async () => {
  await withRig(1, uploadManyWindows)
})

test('where a socket cannot read into a shared buffer, the connection reads its data events: the same upload arrives whole', async () => {
  await withRig(1, uploadManyWindows, { readInto: () => false })
})

test('after the agent confirmed the stream, a lost session replays only idempotent bodyless requests', async () => {
  await withRig(3, async (rig) => {
    const [a, b, d] = rig.sessions as [SessionPair, SessionPair, SessionPair]
    rig.registry.add(a.session)
    const c = await rig.caller()
    c.send(get('/safe'))
    const first = await a.agent.stream(0)
    first.accept()
    await eventually(() => [...a.serverMux.streams()].every((st) => st.accepted), 'the server heard the ACCEPT')
    await eventually(() => first.text().includes('GET /safe'), 'sent')
    rig.registry.add(b.session)
    a.session.destroy()
    const replayed = await b.agent.stream(0)
    await eventually(() => replayed.text().includes('GET /safe'), 'the GET is sent again on the live session')
    replayed.accept()
    replayed.send(OK)
    await c.until(/ok$/, 'the answer after the replay')

    // A POST with a body may have reached the app: it is not sent twice.
    const p = await rig.caller()
    rig.registry.add(d.session)
    p.send(`POST /pay HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 2\r\n\r\n42`)
    await eventually(() => [b, d].some((x) => x.agent.streams.some((st) => st.text().includes('POST /pay'))), 'the POST is sent')
    const holder = [b, d].find((x) => x.agent.streams.some((st) => st.text().includes('POST /pay')))!
    const other = holder === b ? d : b
    const before = other.agent.streams.length
    holder.agent.streams.find((st) => st.text().includes('POST /pay'))!.accept()
    await eventually(() => [...holder.serverMux.streams()].every((st) => st.accepted), 'the server heard the ACCEPT')
    holder.session.destroy()
    await eventually(() => p.closed, 'the caller gets its answer and the connection closes')
    assert.match(p.got, /^HTTP\/1.1 502 .*TUN_ERR_SESSION_LOST/s)
    assert.equal(other.agent.streams.length, before, 'nothing was replayed')
  })
})

test('between requests a connection leaves a draining session; its next request opens a stream on another', async () => {
  await withRig(2, async (rig) => {
    const [a, b] = rig.sessions as [SessionPair, SessionPair]
    rig.registry.add(a.session)
    const c = await rig.caller()
    c.send(get('/1'))
    const first = await a.agent.stream(0)
    first.accept()
    first.send(OK)
    await c.until(/ok$/, 'the first answer')
    rig.registry.add(b.session)
    const drained = a.session.close()
    // The idle connection lets its stream go at once, so the session can finish.
    await eventually(() => first.lost !== undefined || first.stream.closed, 'the stream on the draining session is released')
    await drained
    c.send(get('/2'))
    const second = await b.agent.stream(0)
    await eventually(() => second.text().includes('GET /2'), 'the next request on the other session')
    assert.equal(c.closed, false, 'the caller kept its connection')
  })
})

test('a 101 turns the connection into a byte pipe both ways', async () => {
  await withRig(1, async (rig) => {
    const { c, s } = await callerOnStream(rig, get('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n'))
    await eventually(() => s.text().endsWith('\r\n\r\n'), 'the upgrade request')
    assert.match(s.text(), /\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n/)
    const head = s.text().length
    // Sent before the answer: held until the 101 (whatever its read buffer held since), then passed on.
    c.send('early-frame')
    await new Promise((r) => setTimeout(r, 50))
    c.send('+more')
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(s.text().length, head, 'nothing passes before the upgrade is answered')
    s.accept()
    s.send('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfrom-app')
    await c.until(/from-app$/, 'the 101 and the first pipe bytes')
    await eventually(() => s.text().length === head + 'early-frame+more'.length, 'the held bytes reach the agent')
    assert.equal(s.text().slice(head), 'early-frame+more')
    const sent = s.text().length
    c.send('GET not-http \x00\x01')
    await eventually(() => s.text().length > sent, 'raw bytes reach the agent')
    assert.equal(s.text().slice(sent), 'GET not-http \x00\x01', 'passed on unparsed')
  })
})

test('bytes the app sends with no request outstanding are dropped with its stream; the caller keeps its connection', async () => {
  await withRig(1, async (rig) => {
    const { c, s } = await callerOnStream(rig, get('/1'))
    s.accept()
    await eventually(() => s.text().includes('GET /1'), 'sent')
    s.send(OK + 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra')
    await c.until(/ok$/, 'the answer')
    await eventually(() => s.stream.closed, 'the stream that sent unasked bytes is let go')
    c.send(get('/2'))
    const next = await rig.sessions[0]!.agent.stream(1)
    await eventually(() => next.text().includes('GET /2'), 'the next request on a fresh stream')
    next.accept()
    next.send(OK)
    await eventually(() => c.got.split('HTTP/1.1').length === 3, 'two answers')
    assert.equal(c.got.includes('extra'), false, 'the unsolicited answer never reached the caller')
  })
})

test('a caller that reads slowly gets every byte of a long answer; the memory it was received into is reused only once written', async () => {
  await withRig(1, async (rig) => {
    const bytes = 24 * 1024 * 1024
    const body = positionPattern(bytes, 1)
    const { c, s } = await callerOnStream(rig, get('/big'))
    await eventually(() => s.text().endsWith('\r\n\r\n'), 'the head reaches the agent')
    s.accept()
    // The caller reads nothing for a while: the kernel's buffers fill and the ingress's writes queue
    // in the socket, each still pointing into the memory the DATA was received into.
    c.socket.pause()
    s.send(`HTTP/1.1 200 OK\r\nContent-Length: ${bytes}\r\n\r\n`)
    for (let at = 0; at < bytes; at += 256 * 1024) s.send(body.subarray(at, at + 256 * 1024))
    await eventually(() => rig.sessions[0]!.serverMux.streamCount === 1 && c.socket.readableLength === 0, 'the caller is paused')
    await new Promise((r) => setTimeout(r, 300))
    c.socket.resume()
    await eventually(() => c.got.length >= bytes, 'the whole answer', 20_000)
    const got = Buffer.from(c.got.slice(c.got.indexOf('\r\n\r\n') + 4), 'latin1')
    assert.equal(got.length, bytes)
    assert.ok(got.equals(body), `the answer differs from byte ${got.findIndex((b, i) => b !== body[i])}`)
    // Every payload was released once written (its slab is written into again, not left to the collector).
    assert.equal(receiveSlabStats().currentRefs, 0, 'payloads still held in the receive slab')
  })
})

test('with no live session the caller learns whether the tunnel is unknown (404) or not connected (503)', async () => {
  await withRig(0, async (rig) => {
    const c = await rig.caller()
    c.send(get('/'))
    await eventually(() => c.closed, 'answered and closed')
    assert.match(c.got, /^HTTP\/1.1 503 .*"code":"TUN_ERR_INGRESS_NO_SESSION".*tunnel status DISCONNECTED/s)
  })
  await withRig(
    0,
    async (rig) => {
      const c = await rig.caller()
      c.send(get('/'))
      await eventually(() => c.closed, 'answered and closed')
      assert.match(c.got, /^HTTP\/1.1 404 .*"code":"TUN_ERR_INGRESS_UNKNOWN_TUNNEL"/s)
    },
    { describeTunnel: async () => undefined },
  )
})
