import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { decodeSecurityKey, type SecurityKey } from '../../protocol/index.ts'
import { eventually } from '../../testing/eventually.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { startTestServer, type TestServer } from '../../testing/tunnel-harness.ts'
import type { AgentStatus } from './agent-status.ts'
import { AgentConnector } from './agent-connector.ts'
import { testConnectorOptions } from '../../testing/connector-options.ts'
import { startTcpForwarder } from '../../testing/tcp-forwarder.ts'

// One AgentConnector against a real server on loopback, through a TCP relay the test can freeze:
// a server that stops answering is told apart from one that closed the connection.

checkNoLeakedHandles()

describe('AgentConnector against a tunnel server on loopback', () => {
  let server: TestServer
  let key: SecurityKey
  before(async () => {
    // The agent pings as the server's welcome says: every 300 ms, 600 ms for an answer.
    server = await startTestServer({ pingIntervalMs: 300, pingTimeoutMs: 600 })
    key = decodeSecurityKey((await server.createTunnel('connector')).key)
  })
  after(() => server.dispose())

  test('a server that stops answering keepalive pings is UNAVAILABLE with TUN_ERR_SESSION_PING_TIMEOUT and its own reason', async () => {
    const relay = await startTcpForwarder(server.apiAddress.port)
    const connector = new AgentConnector({
      key: { ...key, serverUrl: `https://127.0.0.1:${relay.port}` },
      ...testConnectorOptions(server.certificatePem, 'node-ping', {
        // Long enough that the status after the timeout is read before the next attempt changes it.
        backoff: { initialMs: 30_000, maxMs: 30_000 },
      }),
    })
    const seen: AgentStatus[] = []
    connector.on('status', (s: AgentStatus) => seen.push(s))
    connector.start()
    try {
      await eventually(() => connector.status.status === 'CONNECTED', 'connected through the relay')
      relay.freeze()
      await eventually(() => connector.status.status !== 'CONNECTED', 'the silence is noticed')
      assert.equal(connector.status.status, 'UNAVAILABLE')
      assert.equal(connector.status.code, 'TUN_ERR_SESSION_PING_TIMEOUT')
      assert.equal(connector.status.reason, 'the tunnel server stopped answering keepalive pings; reconnecting')
    } finally {
      await relay.close()
      await connector.close()
    }
  })
})
