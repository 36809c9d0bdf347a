import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { TunnelError } from '../../errors/index.ts'
import { FLAG_END, SessionFrameDecoder, SessionFrameType, encodeCredit, encodeFrame, encodeSettings } from '../../protocol/index.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { eventually } from '../../testing/eventually.ts'
import { countWrites } from '../../testing/count-writes.ts'
import { positionPattern } from '../../testing/byte-pattern.ts'
import { SessionMux, type SessionMuxOptions } from './session-mux.ts'
import type { RelayStream, RelayStreamHandlers } from './relay-stream.ts'
import { reusedBufferReader, socketPair } from '../../testing/session-pair.ts'
import { RECEIVE_SLAB_BYTES, receiveSlabStats, releaseReceived } from './receive-slabs.ts'

checkNoLeakedHandles()

const BASE: Omit<SessionMuxOptions, 'role'> = {
  streamWindowBytes: 64 * 1024,
  maxStreams: 10,
  pingIntervalMs: 60_000,
  pingTimeoutMs: 60_000,
  pingTimeoutMessage: 'peer did not answer a ping',
}

interface Pair {
  server: SessionMux
  agent: SessionMux
  /** streams the agent was given, with what arrived on each */
  accepted: Array<{ stream: RelayStream; address: string; got: Buffer[]; ended: boolean; lost?: TunnelError }>
  close(): Promise<void>
}

async function muxPair(serverOptions: Partial<SessionMuxOptions> = {}, agentOptions: Partial<SessionMuxOptions> = {}, agentHandlers?: (s: RelayStream) => Partial<RelayStreamHandlers>): Promise<Pair> {
  const [a, b] = await socketPair()
  const server = new SessionMux(a, { ...BASE, role: 'server', ...serverOptions })
  const agent = new SessionMux(b, { ...BASE, role: 'agent', ...agentOptions })
  const accepted: Pair['accepted'] = []
  agent.on('stream', (stream: RelayStream, address: string) => {
    const entry: Pair['accepted'][number] = { stream, address, got: [], ended: false }
    accepted.push(entry)
    stream.attach({
      data: (c) => entry.got.push(Buffer.from(c)),
      end: () => (entry.ended = true),
      lost: (r) => (entry.lost = r),
      writable: () => {},
      ...agentHandlers?.(stream),
    })
  })
  await Promise.all([once(server, 'settings'), once(agent, 'settings')])
  return {
    server,
    agent,
    accepted,
    async close() {
      const closed = [server, agent].filter((m) => !m.closed).map((m) => once(m, 'close'))
      server.destroy()
      agent.destroy()
      await Promise.all(closed)
    },
  }
}

function collector(): { handlers: RelayStreamHandlers; got: Buffer[]; events: string[]; lost: TunnelError[] } {
  const got: Buffer[] = []
  const events: string[] = []
  const lost: TunnelError[] = []
  return {
    got,
    events,
    lost,
    handlers: {
      accepted: () => events.push('accepted'),
      refused: (r) => events.push(`refused ${r.code}`),
      data: (c) => got.push(Buffer.from(c)),
      end: () => events.push('end'),
      lost: (r) => {
        events.push('lost')
        lost.push(r)
      },
      writable: () => events.push('writable'),
    },
  }
}

test('a stream carries bytes both ways and half-closes cleanly; both ends forget it', async () => {
  const p = await muxPair()
  try {
    const c = collector()
    const s = p.server.open('203.0.113.7')
    s.attach(c.handlers)
    assert.equal(s.write(Buffer.from('hello ')), true)
    s.write(Buffer.from('agent'))
    await eventually(() => p.accepted.length === 1 && Buffer.concat(p.accepted[0]!.got).toString() === 'hello agent', 'agent got the bytes')
    const a = p.accepted[0]!
    assert.equal(a.address, '203.0.113.7')
    a.stream.accept()
    a.stream.write(Buffer.from('hi server'))
    a.stream.end()
    await eventually(() => c.events.includes('end'), 'server saw the end')
    assert.deepEqual(c.events, ['accepted', 'end'])
    assert.equal(Buffer.concat(c.got).toString(), 'hi server')
    assert.equal(p.server.streamCount, 1, 'half-closed: the server may still send')
    s.end()
    await eventually(() => a.ended && p.agent.streamCount === 0 && p.server.streamCount === 0, 'both ends forgot the stream')
    assert.equal(a.lost, undefined)
  } finally {
    await p.close()
  }
})

