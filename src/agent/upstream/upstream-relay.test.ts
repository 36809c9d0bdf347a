import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { after, test } from 'node:test'
import type { TunnelError } from '../../errors/index.ts'
import { silentLogger } from '../../observability/index.ts'
import { NO_AGENT_METRICS, type AgentMetricsSink } from '../../observability/metrics/index.ts'
import type { Refusal } from '../../protocol/index.ts'
import { eventually } from '../../testing/eventually.ts'
import { freePort } from '../../testing/free-port.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { reusedBufferReader, socketPair } from '../../testing/session-pair.ts'
import { MAX_WINDOW_GROWTH_FACTOR, SessionMux, type RelayStream, type SessionMuxOptions } from '../../transport/session-mux/index.ts'
import { UpstreamRelay } from './upstream-relay.ts'
import { positionPattern } from '../../testing/byte-pattern.ts'

checkNoLeakedHandles()

const MUX: Omit<SessionMuxOptions, 'role'> = { streamWindowBytes: 64 * 1024, maxStreams: 10, pingIntervalMs: 60_000, pingTimeoutMs: 60_000, pingTimeoutMessage: 'no ping answer' }

/** What the server end of one relay heard from the agent. */
interface ServerView {
  stream: RelayStream
  accepted: boolean
  refused: Refusal | undefined
  got: Buffer[]
  ended: boolean
  lost: TunnelError | undefined
}

/**
 * A session whose agent end relays each stream to `port` with UpstreamRelay, as the connector does,
 * and reads the way the agent's session connection does (decision 56, reusedBufferReader).
 */
async function relaySession(port: number, connectTimeoutMs = 5000, metrics?: Partial<AgentMetricsSink>): Promise<{ open(): ServerView; close(): Promise<void> }> {
  const [a, b] = await socketPair()
  const server = new SessionMux(a, { ...MUX, role: 'server' })
  const agent = new SessionMux(b, { ...MUX, role: 'agent', input: reusedBufferReader(b) })
  agent.on('stream', (stream: RelayStream) => new UpstreamRelay(stream, { host: '127.0.0.1', port }, { connectTimeoutMs, log: silentLogger(), metrics: { ...NO_AGENT_METRICS, ...metrics } }))
  await Promise.all([once(server, 'settings'), once(agent, 'settings')])
  return {
    open() {
      const stream = server.open('192.0.2.7')
      const view: ServerView = { stream, accepted: false, refused: undefined, got: [], ended: false, lost: undefined }
      stream.attach({
        accepted: () => (view.accepted = true),
        refused: (r) => (view.refused = r),
        data: (c) => view.got.push(Buffer.from(c)),
        end: () => (view.ended = true),
        lost: (r) => (view.lost = r),
        writable: () => {},
      })
      return view
    },
    async close() {
      const closed = [server, agent].filter((m) => !m.closed).map((m) => once(m, 'close'))
      server.destroy()
      agent.destroy()
      await Promise.all(closed)
    },
  }
}

