import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'
import { startAgent, type TunnelAgent } from '../src/agent/start-agent.ts'
import { InstanceAdmin } from '../src/agent/instance/instance-admin.ts'
import { loadAgentConfig, type AgentConfigInput } from '../src/config/agent-config.ts'
import { createLogger } from '../src/observability/index.ts'
import { decodeSecurityKey, encodeSecurityKey, formatAgentAuthorization } from '../src/protocol/index.ts'
import { openDatabase } from '../src/store/index.ts'
import { CLI, cli } from '../src/testing/cli-runner.ts'
import { startConnectProxy, type ProxiedConnection, type TestConnectProxy } from '../src/testing/connect-proxy.ts'
import { eventually } from '../src/testing/eventually.ts'
import { checkNoLeakedHandles } from '../src/testing/leak-check.ts'
import { startTestUpstream, type TestUpstream } from '../src/testing/test-upstream.ts'
import { ingressRequest, startTestAgent, startTestServer, type TestServer } from '../src/testing/tunnel-harness.ts'

// The agent dials the tunnel server through a real HTTP CONNECT proxy on loopback
// (src/testing/connect-proxy.ts), which records every CONNECT and every byte the agent sent it.

checkNoLeakedHandles()

const run = promisify(execFile)

/** Every form the tunnel secret exists in; none may ever reach the proxy in the clear. */
function assertSecretNeverCrossed(connections: readonly ProxiedConnection[], key: string): void {
  const k = decodeSecurityKey(key)
  const forms = [key, k.secret.toString('base64url'), k.secret.toString('base64'), k.secret.toString('hex'), formatAgentAuthorization(k.tunnelId, k.secret)]
  for (const c of connections) {
    assert.ok(!c.received.includes(k.secret), 'the raw secret reached the proxy')
    const text = c.received.toString('latin1')
    for (const f of forms) assert.ok(!text.includes(f), `a form of the secret (${f.slice(0, 8)}…) reached the proxy`)
  }
}

/** A pino logger at trace whose whole output the test can read. */
function capturedLog(): { text: () => string; log: ReturnType<typeof createLogger> } {
  let text = ''
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8')
      done()
    },
  })
  return { text: () => text, log: createLogger({ level: 'trace', name: 'agent-proxy-test', destination: sink }) }
}