test('flow control: a receiver that holds gets no more than its window; release lets the rest through in order', async () => {
  const window = 64 * 1024
  let agentStream: RelayStream | undefined
  const p = await muxPair({}, { streamWindowBytes: window }, (s) => {
    agentStream = s
    // The agent passes nothing on: it holds from the first byte.
    s.hold()
    return {}
  })
  try {
    const total = 1024 * 1024
    const payload = Buffer.alloc(total)
    for (let i = 0; i < total; i++) payload[i] = (i * 7) & 0xff
    const s = p.server.open('x')
    const c = collector()
    s.attach(c.handlers)
    let writes = 0
    let sent = 0
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(16 * 1024, total - sent)
        const more = s.write(payload.subarray(sent, sent + n))
        sent += n
        writes++
        if (!more) return
      }
    }
    c.handlers.writable = () => pump()
    pump()
    assert.ok(sent <= window + 16 * 1024, `the sender stopped at its window (sent ${sent})`)
    await eventually(() => p.accepted.length === 1 && p.accepted[0]!.got.reduce((n, b) => n + b.length, 0) === window, 'one window arrived')
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(p.accepted[0]!.got.reduce((n, b) => n + b.length, 0), window, 'and no more while held')
    agentStream!.release()
    // Holding stops now: grants follow every quarter window.
    await eventually(() => {
      if (p.accepted[0]!.got.reduce((n, b) => n + b.length, 0) === total) return true
      agentStream!.release()
      return false
    }, 'everything arrived after release')
    assert.ok(Buffer.concat(p.accepted[0]!.got).equals(payload), 'bytes in order, none lost or doubled')
    assert.ok(writes > 1)
  } finally {
    await p.close()
  }
})

/** Writes `total` bytes to a stream as a source that respects back-pressure would; resolves when all were accepted. */
function writeAll(s: RelayStream, c: ReturnType<typeof collector>, total: number): Promise<void> {
  return new Promise((resolve) => {
    let sent = 0
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(16 * 1024, total - sent)
        sent += n
        if (!s.write(Buffer.alloc(n, sent & 0xff))) return
      }
      resolve()
    }
    c.handlers.writable = pump
    pump()
  })
}

const received = (entry: { got: Buffer[] }): number => entry.got.reduce((n, b) => n + b.length, 0)

/** Holds the agent's end of a stream that has moved bulk, sends more, and returns what arrives while it is held: its window. */
async function bytesInFlightWhenHeld(p: Pair, index: number, s: RelayStream, c: ReturnType<typeof collector>): Promise<number> {
  const entry = p.accepted[index]!
  entry.stream.hold()
  const before = received(entry)
  void writeAll(s, c, 1024 * 1024)
  let last = -1
  // Arrivals stop once the sender has used the credit it had: the same count twice, 50 ms apart.
  await eventually(async () => {
    const now = received(entry)
    if (now === last && now > before) return true
    last = now
    await new Promise((r) => setTimeout(r, 50))
    return false
  }, 'arrivals stopped while held')
  return received(entry) - before
}