/** An upstream app on loopback that records each connection. */
async function upstream(onConnection: (s: Socket) => void): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = []
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s)
    onConnection(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  after(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return { server, port: (server.address() as { port: number }).port, sockets }
}

test('the stream is accepted once the upstream connection is open, and bytes pass both ways with half-closes', async () => {
  const app = await upstream((s) => {
    const got: Buffer[] = []
    s.on('data', (c: Buffer) => got.push(c))
    s.on('end', () => s.end(`echo:${Buffer.concat(got).toString()}`))
  })
  const session = await relaySession(app.port)
  try {
    const view = session.open()
    view.stream.write(Buffer.from('sent before the upstream accepted'))
    view.stream.end()
    await eventually(() => view.ended, 'the upstream answers and ends')
    assert.equal(view.accepted, true)
    assert.equal(Buffer.concat(view.got).toString(), 'echo:sent before the upstream accepted')
  } finally {
    await session.close()
  }
})

test('a refused upstream connection is a REFUSE with TUN_ERR_UPSTREAM_REFUSED naming the port, never an accept', async () => {
  const port = await freePort()
  const session = await relaySession(port)
  try {
    const view = session.open()
    await eventually(() => view.refused !== undefined, 'the refusal arrives')
    assert.equal(view.refused!.code, 'TUN_ERR_UPSTREAM_REFUSED')
    assert.match(view.refused!.message, new RegExp(`127\\.0\\.0\\.1:${port}: ECONNREFUSED`))
    assert.equal(view.accepted, false)
  } finally {
    await session.close()
  }
})

test('the server aborting the stream closes the upstream connection', async () => {
  const app = await upstream(() => {})
  const session = await relaySession(app.port)
  try {
    const view = session.open()
    await eventually(() => view.accepted && app.sockets.length === 1, 'connected')
    // The app's end is half-open capable: the relay's close reaches it as the end of its input.
    let ended = false
    app.sockets[0]!.once('end', () => (ended = true)).resume()
    view.stream.abort()
    await eventually(() => ended, "the app's connection is closed")
  } finally {
    await session.close()
  }
})

test('the upstream going away mid-relay aborts the stream (the server sees it lost), not a clean end', async () => {
  const app = await upstream((s) => s.write('partial answer'))
  const session = await relaySession(app.port)
  try {
    const view = session.open()
    await eventually(() => view.got.length > 0, 'the first bytes arrive')
    app.sockets[0]!.resetAndDestroy()
    await eventually(() => view.lost !== undefined, 'the stream is lost')
    assert.equal(view.ended, false)
    assert.equal(Buffer.concat(view.got).toString(), 'partial answer')
  } finally {
    await session.close()
  }
})

test('an app that does not read holds the stream (no credit), so the agent buffers at most a window, and no byte is lost', async () => {
  let release: () => void = () => {}
  const released = new Promise<void>((r) => (release = r))
  const total = 32 * 1024 * 1024
  const app = await upstream((s) => {
    s.pause()
    void released.then(() => s.resume())
    let got = 0
    s.on('data', (c: Buffer) => {
      got += c.length
      if (got === total) s.end(`got ${got}`)
    })
  })
  // The agent's socket to the app, through the metrics sink the relay reports it to.
  let toApp: Socket | undefined
  const session = await relaySession(app.port, 5000, { upstreamConnected: (s: Socket) => (toApp = s) })
  try {
    const view = session.open()
    await eventually(() => view.accepted && toApp !== undefined, 'connected')
    const chunk = Buffer.alloc(64 * 1024, 1)
    for (let sent = 0; sent < total; sent += chunk.length) view.stream.write(chunk)
    // Once the kernel's buffers are full the agent's socket starts keeping bytes itself ...
    await eventually(() => toApp!.writableLength > 0, "the app's socket buffers fill")
    await new Promise((r) => setTimeout(r, 300))
    // ... and then no more than the stream window comes: the server is not granted credit. The
    // window is the grown one (decision 55): the stream moved megabytes while the kernel took them.
    assert.ok(toApp!.writableLength <= 2 * MAX_WINDOW_GROWTH_FACTOR * MUX.streamWindowBytes, `the agent keeps ${toApp!.writableLength} bytes for the app`)
    assert.equal(view.stream.writableNeedDrain, true, 'the server waits')
    release()
    await eventually(() => view.ended, 'every byte reached the app', 30_000)
    assert.equal(Buffer.concat(view.got).toString(), `got ${total}`)
  } finally {
    await session.close()
  }
})

test('reads into the shared buffer while the server grants credit a little at a time: two streams arrive intact and in order (#18)', async () => {
  const total = 4 * 1024 * 1024
  const payloads = [positionPattern(total, 1), positionPattern(total, 2)]
  let next = 0
  const app = await upstream((s) => {
    const payload = payloads[next++]!
    // Odd-sized writes, so the agent's reads end anywhere in a frame.
    let at = 0
    const more = (): void => {
      while (at < payload.length) {
        const n = Math.min(5003, payload.length - at)
        const ok = s.write(payload.subarray(at, at + n))
        at += n
        if (!ok) return void s.once('drain', more)
      }
      s.end()
    }
    more()
  })
  const session = await relaySession(app.port)
  const views: ServerView[] = []
  // The server passes bytes on in small steps: grants come late and in pieces, so the agent's
  // reads often find no credit or part of one and must keep a copy.
  const stepper = setInterval(() => {
    for (const v of views) {
      v.stream.release()
      v.stream.hold()
    }
  }, 2)
  try {
    for (let i = 0; i < 2; i++) {
      const view = session.open()
      view.stream.hold()
      view.stream.end()
      views.push(view)
    }
    await eventually(() => views.every((v) => v.ended), 'both answers arrived', 60_000)
    views.forEach((v, i) => {
      const got = Buffer.concat(v.got)
      assert.equal(got.length, total)
      assert.ok(got.equals(payloads[i]!), `stream ${i + 1}: bytes in order, none lost, doubled or overwritten`)
    })
  } finally {
    clearInterval(stepper)
    await session.close()
  }
})

test('the server aborting a stream in the middle of a bulk answer closes the app connection; the next stream of the session arrives intact (#18)', async () => {
  // More than loopback's socket buffers hold, so the app is still sending when the abort comes.
  const total = 32 * 1024 * 1024
  const payloads = [positionPattern(total, 3), positionPattern(1024 * 1024, 4)]
  let next = 0
  const app = await upstream((s) => {
    s.on('error', () => {})
    s.end(payloads[next++]!)
  })
  const session = await relaySession(app.port)
  try {
    const first = session.open()
    first.stream.end()
    await eventually(() => first.got.reduce((n, b) => n + b.length, 0) > 256 * 1024, 'the bulk answer is under way')
    first.stream.abort()
    await eventually(() => app.sockets[0]!.destroyed, "the app's connection is closed")
    const got = Buffer.concat(first.got)
    assert.ok(got.equals(payloads[0]!.subarray(0, got.length)), 'what came before the abort is intact')
    const second = session.open()
    second.stream.end()
    await eventually(() => second.ended, 'the next answer arrived')
    assert.ok(Buffer.concat(second.got).equals(payloads[1]!))
  } finally {
    await session.close()
  }
})

test('uploads to an app that reads in bursts arrive intact while the agent keeps what it received in recycled slabs (decision 56)', async () => {
  const total = 8 * 1024 * 1024
  const payloads = [positionPattern(total, 3), positionPattern(total, 4)]
  let next = 0
  const app = await upstream((s) => {
    const expected = payloads[next++]!
    let at = 0
    let bad: number | undefined
    // Reads a little, then stops for a while: the agent's socket to the app keeps what the kernel
    // will not take, so received chunks wait in their slabs across many later reads.
    s.on('data', (c: Buffer) => {
      for (let i = 0; i < c.length && bad === undefined; i++) if (c[i] !== expected[at + i]) bad = at + i
      at += c.length
      s.pause()
      setTimeout(() => s.resume(), 1)
      if (at === total) s.end(bad === undefined ? 'intact' : `byte ${bad} differs`)
    })
  })
  const session = await relaySession(app.port)
  try {
    const views = [session.open(), session.open()]
    await eventually(() => views.every((v) => v.accepted), 'both connected')
    await Promise.all(
      views.map(
        (view, i) =>
          new Promise<void>((resolve) => {
            let sent = 0
            const pump = (): void => {
              while (sent < total) {
                const n = Math.min(48 * 1024, total - sent)
                const ok = view.stream.write(payloads[i]!.subarray(sent, sent + n))
                sent += n
                if (!ok) return
              }
              view.stream.end()
              resolve()
            }
            view.stream.attach({ data: (c) => view.got.push(Buffer.from(c)), end: () => (view.ended = true), lost: (r) => (view.lost = r), writable: pump })
            pump()
          }),
      ),
    )
    await eventually(() => views.every((v) => v.ended), 'both apps answered', 60_000)
    assert.deepEqual(
      views.map((v) => Buffer.concat(v.got).toString()),
      ['intact', 'intact'],
    )
  } finally {
    await session.close()
  }
})

