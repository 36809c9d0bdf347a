import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { decodeSecurityKey, type SecurityKey } from '../../protocol/index.ts'
import { eventually } from '../../testing/eventually.ts'
import { freePort } from '../../testing/free-port.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { startTestServer, type TestServer } from '../../testing/tunnel-harness.ts'
import type { AgentConnectorOptions } from './agent-connector.ts'
import { NodeSessions, type NodeSessionsOptions, type NodeStatus } from './node-sessions.ts'
import { testConnectorOptions } from '../../testing/connector-options.ts'

// NodeSessions alone against a real tunnel server on loopback: how one node's sessions add up to
// the status `agent status` shows, and when a failure is still "connecting".

checkNoLeakedHandles()

describe('NodeSessions against a tunnel server on loopback', () => {
  let server: TestServer
  let key: SecurityKey
  before(async () => {
    server = await startTestServer()
    key = decodeSecurityKey((await server.createTunnel('node sessions')).key)
  })
  after(() => server.dispose())

  const connectorFor = (k: SecurityKey, nodeId = 'node-1'): AgentConnectorOptions => ({ key: k, ...testConnectorOptions(server.certificatePem, nodeId, { drainTimeoutMs: 500 }) })

  async function withNode(connector: AgentConnectorOptions, options: Partial<NodeSessionsOptions>, body: (node: NodeSessions, seen: NodeStatus[]) => Promise<void>): Promise<void> {
    const node = new NodeSessions(connector, { sessions: 2, connectGraceMs: 60_000, ...options })
    const seen: NodeStatus[] = [node.status]
    node.on('status', (s: NodeStatus) => seen.push(s))
    node.start()
    try {
      await body(node, seen)
    } finally {
      await node.close()
    }
  }

  test('a node is CONNECTING until a session is up, then CONNECTED with each of its sessions counted', async () => {
    await withNode(connectorFor(key), {}, async (node, seen) => {
      assert.equal(seen[0]!.status, 'CONNECTING')
      await eventually(() => node.status.sessions === 2, 'both sessions up')
      assert.equal(node.status.status, 'CONNECTED')
      assert.equal(node.status.sessionsWanted, 2)
      assert.match(node.status.reason, /^connected to https:\/\/.* as tunnel "node sessions"$/)
      await eventually(() => server.registry.sessionsOf(key.tunnelId).length === 2, 'the server holds both')
      const partial = seen.find((s) => s.status === 'CONNECTED' && s.sessions === 1)
      if (partial !== undefined) assert.match(partial.reason, /\(1 of 2 sessions\)$/)
    })
  })

  test('a rejected key is ERROR at once, with its code: no grace hides it', async () => {
    await withNode(connectorFor({ ...key, secret: randomBytes(32) }), {}, async (node) => {
      await eventually(() => node.status.status === 'ERROR', 'ERROR')
      assert.equal(node.status.code, 'TUN_ERR_KEY_REJECTED')
      assert.equal(node.status.sessions, 0)
    })
  })

  test('an unreachable server is CONNECTING through the connect grace, then UNAVAILABLE with the reason', async () => {
    const port = await freePort()
    let now = 1_000_000
    const unreachable = { ...key, serverUrl: `https://127.0.0.1:${port}` }
    await withNode(connectorFor(unreachable), { connectGraceMs: 200, now: () => now }, async (node) => {
      await eventually(() => node.status.reason.startsWith('still connecting; last attempt:'), 'a failed attempt within the grace')
      assert.equal(node.status.status, 'CONNECTING')
      now += 200
      await eventually(() => node.status.status === 'UNAVAILABLE', 'UNAVAILABLE once the grace is over')
      assert.equal(node.status.code, 'TUN_ERR_SERVER_UNREACHABLE')
    })
  })

  test('a failure that starting up does not explain (a certificate mismatch) gets no grace', async () => {
    const pinned = { ...key, certificatePin: 'sha256/' + Buffer.alloc(32, 7).toString('base64') }
    await withNode({ ...connectorFor(pinned), ca: undefined }, { connectGraceMs: 60_000 }, async (node) => {
      await eventually(() => node.status.status === 'UNAVAILABLE', 'UNAVAILABLE within the grace')
      assert.equal(node.status.code, 'TUN_ERR_TLS_CERT_MISMATCH')
    })
  })

  test('close() sends every session GOAWAY and waits for them: the server holds none after', async () => {
    const node = new NodeSessions(connectorFor(key, 'node-close'), { sessions: 2, connectGraceMs: 60_000 })
    node.start()
    await eventually(() => node.status.sessions === 2, 'both sessions up')
    await node.close()
    await eventually(() => server.registry.sessionsOf(key.tunnelId).every((s) => s.info.nodeId !== 'node-close'), 'the server let them go')
    assert.equal(node.connectors.every((c) => c.status.status !== 'CONNECTED' || c.activeRelays === 0), true)
  })
})