test('a stream that moves bulk grows its receive window to four times the base, out of the session budget it gives back at close', async () => {
  const base = 64 * 1024
  // Budget for one stream's whole growth: 64 → 128 → 256 KiB takes 192 KiB.
  const p = await muxPair({}, { streamWindowBytes: base, windowGrowthBytes: 3 * base })
  try {
    const bulk = async (): Promise<{ s: RelayStream; c: ReturnType<typeof collector>; index: number }> => {
      const s = p.server.open('x')
      const c = collector()
      s.attach(c.handlers)
      const index = p.accepted.length
      await writeAll(s, c, 1024 * 1024)
      await eventually(() => p.accepted[index] !== undefined && received(p.accepted[index]!) === 1024 * 1024, 'a megabyte arrived')
      return { s, c, index }
    }
    const first = await bulk()
    assert.equal(p.accepted[first.index]!.stream.recvWindowBytes, 4 * base, 'grown to four times the base')
    // The peer's credit grew with it: held, the stream takes its whole grown window (less what it
    // had taken and not yet granted back, under a quarter of the base).
    const firstInFlight = await bytesInFlightWhenHeld(p, first.index, first.s, first.c)
    assert.ok(firstInFlight > 4 * base - base / 4 && firstInFlight <= 4 * base, `a grown window in flight (${firstInFlight})`)

    const second = await bulk()
    assert.equal(p.accepted[second.index]!.stream.recvWindowBytes, base, 'the budget is spent: the base window')
    const secondInFlight = await bytesInFlightWhenHeld(p, second.index, second.s, second.c)
    assert.ok(secondInFlight > base - base / 4 && secondInFlight <= base, `the base window in flight (${secondInFlight})`)

    // Small exchanges never take a whole window: no growth, whatever the budget.
    first.s.abort()
    await eventually(() => p.agent.streamCount === 1, 'the agent closed the aborted stream')
    const small = p.server.open('y')
    small.attach(collector().handlers)
    for (let i = 0; i < 10; i++) small.write(Buffer.alloc(1000, i))
    await eventually(() => p.accepted[2] !== undefined && received(p.accepted[2]) === 10_000, 'small writes arrived')
    assert.equal(p.accepted[2]!.stream.recvWindowBytes, base)

    // The aborted stream's growth came back to the session: a new bulk stream grows again.
    const third = await bulk()
    assert.equal(p.accepted[third.index]!.stream.recvWindowBytes, 4 * base, 'grown again from the returned budget')
  } finally {
    await p.close()
  }
})

test('abort from the server: the agent hears lost, late frames of the dead stream are ignored, the session lives on', async () => {
  const p = await muxPair()
  try {
    const s = p.server.open('x')
    s.attach(collector().handlers)
    s.write(Buffer.from('a'))
    await eventually(() => p.accepted.length === 1, 'agent has the stream')
    const a = p.accepted[0]!
    a.stream.accept()
    s.abort()
    // The agent writes on while the abort is on its way: the server must ignore those frames.
    a.stream.write(Buffer.from('late'))
    await eventually(() => a.lost !== undefined, 'agent heard the abort')
    assert.equal(a.lost!.code, 'TUN_ERR_SESSION_LOST')
    assert.match(a.lost!.message, /server aborted/)
    const s2 = p.server.open('y')
    const c2 = collector()
    s2.attach(c2.handlers)
    await eventually(() => p.accepted.length === 2, 'a second stream opens on the same session')
    p.accepted[1]!.stream.accept()
    await eventually(() => c2.events.includes('accepted'), 'and is accepted')
    assert.equal(p.server.closed, false)
    assert.equal(p.agent.closed, false)
  } finally {
    await p.close()
  }
})

test('abort and refusal from the agent reach the server stream; the server may write to a dead stream without harm', async () => {
  const p = await muxPair()
  try {
    const c1 = collector()
    const s1 = p.server.open('x')
    s1.attach(c1.handlers)
    const c2 = collector()
    const s2 = p.server.open('y')
    s2.attach(c2.handlers)
    await eventually(() => p.accepted.length === 2, 'two streams')
    p.accepted[0]!.stream.refuse({ code: 'TUN_ERR_UPSTREAM_REFUSED', message: 'upstream 127.0.0.1:1: ECONNREFUSED' })
    p.accepted[1]!.stream.abort()
    await eventually(() => c1.events.length > 0 && c2.events.length > 0, 'both heard')
    assert.deepEqual(c1.events, ['refused TUN_ERR_UPSTREAM_REFUSED'])
    assert.deepEqual(c2.events, ['lost'])
    assert.match(c2.lost[0]!.message, /agent aborted/)
    assert.equal(s1.write(Buffer.from('x')), false)
    assert.equal(p.server.streamCount, 0)
  } finally {
    await p.close()
  }
})

