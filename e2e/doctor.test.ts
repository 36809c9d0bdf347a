import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer as createTcpServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startAgent, type TunnelAgent } from '../src/agent/start-agent.ts'
import { loadDoctorConfig, type DoctorConfigInput } from '../src/agent/doctor/doctor-config.ts'
import { runDoctor, type DoctorReport } from '../src/agent/doctor/run-doctor.ts'
import { InstanceAdmin } from '../src/agent/instance/instance-admin.ts'
import { loadAgentConfig } from '../src/config/agent-config.ts'
import { decodeSecurityKey, encodeSecurityKey, type SecurityKey } from '../src/protocol/index.ts'
import { InstanceNodeRepository, openDatabase, type Database } from '../src/store/index.ts'
import { databaseTargets } from '../src/testing/test-databases.ts'
import { spkiPin } from '../src/transport/certificate-pin.ts'
import { generateSelfSigned } from '../src/transport/self-signed-certificate.ts'
import { cli } from '../src/testing/cli-runner.ts'
import { startConnectProxy } from '../src/testing/connect-proxy.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

// `apptunnel doctor` against real loopback setups: a healthy one, then each broken one it claims
// to detect, asserting the exact failing check and that the checks depending on it are skipped.

checkNoLeakedHandles()

// The checks that read the instance database run on SQLite and on PostgreSQL, each with a fresh
// database for the instance and another that stays without a key.
const instanceTargets = await databaseTargets()
const emptyTargets = await databaseTargets()

const ACTOR = { name: 'test', sourceAddress: '127.0.0.1' }

/** The verdicts of checks 1-7, in order: the shape every test asserts first. */
const verdicts = (r: DoctorReport): string[] => r.checks.map((c) => c.verdict)
const check = (r: DoctorReport, n: number) => r.checks[n - 1]!

/** A port nothing listens on: bound, read back, closed. */
async function closedPort(): Promise<number> {
  const s = createTcpServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** A small real HTTP server on loopback answering every request with `answer`; closes its sockets. */
async function tinyServer(server: HttpServer | HttpsServer, answer: (req: IncomingMessage, res: ServerResponse) => void) {
  const sockets = new Set<Socket>()
  const hosts: string[] = []
  server.on('request', (req, res) => {
    hosts.push(req.headers.host ?? '')
    answer(req, res)
  })
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    address: `127.0.0.1:${port}`,
    /** the Host of every request seen, in order */
    hosts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      }),
  }
}

