import assert from 'node:assert/strict'
import { get } from 'node:http'
import { Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { createLogger, silentLogger } from '../observability/index.ts'
import { MetricsListener } from '../observability/metrics/index.ts'
import { decodeSecurityKey } from '../protocol/index.ts'
import { testConnectorOptions } from '../testing/connector-options.ts'
import { eventually } from '../testing/eventually.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { startTestUpstream, type TestUpstream } from '../testing/test-upstream.ts'
import { ingressRequest, startTestServer, type TestServer } from '../testing/tunnel-harness.ts'
import { agentClose } from './agent-drain.ts'
import { agentReadinessChecks } from './agent-readiness.ts'
import { NodeSessions } from './connector/node-sessions.ts'

// The agent's close against a real tunnel server and app on loopback: a caller's request in flight
// is answered before the close resolves, and /healthz answers through the drain.

checkNoLeakedHandles()

const log = silentLogger()
/** the status of GET /healthz on the metrics listener, or the error code of a refused connection */
const healthz = (port: number): Promise<number | string> =>
  new Promise((resolve) => {
    get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    }).on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })

describe('the agent close against a tunnel server on loopback', () => {
  let server: TestServer
  let upstream: TestUpstream
  before(async () => {
    server = await startTestServer()
    upstream = await startTestUpstream()
  })
  after(async () => {
    await server.dispose()
    await upstream.close()
  })

  /** A tunnel, and one agent node with one session to it, started (drain timeout 5 s). */
  async function tunnelWithNode(name: string, nodeId: string) {
    const tunnel = await server.createTunnel(name)
    const sessions = new NodeSessions(
      { key: decodeSecurityKey(tunnel.key), ...testConnectorOptions(server.certificatePem, nodeId, { upstream: { host: '127.0.0.1', port: upstream.port }, drainTimeoutMs: 5000 }) },
      { sessions: 1, connectGraceMs: 60_000 },
    )
    sessions.start()
    return { tunnel, sessions }
  }

  test('a relay in flight finishes before the close resolves; /healthz answers while the sessions drain and goes after them', async () => {
    const { tunnel, sessions } = await tunnelWithNode('agent drain', 'drain-node')
    const listener = await MetricsListener.start({ host: '127.0.0.1', port: 0 }, { render: async () => '', contentType: 'text/plain', checks: agentReadinessChecks({ status: () => sessions.status }), log })
    const close = agentClose({ sessions: () => sessions, metricsListener: () => listener }, { drainTimeoutMs: 5000, log })
    try {
      await eventually(() => sessions.status.sessions === 1, 'the session is up')
      const events: string[] = []
      const answered = ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/slow?ms=500' }).then((res) => {
        events.push('answered')
        return res
      })
      await eventually(() => sessions.activeRelays === 1, 'the relay is in flight')
      const closed = close().then(() => events.push('closed'))
      assert.equal(await healthz(listener.address.port), 200, '/healthz answers during the drain')
      await closed
      const res = await answered
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), 'slow')
      assert.deepEqual(events, ['answered', 'closed'])
      assert.equal(await healthz(listener.address.port), 'ECONNREFUSED', 'the metrics listener closed after the drain')
    } finally {
      await sessions.close()
      await listener.close()
    }
  })

  test('a second close during the drain (a second signal) waits for the same drain instead of running another', async () => {
    const { tunnel, sessions } = await tunnelWithNode('agent drain twice', 'drain-twice-node')
    const lines: string[] = []
    const captured = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(...chunk.toString().split('\n').filter((l) => l !== ''))
          done()
        },
      }),
    })
    const close = agentClose({ sessions: () => sessions, metricsListener: () => undefined }, { drainTimeoutMs: 5000, log: captured })
    try {
      await eventually(() => sessions.status.sessions === 1, 'the session is up')
      const answered = ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/slow?ms=300' })
      await eventually(() => sessions.activeRelays === 1, 'the relay is in flight')
      const first = close()
      const second = close()
      await Promise.all([first, second])
      assert.equal((await answered).status, 200, 'the relay in flight was answered')
      const drains = lines.map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg === 'draining' || l.msg === 'drained')
      assert.deepEqual(drains.map((l) => l.msg), ['draining', 'drained'], 'one drain logged, not two')
      const logged = lines.length
      await close()
      assert.equal(lines.length, logged, 'a close after the drain logs nothing more')
    } finally {
      await sessions.close()
    }
  })
})
