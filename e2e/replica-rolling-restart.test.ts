import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, test } from 'node:test'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const targets = await databaseTargets()
const pg = targets.find((t) => t.name === 'postgres')!

const CLUSTER = { clusterListen: '127.0.0.1:0', clusterHeartbeatMs: 200, metricsListen: '127.0.0.1:0' }
/** bounds of the load loop, whatever happens */
const LOAD_WORKERS = 4
const MAX_REQUESTS = 30_000
const MAX_LOAD_MS = 60_000

type Outcome = 'ok' | 'refused' | string

/** One GET on a new connection: 'ok', 'refused' (the connect failed: a balancer retries those), or what went wrong. */
function get(port: number, host: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/hello', agent: false, timeout: 10_000, headers: { host } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', (err) => resolve(`response error ${err.message}`))
      res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : `${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 160)}`))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    // A connect that fails (refused, or reset from the backlog of a listener that just closed) never
    // reached an accepting listener: a balancer retries it elsewhere.
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.syscall === 'connect' ? 'refused' : `${err.code ?? ''} ${err.message}`))
    req.end()
  })
}

async function ready(server: TestServer): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${server.metricsAddress!.port}/readyz`)).status === 200
  } catch {
    return false
  }
}

describe('rolling restart of two replicas under a steady GET load through both ingresses', { skip: pg.skip }, () => {
  const servers: TestServer[] = []
  let upstream: TestUpstream
  let agent: TunnelAgent | undefined

  before(async () => {
    const database = await pg.url()
    upstream = await startTestUpstream()
    servers.push(await startTestServer({ ...CLUSTER, clusterNodeId: 'replica-a', database }))
    servers.push(await startTestServer({ ...CLUSTER, clusterNodeId: 'replica-b', database }))
    await eventually(() => servers.every((s) => s.cluster!.status().links.length === 1), 'replicas linked')
  })
  after(async () => {
    await agent?.close()
    for (const s of servers) await s.dispose()
    await upstream?.close()
    await pg.dispose()
  })

  test('no request that reached an accepting listener fails; refused connects are counted apart', async (t) => {
    const tunnel = await servers[0]!.createTunnel('rolling')
    agent = await startTestAgent(tunnel.key, upstream.address, { nodeId: 'onprem-1', sessions: 1 })
    await agent.waitFor((s) => s.status === 'CONNECTED', 10_000)
    await eventually(() => servers.every((s) => s.registry.sessionsOf(tunnel.id).length === 1), 'a session on each replica', 10_000)
    // The restarted servers keep their ingress ports (restart() reuses them), so a worker keeps its target.
    const ports = servers.map((s) => s.ingressAddress.port)
    const outcomes: Outcome[] = []
    let stop = false
    const started = Date.now()
    const workers = Array.from({ length: LOAD_WORKERS }, (_, w) =>
      (async () => {
        while (!stop && outcomes.length < MAX_REQUESTS && Date.now() - started < MAX_LOAD_MS) {
          const outcome = await get(ports[w % 2]!, tunnel.hostHeader)
          outcomes.push(outcome)
          // A refused connect is retried by a balancer at once; a loop here would only spin.
          if (outcome === 'refused') await new Promise((r) => setTimeout(r, 5))
        }
      })(),
    )
    const restartedAt: number[] = []
    try {
      await eventually(() => outcomes.length > 200, 'load running', 10_000)
      for (let i = 0; i < servers.length; i++) {
        restartedAt.push(outcomes.length)
        servers[i] = await servers[i]!.restart()
        await eventually(() => ready(servers[i]!), `replica ${i} ready again`, 20_000)
      }
      const settledAt = outcomes.length
      await eventually(() => outcomes.length > settledAt + 300, 'load ran on after the restarts', 20_000)
    } finally {
      stop = true
      await Promise.all(workers)
    }
    const refused = outcomes.filter((o) => o === 'refused').length
    const failed = outcomes.filter((o) => o !== 'ok' && o !== 'refused')
    t.diagnostic(`rolling restart: ${outcomes.length} requests, ${outcomes.length - refused - failed.length} ok, ${refused} refused connects, ${failed.length} failed after reaching a listener`)
    assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${outcomes.length} requests failed after reaching an accepting listener`)
  })
})
