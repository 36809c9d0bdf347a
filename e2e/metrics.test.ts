import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request, type IncomingHttpHeaders } from 'node:http'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { TunnelAgent } from '../src/agent/start-agent.ts'
import { decodeSecurityKey, encodeSecurityKey } from '../src/protocol/index.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { errorCodeOf, ingressRequest, startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

checkNoLeakedHandles()

const METRICS = { metricsListen: '127.0.0.1:0' }

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

interface Scrape {
  samples: Sample[]
  /** every metric family announced by a `# TYPE` line */
  families: Set<string>
}

/** The text exposition format, as much as these tests read: `# TYPE` lines and `name{labels} value` samples. */
function parseExposition(text: string): Scrape {
  const samples: Sample[] = []
  const families = new Set<string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE (\S+) \S+$/.exec(line)
    if (type !== null) families.add(type[1]!)
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(m !== null, `not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return { samples, families }
}

/** The value of the one sample with this name and exactly these labels; undefined when absent. */
function valueOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).sort()
  const found = scrape.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(want))
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} appears ${found.length} times`)
  return found[0]?.value
}

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

function call(address: { host: string; port: number } | undefined, path: string, method = 'GET'): Promise<Reply> {
  assert.ok(address !== undefined, 'the process has no metrics listener')
  return new Promise((resolve, reject) => {
    const req = request({ host: address.host, port: address.port, path, method, agent: false, timeout: 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('metrics request timed out')))
    req.on('error', reject)
    req.end()
  })
}

async function scrape(address: { host: string; port: number } | undefined): Promise<Scrape> {
  const res = await call(address, '/metrics')
  assert.equal(res.status, 200)
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  return parseExposition(res.body)
}

interface Readiness {
  status: string
  checks: Array<{ name: string; ok: boolean; reason?: string }>
}

async function readiness(address: { host: string; port: number } | undefined): Promise<{ status: number; body: Readiness }> {
  const res = await call(address, '/readyz')
  return { status: res.status, body: JSON.parse(res.body) as Readiness }
}

