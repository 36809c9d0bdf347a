import { mkdtemp, rm } from 'node:fs/promises'
import { request, Agent as HttpAgent, type IncomingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAgent, type TunnelAgent } from '../agent/start-agent.ts'
import { loadAgentConfig, type AgentConfigInput } from '../config/agent-config.ts'
import { loadServerConfig, type ServerConfigInput } from '../config/server-config.ts'
import { startServer, type ServerDeps, type TunnelServer } from '../server/start-server.ts'
import { startTestUpstream, type TestUpstream } from './test-upstream.ts'

export interface TestServer extends TunnelServer {
  dataDir: string
  config: ServerConfigInput
  createTunnel(name?: string): Promise<{ id: string; key: string; applicationLinkUrl: string; hostHeader: string }>
  /** stops and starts again on the same ports and data directory */
  restart(): Promise<TestServer>
  /** closes the server and removes its data directory */
  dispose(): Promise<void>
}

/**
 * The configuration of agent node `name` of an on-prem instance in tests: its own data directory
 * under `root`, the instance's shared database, and polls, heartbeats and reconnects fast enough
 * for a test to see them.
 */
export function instanceNodeConfig(name: string, shared: { upstream: string; database: string; root: string }, extra: Partial<AgentConfigInput> = {}): AgentConfigInput {
  return {
    upstream: shared.upstream,
    database: shared.database,
    dataDir: join(shared.root, name),
    nodeId: name,
    keyPollMs: 100,
    nodeHeartbeatMs: 200,
    connectGraceMs: 300,
    reconnectInitialMs: 50,
    reconnectMaxMs: 300,
    logLevel: 'silent',
    ...extra,
  }
}
/** A real tunnel server on loopback, SQLite in a temp dir, fast keepalives for tests. */
export async function startTestServer(overrides: Partial<ServerConfigInput> = {}, dataDir?: string, deps: ServerDeps = {}): Promise<TestServer> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'apptunnel-test-')))
  const config: ServerConfigInput = {
    dataDir: dir,
    listen: '127.0.0.1:0',
    ingressListen: '127.0.0.1:0',
    pingIntervalMs: 1000,
    pingTimeoutMs: 1500,
    drainTimeoutMs: 2000,
    logLevel: 'silent',
    ...overrides,
  }
  const server = await startServer(loadServerConfig(config), deps)
  let n = 0
  const self: TestServer = Object.assign(Object.create(null) as object, server, {
    dataDir: dir,
    config,
    close: () => server.close(),
    applicationLinkUrl: (id: string) => server.applicationLinkUrl(id),
    async createTunnel(name = `tunnel ${++n}`) {
      const t = await server.tunnels.create({ orgId: server.orgId, name, sourceAddress: '127.0.0.1' }, { name })
      return { id: t.id, key: t.key, applicationLinkUrl: t.applicationLinkUrl, hostHeader: new URL(t.applicationLinkUrl).host }
    },
    async restart() {
      await server.close()
      return startTestServer(
        { ...config, listen: `127.0.0.1:${server.apiAddress.port}`, ingressListen: `127.0.0.1:${server.ingressAddress.port}` },
        dir,
        deps,
      )
    },
    async dispose() {
      await server.close()
      await rm(dir, { recursive: true, force: true })
    },
  })
  return self
}

export async function startTestAgent(key: string, upstream: string, overrides: Partial<AgentConfigInput> = {}): Promise<TunnelAgent> {
  return startAgent(
    loadAgentConfig({ key, upstream, nodeId: overrides.nodeId ?? 'test-node', reconnectInitialMs: 100, reconnectMaxMs: 1000, logLevel: 'silent', ...overrides }),
  )
}

export interface SimpleResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/** One HTTP request to the ingress with the tunnel's Host header. */
export function ingressRequest(
  ingress: { port: number },
  hostHeader: string,
  options: { method?: string; path?: string; body?: Buffer | string; headers?: Record<string, string>; agent?: HttpAgent | false; timeoutMs?: number; localAddress?: string } = {},
): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: ingress.port,
        method: options.method ?? 'GET',
        path: options.path ?? '/hello',
        headers: { host: hostHeader, ...(options.headers ?? {}) },
        agent: options.agent ?? false,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end(options.body)
  })
}

export function errorCodeOf(res: SimpleResponse): string | undefined {
  try {
    return (JSON.parse(res.body.toString('utf8')) as { error?: { code?: string } }).error?.code
  } catch {
    return undefined
  }
}

export interface ConnectedTunnel {
  server: TestServer
  upstream: TestUpstream
  /** replaceable: close() ends whichever agent is here at the end */
  agent: TunnelAgent
  tunnel: Awaited<ReturnType<TestServer['createTunnel']>>
  close(): Promise<void>
}

/** Upstream, server, one tunnel and a CONNECTED agent: the usual start of an e2e suite. */
export async function startConnectedTunnel(serverOverrides: Partial<ServerConfigInput> = {}, name = 'tunnel'): Promise<ConnectedTunnel> {
  const upstream = await startTestUpstream()
  const server = await startTestServer(serverOverrides)
  const tunnel = await server.createTunnel(name)
  const agent = await startTestAgent(tunnel.key, upstream.address)
  await agent.waitFor((s) => s.status === 'CONNECTED')
  const fixture: ConnectedTunnel = {
    server,
    upstream,
    agent,
    tunnel,
    async close() {
      await fixture.agent.close()
      await server.dispose()
      await upstream.close()
    },
  }
  return fixture
}
