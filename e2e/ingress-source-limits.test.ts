import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, describe, test } from 'node:test'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream } from '../src/testing/test-upstream.ts'
import { errorCodeOf, ingressRequest, startConnectedTunnel, startTestAgent, startTestServer, type ConnectedTunnel } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

/** A WebSocket upgrade the test app accepts with a 101 and then holds, sending nothing. */
interface HeldConnection {
  socket: Socket
  /** the first bytes of the answer: the status line and, for a refusal, the JSON body */
  answer: string
  /** resolves when the socket has closed, from either end */
  closed: Promise<void>
}

const open = new Set<Socket>()
after(() => {
  for (const s of open) s.destroy()
})

function upgrade(port: number, hostHeader: string, localAddress = '127.0.0.1'): Promise<HeldConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress })
    open.add(socket)
    const closed = new Promise<void>((r) => socket.once('close', () => r()))
    void closed.then(() => open.delete(socket))
    let answer = ''
    socket.on('error', reject)
    socket.on('data', (d: Buffer) => {
      const first = answer === ''
      answer += d.toString('latin1')
      // A 101 is all we wait for; a refusal comes whole and is followed by the server's close.
      if (first && answer.startsWith('HTTP/1.1 101 ')) resolve({ socket, answer, closed })
    })
    socket.once('close', () => resolve({ socket, answer, closed }))
    socket.write(
      `GET /ws HTTP/1.1\r\nHost: ${hostHeader}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    )
  })
}

async function closeAll(held: HeldConnection[]): Promise<void> {
  for (const h of held) h.socket.destroy()
  await Promise.all(held.map((h) => h.closed))
}

/** A masked, empty WebSocket ping (a client must mask); the app answers with a pong. */
const PING = Buffer.from([0x89, 0x80, 1, 2, 3, 4])

describe('one source address cannot fill a tunnel with idle upgrades', () => {
  // 2 agent sessions × 5 streams = 10 streams; one source may hold 4 of them.
  const CAP = 4
  let fixture: ConnectedTunnel

  test('connections over maxConnectionsPerSource get 429 naming the limit, and another address of the host still gets 200', async () => {
    fixture = await startConnectedTunnel({ maxStreamsPerSession: 5, maxConnectionsPerSource: CAP }, 'source-cap')
    const { server, tunnel } = fixture
    const held: HeldConnection[] = []
    try {
      // More than the tunnel's streams: without the cap these would take every one of them.
      for (let i = 0; i < 12; i++) held.push(await upgrade(server.ingressAddress.port, tunnel.hostHeader))
      const statuses = held.map((h) => h.answer.slice(9, 12))
      assert.deepEqual(statuses, [...Array<string>(CAP).fill('101'), ...Array<string>(12 - CAP).fill('429')])
      const refusal = held[CAP]!.answer
      assert.match(refusal, /TUN_ERR_INGRESS_SOURCE_LIMIT/)
      assert.match(refusal, /127\.0\.0\.1 already holds 4 connections to this tunnel.*maxConnectionsPerSource 4/)
      assert.equal(server.sourceLimits.count(tunnel.id, '127.0.0.1'), CAP)

      const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { localAddress: '127.0.0.2' })
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), 'hello')
      // The same address is refused while it holds its share.
      const same = await ingressRequest(server.ingressAddress, tunnel.hostHeader)
      assert.equal(same.status, 429)
      assert.equal(errorCodeOf(same), 'TUN_ERR_INGRESS_SOURCE_LIMIT')
    } finally {
      await closeAll(held)
    }
  })

  test('the count goes back to zero on every way a connection ends, so an address is never locked out', async () => {
    const { server, tunnel, upstream } = fixture
    await eventually(() => server.sourceLimits.sources === 0, 'the closed upgrades released their counts')
    // Answered then closed, closed by the app without an answer (502), refused by the cap, closed
    // by the client after its upgrade (the idle timeout's close is counted in its own test).
    for (let i = 0; i < CAP + 2; i++) assert.equal((await ingressRequest(server.ingressAddress, tunnel.hostHeader)).status, 200)
    for (let i = 0; i < CAP + 2; i++) assert.equal((await ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/hangup' })).status, 502)
    const first = await Promise.all(Array.from({ length: CAP + 2 }, () => upgrade(server.ingressAddress.port, tunnel.hostHeader)))
    assert.equal(first.filter((h) => h.answer.startsWith('HTTP/1.1 101 ')).length, CAP)
    await closeAll(first)
    await eventually(() => server.sourceLimits.sources === 0, 'every ending released its count')
    // And the address gets its whole share again.
    const again: HeldConnection[] = []
    for (let i = 0; i < CAP; i++) again.push(await upgrade(server.ingressAddress.port, tunnel.hostHeader))
    assert.deepEqual(again.map((h) => h.answer.slice(0, 12)), Array<string>(CAP).fill('HTTP/1.1 101'))
    await closeAll(again)
    await eventually(() => server.sourceLimits.sources === 0 && upstream.openConnections === 0, 'counts and upstream connections all gone')
    await fixture.close()
  })
})

test('with the cap off and every stream taken, callers get 503 TUN_ERR_INGRESS_STREAM_LIMIT while the tunnel stays CONNECTED', async () => {
  const upstream = await startTestUpstream()
  const server = await startTestServer({ maxConnectionsPerSource: 0 })
  const tunnel = await server.createTunnel('full')
  // The agent's own limit binds first (as with both at their default 1,000).
  const agent = await startTestAgent(tunnel.key, upstream.address, { maxStreams: 3 })
  const held: HeldConnection[] = []
  try {
    await agent.waitFor((s) => s.status === 'CONNECTED' && s.sessions === 2)
    for (let i = 0; i < 6; i++) held.push(await upgrade(server.ingressAddress.port, tunnel.hostHeader))
    assert.deepEqual(held.map((h) => h.answer.slice(0, 12)), Array<string>(6).fill('HTTP/1.1 101'))
    const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { localAddress: '127.0.0.2' })
    assert.equal(res.status, 503)
    assert.equal(errorCodeOf(res), 'TUN_ERR_INGRESS_STREAM_LIMIT')
    assert.match(res.body.toString(), /every live agent session of the tunnel carries its maximum of relay streams/)
    assert.equal((await server.tunnels.describe(tunnel.id))?.status, 'CONNECTED', 'a full tunnel is busy, not down')
    // One upgrade ends: its stream is free for the next caller.
    held.pop()!.socket.destroy()
    await eventually(async () => (await ingressRequest(server.ingressAddress, tunnel.hostHeader)).status === 200, 'a freed stream serves the next caller')
  } finally {
    await closeAll(held)
    await agent.close()
    await server.dispose()
    await upstream.close()
  }
})

test('an idle upgraded connection is closed after upgradedIdleTimeoutMs at both ends; one with traffic stays', async () => {
  const IDLE_MS = 1000
  const fixture = await startConnectedTunnel({ upgradedIdleTimeoutMs: IDLE_MS }, 'idle-upgrades')
  const { server, tunnel, upstream } = fixture
  let pinger: NodeJS.Timeout | undefined
  try {
    const idle = await upgrade(server.ingressAddress.port, tunnel.hostHeader)
    const busy = await upgrade(server.ingressAddress.port, tunnel.hostHeader)
    assert.ok(idle.answer.startsWith('HTTP/1.1 101 ') && busy.answer.startsWith('HTTP/1.1 101 '))
    const since = Date.now()
    let pongs = 0
    busy.socket.on('data', (d: Buffer) => {
      if (d[0] === 0x8a) pongs++
    })
    pinger = setInterval(() => busy.socket.write(PING), IDLE_MS / 10)
    let busyClosed = false
    void busy.closed.then(() => (busyClosed = true))
    assert.equal(upstream.openConnections, 2)

    let idleClosedAt: number | undefined
    void idle.closed.then(() => (idleClosedAt = Date.now()))
    await eventually(() => idleClosedAt !== undefined, 'the ingress closed the idle upgraded connection')
    assert.ok(idleClosedAt! - since >= IDLE_MS * 0.9, 'not closed before its idle timeout')
    await eventually(() => upstream.openConnections === 1, "the idle connection's upstream side is closed too")
    assert.equal(server.sourceLimits.count(tunnel.id, '127.0.0.1'), 1)

    // The busy one outlives the timeout several times over, both ends open, traffic flowing.
    await new Promise((r) => setTimeout(r, IDLE_MS * 2.5))
    assert.equal(busyClosed, false)
    assert.equal(upstream.openConnections, 1)
    assert.ok(pongs >= 10, `the app kept answering pings (${pongs})`)
  } finally {
    clearInterval(pinger)
    await fixture.close()
  }
})
