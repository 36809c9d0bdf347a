import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

// Replicas are a PostgreSQL setup (decision 34): a fresh schema per run.
const targets = await databaseTargets()
const pg = targets.find((t) => t.name === 'postgres')!

// replicaReadyGraceMs 1: an authenticated path to the replica that holds the tunnel makes /readyz
// ready at once here (the wait for agents is tested in replica-readiness.test.ts and by the
// rolling restart).
const CLUSTER = { clusterListen: '127.0.0.1:0', clusterHeartbeatMs: 200, metricsListen: '127.0.0.1:0', replicaReadyGraceMs: 1 }

/** A GET from a chosen loopback source address, so the test can tell the caller from a replica (127.0.0.1). */
function getFrom(localAddress: string, port: number, host: string, path = '/headers'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, localAddress, agent: false, timeout: 10_000, headers: { host } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end()
  })
}

async function readyz(server: TestServer): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${server.metricsAddress!.port}/readyz`)
  return { status: res.status, body: await res.text() }
}

describe('a replica without a session of a tunnel forwards its callers to one that has one', { skip: pg.skip }, () => {
  let a: TestServer
  let b: TestServer
  let upstream: TestUpstream
  let database: string
  let logDir: string
  const agents: TunnelAgent[] = []
  const accessLines = async (r: TestServer) =>
    (await readFile(join(logDir, `${r.cluster!.nodeId}.log`), 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)

  before(async () => {
    database = await pg.url()
    upstream = await startTestUpstream()
    logDir = await mkdtemp(join(tmpdir(), 'apptunnel-forward-access-'))
    a = await startTestServer({ ...CLUSTER, clusterNodeId: 'replica-a', database, accessLog: join(logDir, 'replica-a.log') })
    // The first replica of a cluster, with no tunnel connected anywhere, is ready on its own.
    assert.equal((await readyz(a)).status, 200)
    b = await startTestServer({ ...CLUSTER, clusterNodeId: 'replica-b', database, accessLog: join(logDir, 'replica-b.log') })
    await eventually(() => a.cluster!.status().links.length === 1 && b.cluster!.status().links.length === 1, 'replicas linked')
  })
  after(async () => {
    for (const agent of agents) await agent.close()
    await b?.dispose()
    await a?.dispose()
    await upstream?.close()
    await pg.dispose()
    if (logDir !== undefined) await rm(logDir, { recursive: true, force: true })
  })

  test('through the replica without a session: 200 via the other, the access rules and the app see the original caller', async (ctx) => {
    const t = await a.createTunnel('forwarded')
    // One replica only (rendezvous-chosen): the other holds no session of the tunnel.
    const agent = await startTestAgent(t.key, upstream.address, { nodeId: 'onprem-1', sessions: 1, replicas: 1 })
    agents.push(agent)
    await agent.waitFor((s) => s.status === 'CONNECTED', 10_000)
    // Settled once the agent has heard of both replicas and its one session is on the one it chose
    // then: with a bus link between them dialled again under load, a replica may first name only
    // itself, and the agent moves its session when the list grows (seen under Node 24, load 11).
    const settledOn = (): TestServer | undefined => {
      const s = agent.sessions!
      if (s.replicasHeard.length !== 2 || s.endpoints.length !== 1) return undefined
      const on = [a, b].filter((r) => r.registry.sessionsOf(t.id).length > 0)
      return on.length === 1 && new URL(on[0]!.publicUrl).origin === new URL(s.endpoints[0]!).origin ? on[0] : undefined
    }
    await eventually(() => settledOn() !== undefined, 'one session on the replica the agent chose from both', 10_000)
    const holder = settledOn()!
    const other = holder === a ? b : a
    assert.equal(other.registry.sessionsOf(t.id).length, 0)
    // Read now: the agent may move its one session later, after the request was served by this one.
    const holderSession = holder.registry.sessionsOf(t.id)[0]!.info.sessionId
    // The holder's presence row must be visible to the other replica before it can forward.
    await eventually(async () => ((await other.tunnels.describe(t.id))?.otherReplicas.length ?? 0) === 1, 'the other replica sees where the tunnel is', 5000)

    // Only 127.0.0.2 may call. A forwarded connection reaches the holder from 127.0.0.1 (the
    // forwarding replica), so if the caller's address were lost on the way, the holder would refuse it.
    await a.products.add({ orgId: a.orgId, name: 'test', sourceAddress: '127.0.0.1' }, t.id, { name: 'only 127.0.0.2', credential: false, cidrs: ['127.0.0.2/32'] })
    for (const r of [a, b]) await eventually(async () => (await getFrom('127.0.0.3', r.ingressAddress.port, t.hostHeader)).status === 403, 'policy loaded on both replicas', 10_000)

    const direct = await getFrom('127.0.0.2', holder.ingressAddress.port, t.hostHeader)
    assert.equal(direct.status, 200, direct.body)
    const forwarded = await getFrom('127.0.0.2', other.ingressAddress.port, t.hostHeader)
    assert.equal(forwarded.status, 200, forwarded.body)
    const headers = JSON.parse(forwarded.body) as Record<string, string>
    assert.equal(headers['x-forwarded-for'], '127.0.0.2', 'the app sees the original caller')

    // Each replica's access log has the request once: the forwarding one names where it sent it,
    // the serving one where it came from, both with the original caller.
    const served = (l: Record<string, unknown>) => l['path'] === '/headers' && l['status'] === 200 && l['client'] === '127.0.0.2'
    let sent: Array<Record<string, unknown>> = []
    let received: Array<Record<string, unknown>> = []
    await eventually(async () => {
      sent = (await accessLines(other)).filter(served)
      received = (await accessLines(holder)).filter((l) => served(l) && l['forwardedFrom'] !== undefined)
      return sent.length === 1 && received.length === 1
    }, 'the forwarded request in both access logs').catch(async (err: unknown) => {
      throw new Error(`${String(err)}; forwarding replica: ${JSON.stringify(await accessLines(other))}; serving replica: ${JSON.stringify(await accessLines(holder))}`)
    })
    assert.equal(sent[0]!['forwardedTo'], holder.cluster!.nodeId)
    assert.match(String(sent[0]!['session']), /^forward-/)
    assert.equal(sent[0]!['forwardedFrom'], undefined)
    assert.equal(received[0]!['forwardedFrom'], other.cluster!.nodeId)
    assert.equal(received[0]!['session'], holderSession)
    assert.equal(received[0]!['node'], 'onprem-1')

    // A caller the policy does not admit is refused through the forwarding replica too.
    assert.equal((await getFrom('127.0.0.3', other.ingressAddress.port, t.hostHeader)).status, 403)

    // What the extra hop costs per request (a new connection each): reported, not asserted.
    const median = async (port: number): Promise<number> => {
      const times: number[] = []
      for (let i = 0; i < 100; i++) {
        const at = performance.now()
        assert.equal((await getFrom('127.0.0.2', port, t.hostHeader, '/hello')).status, 200)
        times.push(performance.now() - at)
      }
      return times.sort((x, y) => x - y)[50]!
    }
    const local = await median(holder.ingressAddress.port)
    const viaPeer = await median(other.ingressAddress.port)
    ctx.diagnostic(`GET on a new connection, median of 100: ${local.toFixed(2)} ms through the replica with the session, ${viaPeer.toFixed(2)} ms forwarded (+${(viaPeer - local).toFixed(2)} ms)`)
  })

  test('a tunnel connected nowhere is still 503, an unknown host still 404, through a replica that could forward', async () => {
    const t = await a.createTunnel('never connected')
    const res = await getFrom('127.0.0.1', b.ingressAddress.port, t.hostHeader, '/hello')
    assert.equal(res.status, 503, res.body)
    assert.match(res.body, /TUN_ERR_INGRESS_NO_SESSION/)
    const unknown = await getFrom('127.0.0.1', b.ingressAddress.port, `nosuchtunnel1.localhost`, '/hello')
    assert.equal(unknown.status, 404, unknown.body)
  })

  test('/readyz: ready with sessions or an authenticated path to a replica that has them; not ready without either', async () => {
    // From the first test: one of A and B holds a session, the other forwards to it.
    for (const r of [a, b]) {
      const res = await readyz(r)
      assert.equal(res.status, 200, res.body)
    }
    // A replica whose bus links cannot authenticate (its cluster authentication is off, the others
    // require it) holds no session (agents are not told of it) and has no path to one: not ready.
    const c = await startTestServer({ ...CLUSTER, clusterNodeId: 'replica-c', database, clusterAuthDisabled: true })
    try {
      const res = await readyz(c)
      assert.equal(res.status, 503, res.body)
      assert.match(res.body, /no authenticated link to a replica that holds one/)
    } finally {
      await c.dispose()
    }
  })
})