test('GOAWAY from the agent: the server opens no more, and an OPEN already on its way is aborted unconfirmed', async () => {
  const p = await muxPair()
  try {
    const goaway = once(p.server, 'goaway')
    p.agent.goaway()
    const c = collector()
    // Sent before the server has seen the GOAWAY: crosses it on the wire.
    const s = p.server.open('x')
    s.attach(c.handlers)
    await goaway
    assert.equal(p.server.canOpen, false)
    assert.throws(() => p.server.open('y'), (err: unknown) => err instanceof TunnelError && err.code === 'TUN_ERR_SESSION_LOST')
    await eventually(() => c.events.includes('lost'), 'the crossing stream is aborted')
    assert.deepEqual(c.events, ['lost'], 'never accepted: safe to send elsewhere')
    assert.equal(p.accepted.length, 0)
  } finally {
    await p.close()
  }
})

test('an agent at its stream limit aborts an OPEN past it (the server counted a stream the agent had not yet closed)', async () => {
  const [a, b] = await socketPair()
  const agent = new SessionMux(a, { ...BASE, role: 'agent', maxStreams: 2 })
  const given: number[] = []
  agent.on('stream', (s: RelayStream) => {
    given.push(s.id)
    s.attach(collector().handlers)
  })
  const frames: Array<[number, number]> = []
  const decoder = new SessionFrameDecoder({ onData: () => {}, onFrame: (type, _flags, stream) => frames.push([type, stream]) })
  b.on('data', (c: Buffer) => decoder.push(c))
  try {
    b.write(Buffer.concat([encodeSettings({ streamWindowBytes: 65536, maxStreams: 1, maxDataPayloadBytes: 65536 }), ...[1, 2, 3].map((id) => encodeFrame(SessionFrameType.OPEN, 0, id))]))
    await eventually(() => frames.some(([t]) => t === SessionFrameType.ABORT), 'an ABORT came back')
    assert.deepEqual(given, [1, 2])
    assert.deepEqual(frames.filter(([t]) => t === SessionFrameType.ABORT), [[SessionFrameType.ABORT, 3]])
    assert.equal(agent.closed, false)
  } finally {
    agent.destroy()
    b.destroy()
  }
})

test('the server sees the agent SETTINGS limit: canOpen turns false at the peer maxStreams', async () => {
  const p = await muxPair({}, { maxStreams: 1 })
  try {
    p.server.open('a').attach(collector().handlers)
    assert.equal(p.server.canOpen, false)
  } finally {
    await p.close()
  }
})

test('a congested session tells writers to pause and wakes them when the socket drained', async () => {
  const p = await muxPair({ sendBufferBytes: 32 * 1024 }, { streamWindowBytes: 4 * 1024 * 1024 })
  try {
    const s = p.server.open('x')
    const c = collector()
    s.attach(c.handlers)
    const more = s.write(Buffer.alloc(48 * 1024, 1))
    assert.equal(more, false, 'over the send buffer')
    assert.equal(s.writableNeedDrain, true)
    await eventually(() => c.events.includes('writable'), 'woken after the drain')
    await eventually(() => p.accepted[0]?.got.reduce((n, b) => n + b.length, 0) === 48 * 1024, 'all bytes arrived')
  } finally {
    await p.close()
  }
})

test('writers that pause on false add one frame each to a congested session, and are woken when it drained', async () => {
  // The agent holds every stream: nothing is granted, and what is sent stays unread in the kernel.
  const p = await muxPair({ sendBufferBytes: 64 * 1024 }, { streamWindowBytes: 8 * 1024 * 1024 }, (s) => {
    s.hold()
    return {}
  })
  try {
    let peak = 0
    const woken: number[] = []
    for (let i = 0; i < 8; i++) {
      const s = p.server.open(`c${i}`)
      const c = collector()
      c.handlers.writable = () => woken.push(i)
      s.attach(c.handlers)
      // A source that respects back-pressure: it stops at the first false.
      for (let k = 0; k < 8 && s.write(Buffer.alloc(64 * 1024, k)); k++);
      peak = Math.max(peak, p.server.queuedBytes)
    }
    assert.ok(peak <= 64 * 1024 + 8 * (64 * 1024 + 64), `queued at most the send buffer and a frame per writer (peak ${peak})`)
    await eventually(() => woken.length === 8, 'every paused writer woken once the socket drained')
    assert.equal(p.server.closed, false)
  } finally {
    await p.close()
  }
})