describe('metrics and health endpoints on both sides (issue 8)', () => {
  let upstream: TestUpstream
  let server: TestServer
  let restarted: TestServer | undefined
  let agent: TunnelAgent
  let tunnel: Awaited<ReturnType<TestServer['createTunnel']>>
  let logDir: string

  before(async () => {
    upstream = await startTestUpstream()
    logDir = await mkdtemp(join(tmpdir(), 'apptunnel-metrics-log-'))
    // With a cluster node, so its authentication metrics must show up on /metrics too, and an
    // access log, whose lines are counted.
    server = await startTestServer({ ...METRICS, clusterListen: '127.0.0.1:0', accessLog: join(logDir, 'access.log') })
    tunnel = await server.createTunnel('metrics')
    agent = await startTestAgent(tunnel.key, upstream.address, METRICS)
    await agent.waitFor((s) => s.sessions === 2)
  })
  after(async () => {
    await agent?.close()
    await restarted?.dispose()
    await server?.dispose()
    await upstream?.close()
    if (logDir !== undefined) await rm(logDir, { recursive: true, force: true })
  })

  test('after traffic both sides count it exactly: responses by class, durations, bytes, sessions, upstream connections', async () => {
    const echoBody = randomBytes(10 * 1024)
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) statuses.push((await ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/hello' })).status)
    for (let i = 0; i < 3; i++) {
      const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader, { method: 'POST', path: '/echo', body: echoBody })
      assert.deepEqual(res.body, echoBody)
      statuses.push(res.status)
    }
    for (let i = 0; i < 4; i++) statuses.push((await ingressRequest(server.ingressAddress, tunnel.hostHeader, { path: '/missing' })).status)
    const unknown = await ingressRequest(server.ingressAddress, `${'q'.repeat(16)}.localhost:${server.ingressAddress.port}`, { path: '/' })
    assert.equal(errorCodeOf(unknown), 'TUN_ERR_INGRESS_UNKNOWN_TUNNEL')
    statuses.push(unknown.status)
    assert.deepEqual(statuses, [...Array(9).fill(200), ...Array(4).fill(404), 404])

    const s = await scrape(server.metricsAddress)
    const byClass = Object.fromEntries(['1xx', '2xx', '3xx', '4xx', '5xx', 'other'].map((c) => [c, valueOf(s, 'apptunnel_ingress_requests_total', { class: c })]))
    assert.deepEqual(byClass, { '1xx': 0, '2xx': 9, '3xx': 0, '4xx': 5, '5xx': 0, other: 0 })
    // Every one of the 14 answers followed a complete request head, so each has a duration.
    assert.equal(valueOf(s, 'apptunnel_ingress_request_duration_seconds_count'), 14)
    assert.equal(valueOf(s, 'apptunnel_ingress_request_duration_seconds_bucket', { le: '+Inf' }), 14)
    assert.ok(valueOf(s, 'apptunnel_ingress_request_duration_seconds_sum')! > 0)
    assert.ok(valueOf(s, 'apptunnel_ingress_received_bytes_total')! >= 3 * echoBody.length)
    assert.ok(valueOf(s, 'apptunnel_ingress_sent_bytes_total')! >= 3 * echoBody.length + 6 * 'hello'.length)
    assert.equal(valueOf(s, 'apptunnel_tunnel_sessions', { tunnel: tunnel.id }), agent.status.sessions)
    assert.equal(valueOf(s, 'apptunnel_tunnel_sessions', { tunnel: tunnel.id }), 2)
    assert.equal(valueOf(s, 'apptunnel_tunnel_status', { tunnel: tunnel.id, status: 'CONNECTED' }), 1)
    assert.equal(valueOf(s, 'apptunnel_tunnel_status', { tunnel: tunnel.id, status: 'INCOMPLETE' }), 0)
    assert.equal(valueOf(s, 'apptunnel_tunnel_status', { tunnel: tunnel.id, status: 'UNAVAILABLE' }), 0)
    // One access log line per answer (a line is taken as its exchange ends, just after the answer leaves).
    await eventually(async () => valueOf(await scrape(server.metricsAddress), 'apptunnel_access_log_lines_total') === 14, 'an access log line per request')
    assert.equal(valueOf(s, 'apptunnel_access_log_dropped_lines_total'), 0)
    // The cluster node's authentication metrics are appended, and the process metrics are there.
    assert.equal(valueOf(s, 'apptunnel_cluster_auths_total', { side: 'server', node: server.cluster!.nodeId }), 0)
    assert.ok(s.families.has('apptunnel_cluster_auth_duration_seconds'))
    // The default process and runtime metrics keep their standard names, so stock dashboards work;
    // everything else is ours and carries the prefix.
    assert.ok(valueOf(s, 'process_resident_memory_bytes')! > 0)
    assert.ok(valueOf(s, 'process_cpu_seconds_total')! > 0)
    assert.ok(valueOf(s, 'nodejs_heap_size_used_bytes')! > 0)
    for (const name of s.families) assert.match(name, /^(apptunnel_|process_|nodejs_)/)
    for (const name of s.families) assert.doesNotMatch(name, /^apptunnel_(process|nodejs)_/)

    const a = await scrape(agent.metricsAddress)
    assert.equal(valueOf(a, 'apptunnel_agent_sessions'), 2)
    assert.equal(valueOf(a, 'apptunnel_agent_sessions_wanted'), 2)
    assert.equal(valueOf(a, 'apptunnel_agent_status', { status: 'CONNECTED' }), 1)
    assert.equal(valueOf(a, 'apptunnel_agent_status', { status: 'UNAVAILABLE' }), 0)
    assert.equal(valueOf(a, 'apptunnel_agent_reconnects_total'), 0)
    // One upstream connection per caller connection that reached a session: all but the unknown tunnel's.
    assert.equal(valueOf(a, 'apptunnel_agent_upstream_connections_total'), 13)
    assert.ok(valueOf(a, 'apptunnel_agent_upstream_sent_bytes_total')! >= 3 * echoBody.length)
    assert.ok(valueOf(a, 'apptunnel_agent_upstream_received_bytes_total')! >= 3 * echoBody.length + 6 * 'hello'.length)
    assert.equal(a.samples.filter((x) => x.name === 'apptunnel_agent_upstream_connect_failures_total').length, 0)
    assert.equal(a.samples.filter((x) => x.name === 'apptunnel_agent_connect_failures_total').length, 0)
  })

  test('a caller connection in flight shows as a relay stream on both sides and an open upstream connection', async () => {
    // /never holds the request open: the upstream never answers.
    const req = request({ host: '127.0.0.1', port: server.ingressAddress.port, path: '/never', headers: { host: tunnel.hostHeader }, agent: false })
    req.on('error', () => {})
    req.end()
    try {
      await eventually(async () => valueOf(await scrape(agent.metricsAddress), 'apptunnel_agent_upstream_connections') === 1, 'agent sees the upstream connection')
      const s = await scrape(server.metricsAddress)
      assert.equal(valueOf(s, 'apptunnel_relay_streams'), 1)
      assert.equal(valueOf(s, 'apptunnel_ingress_connections'), 1)
      assert.equal(valueOf(await scrape(agent.metricsAddress), 'apptunnel_agent_relay_streams'), 1)
    } finally {
      req.destroy()
    }
    await eventually(async () => valueOf(await scrape(server.metricsAddress), 'apptunnel_relay_streams') === 0, 'relay stream closed')
    await eventually(async () => valueOf(await scrape(agent.metricsAddress), 'apptunnel_agent_upstream_connections') === 0, 'upstream connection closed')
  })

  test('a refused agent key is counted by the server and by the agent, whose /readyz says why it is not ready', async () => {
    const good = decodeSecurityKey(tunnel.key)
    const wrong = encodeSecurityKey({ ...good, secret: Buffer.alloc(good.secret.length, 7) })
    const intruder = await startTestAgent(wrong, upstream.address, { ...METRICS, nodeId: 'intruder', sessions: 1 })
    try {
      await intruder.waitFor((st) => st.status === 'ERROR')
      const s = await scrape(server.metricsAddress)
      assert.equal(valueOf(s, 'apptunnel_gateway_auth_failures_total', { code: 'TUN_ERR_KEY_REJECTED' }), 1)
      const a = await scrape(intruder.metricsAddress)
      assert.equal(valueOf(a, 'apptunnel_agent_connect_failures_total', { code: 'TUN_ERR_KEY_REJECTED' }), 1)
      assert.equal(valueOf(a, 'apptunnel_agent_status', { status: 'ERROR' }), 1)
      assert.equal(valueOf(a, 'apptunnel_agent_sessions'), 0)
      const ready = await readiness(intruder.metricsAddress)
      assert.equal(ready.status, 503)
      assert.equal(ready.body.status, 'not ready')
      const sessions = ready.body.checks.find((c) => c.name === 'sessions')
      assert.equal(sessions?.ok, false)
      assert.match(sessions?.reason ?? '', /no session connected.*ERROR/)
    } finally {
      await intruder.close()
    }
  })

  test('/healthz and /readyz answer 200 when ready; other paths 404 and other methods 405, with a code', async () => {
    for (const address of [server.metricsAddress, agent.metricsAddress]) {
      const health = await call(address, '/healthz')
      assert.equal(health.status, 200)
      assert.deepEqual(JSON.parse(health.body), { status: 'ok' })
      const notFound = await call(address, '/nothing-here')
      assert.equal(notFound.status, 404)
      assert.equal((JSON.parse(notFound.body) as { error: { code: string } }).error.code, 'TUN_ERR_API_ROUTE_NOT_FOUND')
      const post = await call(address, '/metrics', 'POST')
      assert.equal(post.status, 405)
      assert.equal(post.headers.allow, 'GET, HEAD')
      assert.equal((JSON.parse(post.body) as { error: { code: string } }).error.code, 'TUN_ERR_API_METHOD_NOT_ALLOWED')
      const head = await call(address, '/metrics', 'HEAD')
      assert.equal(head.status, 200)
      assert.equal(head.body, '')
    }
    const serverReady = await readiness(server.metricsAddress)
    assert.equal(serverReady.status, 200)
    assert.deepEqual(serverReady.body, {
      status: 'ready',
      checks: [
        { name: 'database', ok: true },
        { name: 'https', ok: true },
        { name: 'ingress', ok: true },
        // a replica (this server runs the cluster bus): it holds a session, so it is ready (decision 37)
        { name: 'tunnels', ok: true },
      ],
    })
    const agentReady = await readiness(agent.metricsAddress)
    assert.equal(agentReady.status, 200)
    assert.deepEqual(agentReady.body, { status: 'ready', checks: [{ name: 'sessions', ok: true }] })
  })

  test('an instance node (with a database) is ready when a session is connected and its database answers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-metrics-instance-'))
    const node = await startTestAgent(tunnel.key, upstream.address, { ...METRICS, nodeId: 'instance-node', dataDir: dir, database: join(dir, 'instance.db'), sessions: 1 })
    try {
      await node.waitFor((st) => st.sessions === 1)
      const ready = await readiness(node.metricsAddress)
      assert.equal(ready.status, 200)
      assert.deepEqual(ready.body.checks, [
        { name: 'sessions', ok: true },
        { name: 'database', ok: true },
      ])
      assert.equal(valueOf(await scrape(node.metricsAddress), 'apptunnel_agent_sessions_wanted'), 1)
    } finally {
      await node.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('every metric served is documented in docs/metrics.md, and every one documented there is served', async () => {
    const doc = readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8')
    const documented = new Set([...doc.matchAll(/`((?:apptunnel|process|nodejs)_[a-z0-9_]+)`/g)].map((m) => m[1]!))
    const served = new Set([...(await scrape(server.metricsAddress)).families, ...(await scrape(agent.metricsAddress)).families])
    for (const name of served) assert.ok(documented.has(name), `${name} is served but missing from docs/metrics.md`)
    for (const name of documented) {
      // prom-client's process metrics vary by platform and Node.js version; ours must all exist.
      if (/^(process|nodejs)_/.test(name)) continue
      // the names the process metrics had before they got their standard ones (the doc's note for dashboards)
      if (/^apptunnel_(process|nodejs)_/.test(name)) {
        assert.ok(!served.has(name), `${name} is served under its old prefixed name`)
        continue
      }
      assert.ok(served.has(name), `docs/metrics.md names ${name}, which is not served`)
    }
  })

  test('the agent is not ready while its server is gone, counts its reconnects when it is back, and is ready again', async () => {
    await server.close()
    await eventually(async () => (await readiness(agent.metricsAddress)).status === 503, 'agent /readyz turns 503')
    const down = await readiness(agent.metricsAddress)
    assert.equal(down.body.checks.find((c) => c.name === 'sessions')?.ok, false)
    assert.match(down.body.checks.find((c) => c.name === 'sessions')?.reason ?? '', /no session connected/)

    restarted = await server.restart()
    await agent.waitFor((st) => st.sessions === 2)
    const a = await scrape(agent.metricsAddress)
    assert.equal(valueOf(a, 'apptunnel_agent_reconnects_total'), 2)
    assert.equal((await readiness(agent.metricsAddress)).status, 200)
  })
})

