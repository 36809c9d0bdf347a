import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { FRAME_HEADER_BYTES, decodeSecurityKey, encodeSettings } from '../src/protocol/index.ts'
import { dialAgentSession } from '../src/transport/agent-dial.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

// An agent (anyone holding the key) that breaks the session framing right after the 101, as a
// buggy or hostile agent would: the server must drop the session without keeping any trace of it.
describe('agent session framing against a misbehaving agent', () => {
  let server: TestServer
  let upstream: TestUpstream

  before(async () => {
    upstream = await startTestUpstream()
    server = await startTestServer({ maxSessionsPerTunnel: 2 })
  })
  after(async () => {
    await server?.dispose()
    await upstream?.close()
  })

  test('SETTINGS and a broken frame in one write: the session is never registered, nor counted against the tunnel', async () => {
    const t = await server.createTunnel('broken agent')
    const key = decodeSecurityKey(t.key)
    // Three times the tunnel's session limit: if any of them stayed registered, real agents would be shut out.
    for (let i = 0; i < 6; i++) {
      const { socket } = await dialAgentSession(key, { nodeId: `broken-${i}`, instance: 'test', agentVersion: 'test', connectTimeoutMs: 5000 })
      const broken = Buffer.alloc(FRAME_HEADER_BYTES)
      broken[3] = 99 // no such frame type
      const closed = new Promise((r) => socket.once('close', r))
      socket.on('error', () => {})
      socket.resume()
      socket.write(Buffer.concat([encodeSettings({ streamWindowBytes: 65536, maxStreams: 10, maxDataPayloadBytes: 65536 }), broken]))
      await closed
    }
    assert.equal(server.registry.sessionsOf(t.id).length, 0, 'no session of the tunnel is registered')
    const res = await ingressRequest(server.ingressAddress, t.hostHeader)
    assert.equal(res.status, 503, 'never connected')
    const agent = await startTestAgent(t.key, upstream.address, { nodeId: 'good', sessions: 2 })
    try {
      await agent.waitFor((s) => s.status === 'CONNECTED' && s.sessions === 2, 10_000)
      assert.equal((await ingressRequest(server.ingressAddress, t.hostHeader)).status, 200)
    } finally {
      await agent.close()
    }
  })
})