/**
 * Both ends on a plain socket pair the test can pause, with one stream open from the server: what
 * arrives on it at the agent is collected in `got`. A wide window: only the sockets hold bytes back.
 */
async function streamOnSocketPair(): Promise<{ a: Socket; b: Socket; server: SessionMux; agent: SessionMux; got: Buffer[]; s: RelayStream; c: ReturnType<typeof collector> }> {
  const [a, b] = await socketPair()
  const server = new SessionMux(a, { ...BASE, role: 'server' })
  const agent = new SessionMux(b, { ...BASE, role: 'agent', streamWindowBytes: 64 * 1024 * 1024 })
  const got: Buffer[] = []
  agent.on('stream', (stream: RelayStream) => stream.attach({ data: (chunk) => got.push(Buffer.from(chunk)), end: () => {}, lost: () => {}, writable: () => {} }))
  await Promise.all([once(server, 'settings'), once(agent, 'settings')])
  const s = server.open('x')
  const c = collector()
  s.attach(c.handlers)
  await eventually(() => agent.streamCount === 1, 'the agent has the stream')
  return { a, b, server, agent, got, s, c }
}

test('a session hands its socket one write at a time: what is sent while the peer does not read leaves later as single parts, never a writev', async () => {
  const { a, b, server, agent, got, s, c } = await streamOnSocketPair()
  try {
    // The agent stops reading: the kernel's buffers fill and the server's writes wait in its socket.
    b.pause()
    const writes = countWrites(a)
    const total = 24 * 1024 * 1024
    const payload = positionPattern(total, 3)
    let waiting = false
    const pump = (async () => {
      // One 64 KiB chunk per turn of the event loop: every turn has something to flush.
      for (let at = 0; at < total; at += 64 * 1024) {
        if (!s.write(payload.subarray(at, at + 64 * 1024))) {
          waiting = true
          await new Promise<void>((resolve) => (c.handlers.writable = resolve))
          waiting = false
        }
        await new Promise((r) => setImmediate(r))
      }
    })()
    await eventually(() => waiting && a.writableLength > 0, 'the sender waits on a socket that has a write in progress')
    b.resume()
    await pump
    await eventually(() => got.reduce((n, x) => n + x.length, 0) === total, 'every byte arrived')
    assert.ok(Buffer.concat(got).equals(payload), 'in order and intact')
    assert.equal(writes.vectored, 0, 'no writes piled up in the socket to be joined')
    assert.ok(writes.single > 1, `the bytes left in several writes (${writes.single})`)
  } finally {
    server.destroy()
    agent.destroy()
  }
})

test('end() while batches wait behind a busy socket sends them all, in order, before the connection closes', async () => {
  const { a, b, server, agent, got, s } = await streamOnSocketPair()
  try {
    b.pause()
    const payload = positionPattern(32 * 1024 * 1024, 5)
    let sent = 0
    // Until the kernel's buffers are full and a write of the session waits in its socket.
    while (a.writableLength === 0 && sent < payload.length - 2 * 1024 * 1024) {
      s.write(payload.subarray(sent, sent + 256 * 1024))
      sent += 256 * 1024
      await new Promise((r) => setImmediate(r))
    }
    assert.ok(a.writableLength > 0, 'a write waits in the socket')
    // More than a slab's worth in one turn: whole batches are held behind the waiting write.
    for (let i = 0; i < 6; i++) {
      s.write(payload.subarray(sent, sent + 256 * 1024))
      sent += 256 * 1024
    }
    const closed = once(agent, 'close')
    server.end()
    b.resume()
    await closed
    assert.equal(got.reduce((n, x) => n + x.length, 0), sent, 'every byte sent before end() arrived')
    assert.ok(Buffer.concat(got).equals(payload.subarray(0, sent)), 'in order and intact')
  } finally {
    server.destroy()
    agent.destroy()
  }
})