const pg = (await databaseTargets()).find((t) => t.name === 'postgres')!

describe('server /readyz when PostgreSQL becomes unreachable', { skip: pg.skip }, () => {
  // A TCP relay of our own between the server and PostgreSQL: closing it cuts the server off from
  // a database that keeps running for everyone else.
  let relay: Server
  const relayed = new Set<Socket>()
  let server: TestServer | undefined

  before(async () => {
    const target = new URL(await pg.url())
    relay = createServer((client) => {
      const db = connect(Number(target.port || 5432), target.hostname)
      for (const s of [client, db]) {
        relayed.add(s)
        s.on('error', () => {})
        s.once('close', () => relayed.delete(s))
      }
      client.pipe(db).pipe(client)
      client.once('close', () => db.destroy())
      db.once('close', () => client.destroy())
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  })
  after(async () => {
    await server?.dispose()
    if (relay.listening) await new Promise((r) => relay.close(r))
    for (const s of relayed) s.destroy()
    await pg.dispose()
  })

  test('the database check fails, and names the database, once the server cannot reach it', async () => {
    const url = new URL(await pg.url())
    url.hostname = '127.0.0.1'
    url.port = String((relay.address() as { port: number }).port)
    server = await startTestServer({ ...METRICS, database: url.toString() })
    const up = await readiness(server.metricsAddress)
    assert.equal(up.status, 200)
    const t = await server.createTunnel('pg')
    assert.equal(valueOf(await scrape(server.metricsAddress), 'apptunnel_tunnel_status', { tunnel: t.id, status: 'INCOMPLETE' }), 1)

    const closed = new Promise((r) => relay.close(r))
    for (const s of relayed) s.destroy()
    await closed
    const down = await readiness(server.metricsAddress)
    assert.equal(down.status, 503)
    assert.equal(down.body.status, 'not ready')
    const database = down.body.checks.find((c) => c.name === 'database')
    assert.equal(database?.ok, false)
    assert.ok((database?.reason ?? '').length > 0)
    assert.deepEqual(
      down.body.checks.filter((c) => c.name !== 'database'),
      [
        { name: 'https', ok: true },
        { name: 'ingress', ok: true },
      ],
    )
    // /metrics still answers without its database; only the tunnel statuses, read from it, are missing.
    const s = await scrape(server.metricsAddress)
    assert.equal(s.samples.filter((x) => x.name === 'apptunnel_tunnel_status').length, 0)
    assert.ok(s.families.has('apptunnel_ingress_requests_total'))
  })
})