describe('apptunnel doctor', () => {
  let server: TestServer
  let upstream: TestUpstream
  let tunnel: Awaited<ReturnType<TestServer['createTunnel']>>
  let agent: TunnelAgent
  let root: string
  const cleanups: Array<() => Promise<void>> = []

  /** The tunnel's key with some parts replaced: how each broken key is made. */
  const keyWith = (parts: Partial<SecurityKey>): string => encodeSecurityKey({ ...decodeSecurityKey(tunnel.key), ...parts })
  /** The key as a server with a CA-issued certificate hands it out: no pin. */
  const unpinnedKey = (): string => {
    const { certificatePin: _pin, ...rest } = decodeSecurityKey(tunnel.key)
    return encodeSecurityKey(rest)
  }
  /** The same key naming the server as `localhost`, so that check 2 has a name to resolve. */
  const localhostKey = (): string => keyWith({ serverUrl: `https://localhost:${server.apiAddress.port}` })
  const doctor = (input: Partial<DoctorConfigInput>): Promise<DoctorReport> =>
    runDoctor(loadDoctorConfig({ upstream: upstream.address, timeoutMs: 3000, ...input }), { nodeId: 'doctor-test' })

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'apptunnel-doctor-'))
    upstream = await startTestUpstream()
    server = await startTestServer({ orgName: 'Acme' })
    tunnel = await server.createTunnel('doctor')
    agent = await startTestAgent(tunnel.key, upstream.address)
    await agent.waitFor((s) => s.status === 'CONNECTED')
  })

  after(async () => {
    for (const c of cleanups.reverse()) await c()
    await agent?.close()
    await server?.dispose()
    await upstream?.close()
    await rm(root, { recursive: true, force: true })
  })

  test('healthy setup (CLI --json): checks 1-5 ok, 6 and 7 skipped with their reason, exit 0; the running agent is not disturbed', async () => {
    const run = await cli(['doctor', '--key', localhostKey(), '--upstream', upstream.address, '--json'])
    assert.equal(run.code, 0, run.stderr)
    const report = JSON.parse(run.stdout) as DoctorReport
    assert.equal(report.ok, true)
    assert.deepEqual(
      report.checks.map((c) => [c.number, c.id, c.verdict]),
      [
        [1, 'upstream-http', 'ok'],
        [2, 'server-dns', 'ok'],
        [3, 'server-tcp', 'ok'],
        [4, 'server-tls', 'ok'],
        [5, 'key-valid', 'ok'],
        [6, 'cluster-nodes', 'skipped'],
        [7, 'instance-url', 'skipped'],
      ],
    )
    for (const c of report.checks) {
      assert.equal(typeof c.title, 'string')
      assert.ok(c.detail.length > 0, `check ${c.number} says what it saw`)
      assert.equal(c.fix, '')
    }
    assert.match(check(report, 1).detail, new RegExp(`${upstream.address} answers GET / with HTTP 404`))
    assert.match(check(report, 2).detail, /^localhost resolves to /)
    assert.match(check(report, 4).detail, /matches the pin in the key/)
    assert.match(check(report, 5).detail, new RegExp(`tunnel "doctor" \\(Acme\\), application link URL ${tunnel.applicationLinkUrl.replace(/[./]/g, '\\$&')}`))
    assert.match(check(report, 6).detail, /no --database/)
    assert.match(check(report, 7).detail, /no absolute URL/)

    // The doctor's session came and went; the agent's sessions carry on.
    await eventually(() => server.registry.sessionsOf(tunnel.id).every((s) => !s.info.nodeId.startsWith('doctor-')), 'the doctor session closed')
    assert.equal(agent.status.status, 'CONNECTED')
    const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader)
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), 'hello')

    const text = await cli(['doctor', '--key', localhostKey(), '--upstream', upstream.address])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /^VERDICT\s+CHECK\s+DETAIL\n/)
    assert.match(text.stdout, /\nOK\s+5\. server accepts the security key\s+the server accepted the key/)
    assert.match(text.stdout, /\nSKIPPED\s+6\. cluster nodes are up\s+no --database/)
    assert.match(text.stdout, /\nNo check failed\.\n$/)
  })

  test('check 5 holds a real session only for a moment: the server registers it, then sees it leave', async () => {
    const fresh = await server.createTunnel('fresh')
    const events: string[] = []
    const up = (id: string): void => void (id === fresh.id && events.push('up'))
    const down = (id: string): void => void (id === fresh.id && events.push('down'))
    server.registry.on('tunnel-up', up)
    server.registry.on('tunnel-down', down)
    try {
      const report = await doctor({ key: fresh.key })
      assert.equal(check(report, 5).verdict, 'ok')
      // A session dropped right after the 101 would fail its setup and never be registered.
      await eventually(() => events.length === 2, 'the session registered and gone')
      assert.deepEqual(events, ['up', 'down'])
      assert.equal(server.registry.sessionsOf(fresh.id).length, 0)
      // The price of a real session, documented in docs/troubleshooting.md: the tunnel has now connected once.
      assert.equal((await server.tunnels.get({ orgId: server.orgId, ...ACTOR }, fresh.id)).status, 'UNAVAILABLE')
    } finally {
      server.registry.off('tunnel-up', up)
      server.registry.off('tunnel-down', down)
    }
  })

  test('upstream down (CLI): check 1 fails with its fix under it, check 7 is skipped, exit 1', async () => {
    const port = await closedPort()
    const run = await cli(['doctor', '--key', tunnel.key, '--upstream', `127.0.0.1:${port}`])
    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stdout, new RegExp(`\\nFAIL\\s+1\\. upstream port answers plain HTTP\\s+connection refused: nothing listens on 127\\.0\\.0\\.1:${port}\\n\\s+fix: start the app`))
    assert.match(run.stdout, /\nSKIPPED\s+7\. .*because check 1 failed/)
    assert.match(run.stdout, /\n1 check failed\.\n$/)

    const report = await doctor({ key: tunnel.key, upstream: `127.0.0.1:${port}` })
    assert.deepEqual(verdicts(report), ['fail', 'skipped', 'ok', 'ok', 'ok', 'skipped', 'skipped'])
    assert.equal(check(report, 1).code, 'TUN_ERR_UPSTREAM_REFUSED')
    assert.equal(check(report, 7).detail, 'because check 1 failed')
    assert.equal(report.ok, false)
  })

  test('upstream redirecting to HTTPS: check 1 fails "redirects to HTTPS", check 7 skipped', async () => {
    // What a servlet container's CONFIDENTIAL constraint does: same host, https, the redirect port.
    const app = await tinyServer(createHttpServer(), (req, res) => {
      res.writeHead(301, { location: `https://${(req.headers.host ?? '').replace(/:\d+$/, '')}:8443/` }).end()
    })
    cleanups.push(app.close)
    const report = await doctor({ key: tunnel.key, upstream: app.address })
    assert.deepEqual(verdicts(report), ['fail', 'skipped', 'ok', 'ok', 'ok', 'skipped', 'skipped'])
    assert.match(check(report, 1).detail, /HTTP 301 \(Location: https:\/\/127\.0\.0\.1:8443\/\): it redirects to HTTPS/)
    assert.match(check(report, 1).fix, /point --upstream at the plain-HTTP port/)
    assert.equal(check(report, 7).detail, 'because check 1 failed')
  })

  test('upstream speaking TLS: check 1 fails "speaks TLS"', async () => {
    const pair = await generateSelfSigned(['localhost'])
    const app = await tinyServer(createHttpsServer({ cert: pair.cert, key: pair.key }), (_req, res) => res.end('secure'))
    cleanups.push(app.close)
    const report = await doctor({ key: tunnel.key, upstream: app.address })
    assert.deepEqual(verdicts(report), ['fail', 'skipped', 'ok', 'ok', 'ok', 'skipped', 'skipped'])
    assert.equal(check(report, 1).detail, `${app.address} speaks TLS (HTTPS), not plain HTTP`)
    assert.match(check(report, 1).fix, /plain-HTTP connector/)
  })

  test('server name that does not resolve: check 2 fails, 3-5 skipped because of it', async () => {
    const report = await doctor({ key: keyWith({ serverUrl: `https://tunnel.doctor-test.invalid:${server.apiAddress.port}` }) })
    assert.deepEqual(verdicts(report), ['ok', 'fail', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped'])
    assert.match(check(report, 2).detail, /^tunnel\.doctor-test\.invalid does not resolve/)
    for (const n of [3, 4, 5]) assert.equal(check(report, n).detail, 'because check 2 failed')
    assert.equal(report.ok, false)
  })

  test('server port closed: check 3 fails, 4 and 5 skipped because of it', async () => {
    const port = await closedPort()
    const report = await doctor({ key: keyWith({ serverUrl: `https://127.0.0.1:${port}` }) })
    assert.deepEqual(verdicts(report), ['ok', 'skipped', 'fail', 'skipped', 'skipped', 'skipped', 'skipped'])
    assert.match(check(report, 2).detail, /by address \(127\.0\.0\.1\)/)
    assert.equal(check(report, 3).detail, `127.0.0.1:${port} refused the connection`)
    for (const n of [4, 5]) assert.equal(check(report, n).detail, 'because check 3 failed')
  })

  test('wrong pin: check 4 fails naming both pins, check 5 skipped', async () => {
    const other = spkiPin((await generateSelfSigned(['localhost'])).cert)
    const report = await doctor({ key: keyWith({ certificatePin: other }) })
    assert.deepEqual(verdicts(report), ['ok', 'skipped', 'ok', 'fail', 'skipped', 'skipped', 'skipped'])
    const tls = check(report, 4)
    assert.equal(tls.code, 'TUN_ERR_TLS_CERT_MISMATCH')
    assert.match(tls.detail, new RegExp(`with pin ${server.certificatePin!.replace(/-/g, '\\-')}; the key expects pin ${other.replace(/-/g, '\\-')}`))
    assert.equal(check(report, 5).detail, 'because check 4 failed')
  })

  test('no pin and the wrong CA: check 4 fails; the server\'s own certificate as CA passes', async () => {
    const unpinned = unpinnedKey()
    const wrongCa = join(root, 'wrong-ca.pem')
    await writeFile(wrongCa, (await generateSelfSigned(['localhost'])).cert)
    const refused = await doctor({ key: unpinned, caFile: wrongCa })
    assert.deepEqual(verdicts(refused), ['ok', 'skipped', 'ok', 'fail', 'skipped', 'skipped', 'skipped'])
    assert.match(check(refused, 4).detail, new RegExp(`does not verify against the CAs in ${wrongCa.replace(/[./]/g, '\\$&')}: `))
    assert.match(check(refused, 4).fix, /--ca-file/)

    const trusted = await doctor({ key: unpinned, caFile: join(server.dataDir, 'server.crt') })
    assert.deepEqual(verdicts(trusted), ['ok', 'skipped', 'ok', 'ok', 'ok', 'skipped', 'skipped'])
  })

  test('key with a wrong secret: check 5 fails TUN_ERR_KEY_REJECTED', async () => {
    const report = await doctor({ key: keyWith({ secret: randomBytes(32) }) })
    assert.deepEqual(verdicts(report), ['ok', 'skipped', 'ok', 'ok', 'fail', 'skipped', 'skipped'])
    assert.equal(check(report, 5).code, 'TUN_ERR_KEY_REJECTED')
    assert.match(check(report, 5).fix, /add the right security key again/)
  })

  test('tunnel deleted: check 5 fails TUN_ERR_TUNNEL_NOT_FOUND', async () => {
    const gone = await server.createTunnel('deleted')
    await server.tunnels.delete({ orgId: server.orgId, ...ACTOR }, gone.id)
    const report = await doctor({ key: gone.key })
    assert.deepEqual(verdicts(report), ['ok', 'skipped', 'ok', 'ok', 'fail', 'skipped', 'skipped'])
    assert.equal(check(report, 5).code, 'TUN_ERR_TUNNEL_NOT_FOUND')
    assert.match(check(report, 5).fix, /create a new tunnel/)
  })

  test('through a CONNECT proxy: healthy (the proxy resolves the name), and a refusing proxy fails check 3', async () => {
    const proxy = await startConnectProxy({ hosts: { 'tunnel.corp.example': '127.0.0.1' } })
    cleanups.push(proxy.close)
    // A name only the proxy knows: the node needs no DNS of its own for it.
    const key = keyWith({ serverUrl: `https://tunnel.corp.example:${server.apiAddress.port}` })
    const report = await doctor({ key, proxy: proxy.url() })
    assert.deepEqual(verdicts(report), ['ok', 'skipped', 'ok', 'ok', 'ok', 'skipped', 'skipped'])
    assert.match(check(report, 2).detail, new RegExp(`through proxy ${proxy.address}, which resolves tunnel\\.corp\\.example`))
    assert.equal(check(report, 3).detail, `proxy ${proxy.address} opened a tunnel to tunnel.corp.example:${server.apiAddress.port}`)
    assert.ok(proxy.connects.length >= 3, 'checks 3, 4 and 5 each went through the proxy')
    for (const c of proxy.connects) assert.equal(c.target, `tunnel.corp.example:${server.apiAddress.port}`)
    const secret = decodeSecurityKey(key).secret.toString('base64url')
    for (const c of proxy.connects) assert.ok(!c.received.toString('latin1').includes(secret), 'the secret never crossed the proxy in the clear')

    const refusing = await startConnectProxy({ refuseWith: { status: 403, reason: 'Forbidden' } })
    cleanups.push(refusing.close)
    const refused = await doctor({ key, proxy: refusing.url() })
    assert.deepEqual(verdicts(refused), ['ok', 'skipped', 'fail', 'skipped', 'skipped', 'skipped', 'skipped'])
    assert.equal(check(refused, 3).code, 'TUN_ERR_PROXY_REFUSED')
    assert.match(check(refused, 3).fix, /allow CONNECT to tunnel\.corp\.example:/)
    for (const n of [4, 5]) assert.equal(check(refused, n).detail, 'because check 3 failed')
  })

  instanceTargets.forEach((target, i) => {
    const emptyTarget = emptyTargets[i]!
    describe(`with the instance database (${target.name}): nodes and the base URL`, { skip: target.skip }, () => {
      let database: Database
      /** what --database names: the SQLite file, or the PostgreSQL URL with its schema */
      let databaseTarget: string
      let baseUrlApp: Awaited<ReturnType<typeof tinyServer>>
      const nodes: TunnelAgent[] = []

      before(async () => {
        // An app with a configured base URL: it sends callers there, whatever Host they used.
        baseUrlApp = await tinyServer(createHttpServer(), (_req, res) => {
          res.writeHead(302, { location: 'https://jira.example.test/secure/Dashboard.jspa' }).end()
        })
        databaseTarget = await target.url()
        database = await target.open()
        await new InstanceAdmin(database).addKey(localhostKey(), 'doctor test')
        for (const name of ['n1', 'n2']) {
          nodes.push(
            await startAgent(
              loadAgentConfig({
                upstream: baseUrlApp.address,
                database: databaseTarget,
                dataDir: join(root, `${target.name}-${name}`),
                keyPollMs: 100,
                nodeHeartbeatMs: 150,
                reconnectInitialMs: 50,
                reconnectMaxMs: 300,
                logLevel: 'silent',
              }),
            ),
          )
        }
        await eventually(async () => (await new InstanceAdmin(database).status()).status === 'CONNECTED', 'both nodes CONNECTED')
      })

      after(async () => {
        for (const n of nodes) await n.close()
        await database?.close()
        await baseUrlApp?.close()
        await target.dispose()
        await emptyTarget.dispose()
      })

      test('healthy: all seven checks ok, the key read from the database, the base URL asked with the tunnel\'s Host', async () => {
        assert.equal(database.dialect, target.name)
        baseUrlApp.hosts.length = 0
        const report = await doctor({ database: databaseTarget, upstream: baseUrlApp.address, instanceUrl: 'https://jira.example.test' })
        assert.deepEqual(verdicts(report), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'], JSON.stringify(report.checks, null, 1))
        assert.equal(report.ok, true)
        assert.match(check(report, 1).detail, /redirect to the app's base URL, compared in check 7/)
        assert.match(check(report, 6).detail, /^2 of 2 nodes running, instance CONNECTED \(4 sessions\)/)
        assert.match(check(report, 7).detail, /its base URL is the instance URL https:\/\/jira\.example\.test/)
        assert.deepEqual(baseUrlApp.hosts, [baseUrlApp.address, tunnel.hostHeader])
      })

      test('instance URL mismatch: check 7 fails naming both; without --instance-url it is skipped saying what the app reports', async () => {
        const report = await doctor({ database: databaseTarget, upstream: baseUrlApp.address, instanceUrl: 'https://jira.corp.example.test/' })
        assert.deepEqual(verdicts(report), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'fail'])
        assert.match(check(report, 7).detail, /reports the base URL https:\/\/jira\.example\.test .*but the instance URL is https:\/\/jira\.corp\.example\.test$/)
        assert.match(check(report, 7).fix, /set the app's base URL to https:\/\/jira\.corp\.example\.test/)

        const unasked = await doctor({ database: databaseTarget, upstream: baseUrlApp.address })
        assert.equal(check(unasked, 7).verdict, 'skipped')
        assert.match(check(unasked, 7).detail, /reports the base URL https:\/\/jira\.example\.test .*give --instance-url/)
      })

      test('a node that died (old heartbeat) fails check 6 naming it; a node stopped on purpose is a warning', async () => {
        const old = new Date(Date.now() - 60_000).toISOString()
        const rows = new InstanceNodeRepository(database)
        await rows.report({
          nodeId: 'node-dead',
          address: 'jira-3',
          version: 'test',
          startedAt: old,
          heartbeatAt: old,
          heartbeatMs: 150,
          tunnelId: decodeSecurityKey(tunnel.key).tunnelId,
          status: 'CONNECTED',
          reason: 'connected',
          code: null,
          statusSince: old,
          sessions: 2,
          sessionsWanted: 2,
        })
        const down = await doctor({ database: databaseTarget, upstream: baseUrlApp.address })
        assert.deepEqual(verdicts(down).slice(0, 6), ['ok', 'ok', 'ok', 'ok', 'ok', 'fail'])
        assert.match(check(down, 6).detail, /^2 of 3 nodes running; down: node-dead \(node is not responding: no heartbeat for \d+ s/)
        assert.match(check(down, 6).fix, /start the agent again on node-dead/)
        await rows.remove('node-dead')

        const stopping = nodes.pop()!
        const id = stopping.nodeId
        await stopping.close()
        const stopped = await doctor({ database: databaseTarget, upstream: baseUrlApp.address })
        assert.equal(check(stopped, 6).verdict, 'warn')
        assert.match(check(stopped, 6).detail, new RegExp(`^1 of 2 nodes running; stopped: ${id} \\(node stopped at `))
        assert.equal(stopped.ok, true, 'a warning is not a failure')
      })

      test('a database without a key: check 5 fails saying so, 2-4 skipped for want of a server name', async () => {
        const empty = await emptyTarget.url()
        await (await openDatabase(empty)).close()
        const report = await doctor({ database: empty })
        assert.deepEqual(verdicts(report), ['ok', 'skipped', 'skipped', 'skipped', 'fail', 'fail', 'skipped'])
        assert.equal(check(report, 5).code, 'TUN_ERR_INSTANCE_NO_KEY')
        assert.match(check(report, 5).fix, /apptunnel key add KEY --database DB/)
        assert.match(check(report, 6).detail, /no agent node has registered/)
      })
    })
  })
})