test('a peer that floods PINGs and never reads is owed one answer at a time', async () => {
  const [a, b] = await socketPair()
  const server = new SessionMux(a, { ...BASE, role: 'server' })
  try {
    b.write(encodeSettings({ streamWindowBytes: 65536, maxStreams: 1, maxDataPayloadBytes: 65536 }))
    await once(server, 'settings')
    b.pause()
    const ping = encodeFrame(SessionFrameType.PING, 0, 0, Buffer.alloc(8, 1))
    const burst = Buffer.concat(Array.from({ length: 4096 }, () => ping))
    for (let i = 0; i < 64; i++) {
      b.write(burst)
      await new Promise((r) => setImmediate(r))
    }
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(server.closed, false)
    assert.ok(server.queuedBytes < 64 * 1024, `answers queued for a peer that never reads: ${server.queuedBytes} bytes`)
  } finally {
    server.destroy()
    b.destroy()
  }
})

test('anything the peer sends counts as alive: a PING answer late behind the peer traffic does not end the session', async () => {
  const [a, b] = await socketPair()
  const server = new SessionMux(a, { ...BASE, role: 'server', pingIntervalMs: 20, pingTimeoutMs: 250 })
  b.resume()
  try {
    b.write(encodeSettings({ streamWindowBytes: 65536, maxStreams: 1, maxDataPayloadBytes: 65536 }))
    await once(server, 'settings')
    server.startPings()
    // The peer never answers our pings, but keeps sending (its own pings, as a busy peer sends data).
    const chatter = setInterval(() => b.write(encodeFrame(SessionFrameType.PING, 0, 0, Buffer.alloc(8))), 10)
    try {
      await new Promise((r) => setTimeout(r, 800))
      assert.equal(server.closed, false, `closed: ${server.closeReason?.message}`)
    } finally {
      clearInterval(chatter)
    }
    const [reason] = (await once(server, 'close')) as [TunnelError]
    assert.equal(reason.message, 'peer did not answer a ping', 'and silence still ends it')
    assert.equal(reason.code, 'TUN_ERR_SESSION_PING_TIMEOUT', 'with a code the owner branches on, not the message')
  } finally {
    server.destroy()
    b.destroy()
  }
})

test('end() then a frame from the peer: a clean close, nothing written behind the end', async () => {
  const p = await muxPair({}, { pingIntervalMs: 5, pingTimeoutMs: 1000 })
  try {
    // The agent pings on before it sees the end: the server must not answer behind its end.
    p.agent.startPings()
    await new Promise((r) => setTimeout(r, 20))
    const closed = once(p.server, 'close') as Promise<[TunnelError | undefined]>
    p.server.goaway()
    p.server.end()
    const [reason] = await closed
    assert.equal(reason, undefined, `closed with ${reason?.code} ${reason?.message}`)
  } finally {
    await p.close()
  }
})

test('destroying the session loses every open stream with the reason, on both ends', async () => {
  const p = await muxPair()
  try {
    const c = collector()
    p.server.open('x').attach(c.handlers)
    await eventually(() => p.accepted.length === 1, 'agent has it')
    const reason = new TunnelError('TUN_ERR_SESSION_LOST', 'test ends the session')
    const agentClosed = once(p.agent, 'close')
    p.server.destroy(reason)
    assert.deepEqual(c.events, ['lost'])
    assert.equal(c.lost[0], reason)
    await agentClosed
    assert.ok(p.accepted[0]!.lost !== undefined, 'the agent stream is lost too')
  } finally {
    await p.close()
  }
})

test('a peer that stops answering pings is dropped with the owner reason', async () => {
  const [a, b] = await socketPair()
  const server = new SessionMux(a, { ...BASE, role: 'server', pingIntervalMs: 20, pingTimeoutMs: 60 })
  // The other end says SETTINGS and then nothing, as a frozen agent would.
  b.write(encodeSettings({ streamWindowBytes: 65536, maxStreams: 1, maxDataPayloadBytes: 65536 }))
  b.resume()
  try {
    await once(server, 'settings')
    server.startPings()
    const [reason] = (await once(server, 'close')) as [TunnelError]
    assert.equal(reason.code, 'TUN_ERR_SESSION_PING_TIMEOUT', 'a code the owner recognises the timeout by')
    assert.equal(reason.message, 'peer did not answer a ping')
  } finally {
    server.destroy()
    b.destroy()
  }
})

