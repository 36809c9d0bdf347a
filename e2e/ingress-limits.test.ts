import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import type { TestUpstream } from '../src/testing/test-upstream.ts'
import { errorCodeOf, ingressRequest, startConnectedTunnel, startTestAgent, type ConnectedTunnel, type TestServer } from '../src/testing/tunnel-harness.ts'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { agentConnect } from '../src/testing/agent-connect.ts'

checkNoLeakedHandles()

/** Writes raw bytes to the ingress and collects everything until the server closes. */
function rawExchange(port: number, parts: Array<{ bytes: string; delayMs?: number }>): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let out = ''
    const timers: NodeJS.Timeout[] = []
    s.on('data', (d) => (out += d.toString('latin1')))
    s.on('close', () => {
      timers.forEach(clearTimeout)
      resolve(out)
    })
    s.on('error', reject)
    let at = 0
    for (const p of parts) {
      at += p.delayMs ?? 0
      timers.push(setTimeout(() => s.writable && s.write(p.bytes), at))
    }
  })
}

describe('ingress limits and error answers', () => {
  let server: TestServer
  let upstream: TestUpstream
  let agent: TunnelAgent
  let tunnel: Awaited<ReturnType<TestServer['createTunnel']>>

  let fixture: ConnectedTunnel

  before(async () => {
    fixture = await startConnectedTunnel({ headTimeoutMs: 300 }, 'limits')
    ;({ server, upstream, agent, tunnel } = fixture)
  })
  after(() => fixture.close())

  test('slowloris: a head dripped slower than headTimeoutMs is answered 408 and closed', async () => {
    const out = await rawExchange(server.ingressAddress.port, [
      { bytes: 'GET /hello HTTP/1.1\r\n' },
      { bytes: `Host: ${tunnel.hostHeader}\r\n`, delayMs: 200 },
      { bytes: 'X-A: 1\r\n', delayMs: 200 },
      { bytes: 'X-B: 1\r\n', delayMs: 200 },
    ])
    assert.match(out, /^HTTP\/1\.1 408 /)
    assert.match(out, /TUN_ERR_HTTP_REQUEST_TIMEOUT/)
  })

  test('a later request on a kept-alive connection that names another tunnel gets 421', async () => {
    const other = await server.createTunnel('other')
    const out = await rawExchange(server.ingressAddress.port, [
      { bytes: `GET /hello HTTP/1.1\r\nHost: ${tunnel.hostHeader}\r\n\r\n` },
      { bytes: `GET /hello HTTP/1.1\r\nHost: ${other.hostHeader}\r\n\r\n`, delayMs: 100 },
    ])
    assert.match(out, /^HTTP\/1\.1 200 [\s\S]*hello[\s\S]*HTTP\/1\.1 421 /)
    assert.match(out, /TUN_ERR_INGRESS_MISDIRECTED/)
  })

  test('an upstream that closes without answering gives 502 TUN_ERR_UPSTREAM_FAILED', async () => {
    const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/hangup' })
    assert.equal(res.status, 502)
    assert.equal(errorCodeOf(res), 'TUN_ERR_UPSTREAM_FAILED')
  })

  test('an agent closing gracefully lets an in-flight request finish', async () => {
    const second = await startTestAgent(tunnel.key, upstream.address, { nodeId: 'drain-node' })
    await second.waitFor((s) => s.status === 'CONNECTED')
    await agent.close()
    // only the second agent's session is left: this request rides it
    const inFlight = ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/slow?ms=300' })
    await new Promise((r) => setTimeout(r, 100))
    const closing = second.close()
    const res = await inFlight
    await closing
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), 'slow')
    agent = fixture.agent = await startTestAgent(tunnel.key, upstream.address)
    await agent.waitFor((s) => s.status === 'CONNECTED')
  })

  test('failed agent authentications from one address are cut off with 429 after the limit', async () => {
    const connectOnce = () => agentConnect(server, tunnel.id, Buffer.alloc(32, 5))
    const statuses: number[] = []
    for (let i = 0; i < 21; i++) statuses.push((await connectOnce()).status)
    assert.deepEqual(statuses.slice(0, 20), Array(20).fill(401))
    assert.equal(statuses[20], 429)
    const last = await connectOnce()
    assert.equal(last.code, 'TUN_ERR_HANDSHAKE_RATE_LIMITED')
  })
})

test('a tunnel holds at most maxSessionsPerTunnel agent sessions; the sessions over it wait, UNAVAILABLE with the reason', async () => {
  const fixture = await startConnectedTunnel({ maxSessionsPerTunnel: 3 }, 'capped')
  let big: TunnelAgent | undefined
  try {
    // The fixture's agent holds 2 sessions; this node wants 3 and gets the 1 left.
    big = await startTestAgent(fixture.tunnel.key, fixture.upstream.address, { nodeId: 'big-node', sessions: 3 })
    const refused = (): boolean =>
      big!.sessions!.connectors.filter((c) => c.status.status === 'UNAVAILABLE' && c.status.code === 'TUN_ERR_SESSION_LIMIT').length === 2
    await eventually(refused, 'two of the new node\'s sessions refused with TUN_ERR_SESSION_LIMIT')
    await eventually(() => big!.status.status === 'CONNECTED' && big!.status.sessions === 1, 'the new node runs on the one session left')
    assert.equal(fixture.server.registry.sessionsOf(fixture.tunnel.id).length, 3)
    const reason = big.sessions!.connectors.find((c) => c.status.code === 'TUN_ERR_SESSION_LIMIT')!.status.reason
    assert.match(reason, /already has 3 agent sessions.*lower --sessions/)
    const res = await ingressRequest(fixture.server.ingressAddress, fixture.tunnel.hostHeader)
    assert.equal(res.status, 200)
  } finally {
    await big?.close()
    await fixture.close()
  }
})