describe('agent through an HTTP CONNECT proxy', () => {
  let server: TestServer
  let upstream: TestUpstream
  let tunnel: Awaited<ReturnType<TestServer['createTunnel']>>
  let serverTarget: string
  const cleanups: Array<() => Promise<void>> = []
  const proxy = async (...args: Parameters<typeof startConnectProxy>): Promise<TestConnectProxy> => {
    const p = await startConnectProxy(...args)
    cleanups.push(p.close)
    return p
  }
  const agentWith = async (overrides: Partial<AgentConfigInput>, key = tunnel.key): Promise<TunnelAgent> => {
    const a = await startTestAgent(key, upstream.address, overrides)
    cleanups.push(() => a.close())
    return a
  }

  before(async () => {
    upstream = await startTestUpstream()
    server = await startTestServer()
    tunnel = await server.createTunnel('proxied')
    serverTarget = `127.0.0.1:${server.apiAddress.port}`
  })
  after(async () => {
    for (const c of cleanups.reverse()) await c()
    await server?.dispose()
    await upstream?.close()
  })

  test('the agent connects through the proxy and serves requests; the proxy saw exactly the server host:port and only ciphertext', async () => {
    const p = await proxy()
    const agent = await agentWith({ proxy: p.url(), sessions: 2 })
    await agent.waitFor((s) => s.status === 'CONNECTED' && s.sessions === 2)
    const res = await ingressRequest(server.ingressAddress, tunnel.hostHeader)
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), 'hello')
    assert.equal(p.connects.length, 2, 'one CONNECT per session')
    for (const c of p.connects) {
      assert.equal(c.target, serverTarget)
      assert.equal(c.status, 200)
      assert.equal(c.proxyAuthorization, undefined)
    }
    assertSecretNeverCrossed(p.connects, tunnel.key)
  })

  test('the proxy resolves the server name, and the certificate is checked against that name, not the proxy (CA file, no pin)', async () => {
    const named = await startTestServer({ publicUrl: 'https://apptunnel-server.test' })
    cleanups.push(() => named.dispose())
    const created = await named.createTunnel('named')
    const k = decodeSecurityKey(created.key)
    const { certificatePin: _pin, ...unpinned } = k
    const keyFor = (name: string): string => encodeSecurityKey({ ...unpinned, serverUrl: `https://${name}:${named.apiAddress.port}` })
    // .test names resolve nowhere: only the proxy's own table knows where they are.
    const p = await proxy({ hosts: { 'apptunnel-server.test': '127.0.0.1', 'other-name.test': '127.0.0.1' } })
    const caFile = join(named.dataDir, 'server.crt')

    const good = await agentWith({ proxy: p.url(), caFile, sessions: 1 }, keyFor('apptunnel-server.test'))
    await good.waitFor((s) => s.status === 'CONNECTED')
    assert.equal(p.connects[0]?.target, `apptunnel-server.test:${named.apiAddress.port}`)
    assert.equal((await ingressRequest(named.ingressAddress, created.hostHeader)).status, 200)

    // The same server under a name its certificate does not carry: refused before the secret goes.
    const before = p.connects.length
    const wrong = await agentWith({ proxy: p.url(), caFile, sessions: 1 }, keyFor('other-name.test'))
    const st = await wrong.waitFor((s) => s.status === 'UNAVAILABLE')
    assert.equal(st.code, 'TUN_ERR_TLS_CERT_MISMATCH')
    assert.match(st.reason, /^certificate mismatch: other-name\.test:\d+ presented a certificate that is not trusted \(ERR_TLS_CERT_ALTNAME_INVALID\)/)
    assert.equal(p.connects[before]?.target, `other-name.test:${named.apiAddress.port}`)
    assertSecretNeverCrossed(p.connects, created.key)
  })

  test("a server by IP address: its certificate is checked against that address, not against the proxy's", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-proxy-cert-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const [certFile, keyFile] = [join(dir, 'server.crt'), join(dir, 'server.key')]
    // Only the server's address (::1) is in the certificate; the proxy is at 127.0.0.1. Checked
    // against the proxy's address, the handshake would fail.
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile,
      '-days', '1', '-subj', '/CN=apptunnel proxy test', '-addext', 'subjectAltName=IP:::1',
    ])
    const v6 = await startTestServer({ listen: '[::1]:0', tlsCertFile: certFile, tlsKeyFile: keyFile })
    cleanups.push(() => v6.dispose())
    const created = await v6.createTunnel('by address')
    assert.equal(decodeSecurityKey(created.key).certificatePin, undefined, 'an operator certificate: verified by CA, no pin')
    const p = await proxy()
    const agent = await agentWith({ proxy: p.url(), caFile: certFile, sessions: 1 }, created.key)
    await agent.waitFor((s) => s.status === 'CONNECTED')
    assert.equal(p.connects[0]?.target, `[::1]:${v6.apiAddress.port}`)
    assert.equal((await ingressRequest(v6.ingressAddress, created.hostHeader)).status, 200)
  })

  test('basic auth: the right user and password connect; the proxy gets them, the logs never do', async () => {
    const credentials = { username: 'corp\\svc-tunnel', password: 'p@ss word:1' }
    const p = await proxy({ requireAuth: credentials })
    const { text, log } = capturedLog()
    const agent = await startAgent(
      loadAgentConfig({ key: tunnel.key, upstream: upstream.address, nodeId: 'auth-node', sessions: 1, logLevel: 'trace', proxy: p.url(credentials) }),
      { log },
    )
    cleanups.push(() => agent.close())
    await agent.waitFor((s) => s.status === 'CONNECTED')
    assert.equal((await ingressRequest(server.ingressAddress, tunnel.hostHeader)).status, 200)
    assert.equal(p.connects[0]?.proxyAuthorization, `Basic ${Buffer.from('corp\\svc-tunnel:p@ss word:1').toString('base64')}`)
    assertSecretNeverCrossed(p.connects, tunnel.key)

    const lines = text()
      .split('\n')
      .filter((l) => l.includes('through an http connect proxy'))
    assert.equal(lines.length, 1, 'the proxy in use is logged once')
    assert.deepEqual(
      (({ level, proxy: url, proxyAuth, noProxy }) => ({ level, url, proxyAuth, noProxy }))(JSON.parse(lines[0]!) as Record<string, unknown>),
      { level: 30, url: `http://${p.address}`, proxyAuth: 'basic', noProxy: [] },
    )
    for (const leak of ['svc-tunnel', 'p@ss', 'p%40ss', Buffer.from('corp\\svc-tunnel:p@ss word:1').toString('base64')]) {
      assert.ok(!text().includes(leak), `the proxy credentials (${leak.slice(0, 4)}…) were logged`)
    }
  })

  for (const [name, given, reason] of [
    ['wrong', { username: 'corp\\svc-tunnel', password: 'not it' }, /^proxy 127\.0\.0\.1:\d+ rejected the user and password in the proxy URL \(407 Proxy Authentication Required\)$/],
    ['missing', undefined, /^proxy 127\.0\.0\.1:\d+ requires authentication \(407 Proxy Authentication Required\): give the user and password in the proxy URL/],
  ] as const) {
    test(`basic auth, ${name} credentials: UNAVAILABLE at once with the 407 reason, no quick retries, and not one byte after the 407`, async () => {
      const p = await proxy({ requireAuth: { username: 'corp\\svc-tunnel', password: 'p@ss word:1' } })
      // The default 30 s connect grace is kept: a 407 must not hide behind it.
      const agent = await agentWith({ proxy: p.url(given), sessions: 1 })
      const st = await agent.waitFor((s) => s.status === 'UNAVAILABLE', 5_000)
      assert.equal(st.code, 'TUN_ERR_PROXY_AUTH_REQUIRED')
      assert.match(st.reason, reason)
      await eventually(() => p.connects.every((c) => c.closed), 'the agent closed the refused connection')
      for (const c of p.connects) {
        assert.equal(c.status, 407)
        assert.equal(c.bytesAfterRefusal, 0, 'the agent sent nothing after the 407')
      }
      assertSecretNeverCrossed(p.connects, tunnel.key)
      // Back-off here starts at 100 ms; a 407 waits rejectedRetryMs (5 min) so the proxy account is not locked out.
      await new Promise((r) => setTimeout(r, 1_000))
      assert.equal(p.connects.length, 1, 'the 407 was not retried at back-off pace')
    })
  }

  test('NO_PROXY naming the server: the proxy sees no CONNECT and the agent connects directly', async () => {
    for (const noProxy of ['127.0.0.1', 'example.com, 127.0.0.0/8', `*`, `127.0.0.1:${server.apiAddress.port}`]) {
      const p = await proxy()
      const agent = await agentWith({ proxy: p.url(), noProxy, sessions: 1 })
      await agent.waitFor((s) => s.status === 'CONNECTED')
      assert.equal((await ingressRequest(server.ingressAddress, tunnel.hostHeader)).status, 200)
      assert.equal(p.connects.length, 0, `NO_PROXY=${noProxy}: nothing went through the proxy`)
      await agent.close()
    }
  })

  test('a proxy that refuses the CONNECT (403): UNAVAILABLE at once naming the proxy and the status', async () => {
    const p = await proxy({ refuseWith: { status: 403, reason: 'Forbidden' } })
    const agent = await agentWith({ proxy: p.url(), sessions: 1 })
    const st = await agent.waitFor((s) => s.status === 'UNAVAILABLE', 5_000)
    assert.equal(st.code, 'TUN_ERR_PROXY_REFUSED')
    assert.equal(st.reason, `proxy ${p.address} refused the CONNECT to ${serverTarget} (403 Forbidden)`)
    assertSecretNeverCrossed(p.connects, tunnel.key)
  })

  test('a proxy that is down: unreachable, naming the proxy (after the connect grace)', async () => {
    const gone = await startConnectProxy()
    await gone.close()
    const agent = await agentWith({ proxy: gone.url(), sessions: 1, connectGraceMs: 300 })
    const connecting = await agent.waitFor((s) => s.status === 'CONNECTING' && s.reason.includes('last attempt'))
    assert.equal(connecting.reason, `still connecting; last attempt: cannot reach proxy ${gone.address}: ECONNREFUSED`)
    const st = await agent.waitFor((s) => s.status === 'UNAVAILABLE')
    assert.equal(st.code, 'TUN_ERR_SERVER_UNREACHABLE')
    assert.equal(st.reason, `cannot reach proxy ${gone.address}: ECONNREFUSED`)
  })

  test('a node of an instance: key status shows the proxy as the reason', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-proxy-instance-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const db = join(dir, 'instance.db')
    const database = await openDatabase(db)
    await new InstanceAdmin(database).addKey(tunnel.key, 'proxy test')
    await database.close()
    const p = await proxy({ refuseWith: { status: 403, reason: 'Forbidden' } })
    const node = await startAgent(loadAgentConfig({ database: db, dataDir: join(dir, 'node'), upstream: upstream.address, keyPollMs: 100, sessions: 1, logLevel: 'silent', proxy: p.url() }))
    cleanups.push(() => node.close())
    await node.waitFor((s) => s.status === 'UNAVAILABLE')
    let view: { status: string; nodes: Array<{ status: string; reason: string }> } | undefined
    // The node writes its row right after the change; the CLI is a separate reader of that row.
    await eventually(async () => {
      const shown = await cli(['key', 'status', '--database', db, '--json'])
      assert.equal(shown.code, 0, shown.stderr)
      view = JSON.parse(shown.stdout) as typeof view
      return view?.status === 'UNAVAILABLE'
    }, 'key status shows the node UNAVAILABLE', 15_000)
    assert.equal(view?.nodes[0]?.reason, `proxy ${p.address} refused the CONNECT to ${serverTarget} (403 Forbidden)`)
  })

  describe('apptunnel agent (CLI): --proxy, --no-proxy and the environment', () => {
    /** Runs `apptunnel agent` until it logs CONNECTED (or the deadline), then stops it; returns its stderr (the log). */
    async function runAgentUntilConnected(args: string[], env: Record<string, string>): Promise<string> {
      const child = spawn(process.execPath, [CLI, 'agent', '--key', tunnel.key, '--upstream', upstream.address, '--sessions', '1', '--node-id', 'cli-node', ...args], {
        env: { ...process.env, https_proxy: '', HTTPS_PROXY: '', no_proxy: '', NO_PROXY: '', ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let log = ''
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d))
      const exited = new Promise<void>((r) => child.once('exit', () => r()))
      try {
        await eventually(() => /"status":"CONNECTED"/.test(log) || child.exitCode !== null, 'the agent process connected', 20_000)
      } finally {
        child.kill('SIGTERM')
        await exited
      }
      assert.match(log, /"status":"CONNECTED"/, log)
      return log
    }

    test('HTTPS_PROXY is used, and the proxy in use is logged without its credentials', async () => {
      const credentials = { username: 'envuser', password: 'env-secret' }
      const p = await proxy({ requireAuth: credentials })
      const log = await runAgentUntilConnected([], { HTTPS_PROXY: p.url(credentials) })
      assert.equal(p.connects[0]?.target, serverTarget)
      assert.equal(p.connects[0]?.status, 200)
      assert.match(log, new RegExp(`"proxy":"http://${p.address}","proxyAuth":"basic".*"msg":"agent dials the tunnel server through an http connect proxy"`))
      assert.doesNotMatch(log, /envuser|env-secret/)
    })

    test('https_proxy (lower case) wins over HTTPS_PROXY, and --proxy wins over both', async () => {
      const lower = await proxy()
      const upper = await proxy({ refuseWith: { status: 403, reason: 'Forbidden' } })
      await runAgentUntilConnected([], { https_proxy: lower.url(), HTTPS_PROXY: upper.url() })
      assert.equal(lower.connects.length, 1)
      assert.equal(upper.connects.length, 0)
      const flag = await proxy()
      await runAgentUntilConnected(['--proxy', flag.url()], { https_proxy: upper.url(), HTTPS_PROXY: upper.url() })
      assert.equal(flag.connects.length, 1)
      assert.equal(upper.connects.length, 0)
    })

    test("NO_PROXY and --no-proxy send the agent directly; --proxy '' turns an environment proxy off", async () => {
      const p = await proxy({ refuseWith: { status: 403, reason: 'Forbidden' } })
      await runAgentUntilConnected([], { HTTPS_PROXY: p.url(), NO_PROXY: '127.0.0.1' })
      await runAgentUntilConnected(['--no-proxy', `localhost,127.0.0.1:${server.apiAddress.port}`], { HTTPS_PROXY: p.url(), NO_PROXY: 'elsewhere.example' })
      await runAgentUntilConnected(['--proxy', ''], { HTTPS_PROXY: p.url() })
      assert.equal(p.connects.length, 0)
    })

    test('a bad proxy URL or NO_PROXY entry, from a flag or the environment, stops the agent with an error naming the field', async () => {
      const cases: Array<[string[], Record<string, string>, RegExp]> = [
        [['--proxy', 'https://proxy.example.com:3128'], {}, /^apptunnel: proxy: https:\/\/ proxies \(TLS to the proxy\) are not supported.* \[TUN_ERR_CONFIG_INVALID\]\n$/],
        [[], { HTTPS_PROXY: 'http://alice:hunter2@proxy.example.com' }, /^apptunnel: proxy: the proxy URL must give the port, .*"http:\/\/\*\*\*@proxy\.example\.com".* \[TUN_ERR_CONFIG_INVALID\]\n$/],
        [['--proxy', 'http://proxy.example.com:3128', '--no-proxy', '10.0.0.0/99'], {}, /^apptunnel: noProxy: "10\.0\.0\.0\/99" has a bad prefix length \(0-32\).* \[TUN_ERR_CONFIG_INVALID\]\n$/],
        [[], { https_proxy: 'proxy.example.com:3128', no_proxy: '192.168.*' }, /^apptunnel: noProxy: "192\.168\.\*" is not a host name.* \[TUN_ERR_CONFIG_INVALID\]\n$/],
      ]
      for (const [args, env, expected] of cases) {
        const r = await cli(['agent', '--key', tunnel.key, '--upstream', '127.0.0.1:1', ...args], { https_proxy: '', HTTPS_PROXY: '', no_proxy: '', NO_PROXY: '', ...env })
        assert.notEqual(r.code, 0)
        assert.match(r.stderr, expected, `${args.join(' ')} ${JSON.stringify(env)}`)
        assert.doesNotMatch(r.stderr, /hunter2/)
      }
    })
  })
})