test('pings that are answered keep the session', async () => {
  const p = await muxPair({ pingIntervalMs: 10, pingTimeoutMs: 1000 }, { pingIntervalMs: 10, pingTimeoutMs: 1000 })
  try {
    p.server.startPings()
    p.agent.startPings()
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(p.server.closed, false)
    assert.equal(p.agent.closed, false)
  } finally {
    await p.close()
  }
})

/** Raw frames from a hand-written peer to a server or agent mux: each must end the session with a protocol error naming what is wrong. */
test('protocol violations end the session with TUN_ERR_SESSION_PROTOCOL naming the problem', async () => {
  const settings = encodeSettings({ streamWindowBytes: 1024, maxStreams: 4, maxDataPayloadBytes: 65536 })
  const cases: Array<{ role: 'server' | 'agent'; bytes: Buffer[]; message: RegExp; before?: (m: SessionMux) => void }> = [
    { role: 'agent', bytes: [encodeFrame(SessionFrameType.OPEN, 0, 1)], message: /OPEN before SETTINGS/ },
    { role: 'agent', bytes: [settings, settings], message: /SETTINGS sent twice/ },
    { role: 'server', bytes: [settings, encodeFrame(SessionFrameType.OPEN, 0, 1)], message: /agent may not open streams/ },
    { role: 'agent', bytes: [settings, encodeFrame(SessionFrameType.OPEN, 0, 2), encodeFrame(SessionFrameType.OPEN, 0, 2)], message: /OPEN of stream 2 after stream 2: ids must grow/ },
    { role: 'agent', bytes: [settings, encodeFrame(SessionFrameType.DATA, 0, 7, Buffer.from('x'))], message: /DATA for stream 7, which was never opened/ },
    { role: 'agent', bytes: [settings, encodeFrame(SessionFrameType.OPEN, 0, 1), encodeFrame(SessionFrameType.DATA, 0, 1, Buffer.alloc(64 * 1024 + 1))], message: /over the 65536-byte limit/ },
    { role: 'agent', bytes: [settings, encodeFrame(SessionFrameType.OPEN, 0, 1), encodeFrame(SessionFrameType.DATA, FLAG_END, 1), encodeFrame(SessionFrameType.DATA, 0, 1, Buffer.from('x'))], message: /DATA on stream 1 after its end/ },
    { role: 'agent', bytes: [settings, encodeFrame(SessionFrameType.ACCEPT, 0, 1)], message: /server may not send ACCEPT/ },
    { role: 'server', bytes: [settings, encodeFrame(SessionFrameType.CONTROL, 0, 0, Buffer.from('{"t":"ready"}'))], message: /agent may not send control messages/ },
    { role: 'agent', bytes: [settings, encodeFrame(SessionFrameType.CONTROL, 0, 0, Buffer.from('{"t":"nope"}'))], message: /unknown control message/ },
    { role: 'agent', bytes: [settings, encodeFrame(SessionFrameType.OPEN, 0, 1), encodeCredit(1, 0x7fffffff), encodeCredit(1, 0x7fffffff)], message: /CREDIT on stream 1 overflows/ },
    {
      role: 'server',
      bytes: [settings, encodeFrame(SessionFrameType.ACCEPT, 0, 1), encodeFrame(SessionFrameType.ACCEPT, 0, 1)],
      message: /ACCEPT on stream 1, which was accepted already/,
      before: (m) => m.open('x').attach(collector().handlers),
    },
  ]
  for (const c of cases) {
    const [a, b] = await socketPair()
    const mux = new SessionMux(a, { ...BASE, role: c.role, streamWindowBytes: 4096 })
    mux.on('stream', (s: RelayStream) => s.attach(collector().handlers))
    b.resume()
    try {
      const closed = once(mux, 'close') as Promise<[TunnelError | undefined]>
      if (c.before !== undefined) {
        b.write(settings)
        await once(mux, 'settings')
        c.before(mux)
        b.write(Buffer.concat(c.bytes.slice(1)))
      } else {
        b.write(Buffer.concat(c.bytes))
      }
      const [reason] = await closed
      assert.ok(reason instanceof TunnelError, `${c.message}: closed with a reason`)
      assert.equal(reason.code, 'TUN_ERR_SESSION_PROTOCOL', `${c.message}: ${reason.message}`)
      assert.match(reason.message, c.message)
    } finally {
      mux.destroy()
      b.destroy()
    }
  }
})

test('DATA past the granted window is a protocol error', async () => {
  const [a, b] = await socketPair()
  const mux = new SessionMux(a, { ...BASE, role: 'agent', streamWindowBytes: 1024 })
  mux.on('stream', (s: RelayStream) => s.attach(collector().handlers))
  b.resume()
  try {
    const closed = once(mux, 'close') as Promise<[TunnelError | undefined]>
    b.write(Buffer.concat([encodeSettings({ streamWindowBytes: 1024, maxStreams: 4, maxDataPayloadBytes: 65536 }), encodeFrame(SessionFrameType.OPEN, 0, 1), encodeFrame(SessionFrameType.DATA, 0, 1, Buffer.alloc(1025))]))
    const [reason] = await closed
    assert.equal(reason?.code, 'TUN_ERR_SESSION_PROTOCOL')
    assert.match(reason!.message, /DATA on stream 1 beyond the granted window/)
  } finally {
    mux.destroy()
    b.destroy()
  }
})

test('an agent session whose reads share one reused buffer keeps every DATA byte intact until its owner releases it, then reuses the memory', async () => {
  const [a, b] = await socketPair()
  const server = new SessionMux(a, { ...BASE, role: 'server', streamWindowBytes: 1024 * 1024 })
  const agent = new SessionMux(b, { ...BASE, role: 'agent', streamWindowBytes: 1024 * 1024, input: reusedBufferReader(b) })
  const total = 8 * 1024 * 1024
  const expected = (offset: number): number => (offset * 31 + 7) & 0xff
  let verified = 0
  let offset = 0
  const held: Array<{ chunk: Buffer; at: number }> = []
  let heldBytes = 0
  const slabsSeen = new Set<ArrayBufferLike>()
  let corrupt: string | undefined
  /** checks each held chunk against the pattern at its place in the stream, then releases it */
  const checkAndRelease = (): void => {
    for (const { chunk, at } of held.splice(0)) {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== expected(at + i)) corrupt ??= `byte ${at + i} changed while held: ${chunk[i]} instead of ${expected(at + i)}`
      }
      verified += chunk.length
      releaseReceived(chunk)
    }
    heldBytes = 0
  }
  let ended = false
  agent.on('stream', (stream: RelayStream) => {
    stream.attach({
      // The owner keeps what arrives (as an upstream socket's queue does) and lets it go in batches.
      data: (chunk) => {
        slabsSeen.add(chunk.buffer)
        held.push({ chunk, at: offset })
        offset += chunk.length
        heldBytes += chunk.length
        if (heldBytes >= 512 * 1024) setImmediate(checkAndRelease)
      },
      end: () => {
        checkAndRelease()
        ended = true
      },
      lost: () => {},
      writable: () => {},
    })
  })
  try {
    await Promise.all([once(server, 'settings'), once(agent, 'settings')])
    const s = server.open('x')
    s.attach(collector().handlers)
    const block = Buffer.alloc(32 * 1024)
    await new Promise<void>((resolve) => {
      let sent = 0
      const pump = (): void => {
        while (sent < total) {
          for (let i = 0; i < block.length; i++) block[i] = expected(sent + i)
          sent += block.length
          if (!s.write(block)) return
        }
        s.end()
        resolve()
      }
      s.attach({ ...collector().handlers, writable: pump })
      pump()
    })
    await eventually(() => ended || corrupt !== undefined, 'the whole upload arrived')
    assert.equal(corrupt, undefined)
    assert.equal(verified, total)
    const slabs = receiveSlabStats()
    assert.equal(slabs.currentRefs, 0, 'every payload was released')
    assert.ok(slabs.free > 0, 'released slabs wait for reuse instead of going to the collector')
    // 8 MiB went through a handful of slabs: each was written into again once released.
    assert.ok(slabsSeen.size <= 12, `${slabsSeen.size} slabs for ${total / RECEIVE_SLAB_BYTES} slabs' worth of bytes`)
  } finally {
    server.destroy()
    agent.destroy()
  }
})
