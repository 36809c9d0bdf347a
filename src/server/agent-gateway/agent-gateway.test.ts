import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, request, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { test } from 'node:test'
import { silentLogger } from '../../observability/index.ts'
import {
  AGENT_CONNECT_PATH,
  AGENT_UPGRADE_TOKEN,
  agentHeaders,
  formatAgentAuthorization,
  hashSecret,
  parseWelcomeHeaders,
  type ControlMessage,
  type SessionWelcome,
} from '../../protocol/index.ts'
import { eventually } from '../../testing/eventually.ts'
import { checkNoLeakedHandles } from '../../testing/leak-check.ts'
import { SessionMux } from '../../transport/session-mux/index.ts'
import { AgentGateway, type AgentGatewayOptions, type GatewayTunnel } from './agent-gateway.ts'
import { SessionRegistry } from './session-registry.ts'

// The gateway alone, behind a plain HTTP listener (TLS is the listener's business, not the
// gateway's): the agent's upgrade is authenticated, answered 101 with the welcome, and becomes a
// registered session; every refusal has its code.

checkNoLeakedHandles()

const SECRET = randomBytes(32)
const TUNNEL: GatewayTunnel = { id: 'tunnelone', name: 'shop', orgName: 'acme', secretHash: hashSecret(SECRET), applicationLinkUrl: 'http://tunnelone.example.test/' }

interface Rig {
  gateway: AgentGateway
  registry: SessionRegistry
  /** the tunnels "in the database" */
  tunnels: Map<string, GatewayTunnel>
  connect(options?: { tunnelId?: string; secret?: Buffer; upgrade?: string; authorization?: string; nodeId?: string }): Promise<Connected | Refused>
}

interface Connected {
  status: 101
  welcome: SessionWelcome
  agent: SessionMux
  controls: ControlMessage[]
}

interface Refused {
  status: number
  code: string
}

async function withGateway(options: Partial<AgentGatewayOptions>, body: (rig: Rig) => Promise<void>, replicas?: () => { self: string; replicas: Array<{ id: string; url: string }> }): Promise<void> {
  const registry = new SessionRegistry()
  const tunnels = new Map([[TUNNEL.id, TUNNEL]])
  const gateway = new AgentGateway(
    { pingIntervalMs: 60_000, pingTimeoutMs: 60_000, drainTimeoutMs: 1000, maxStreamsPerSession: 10, sessionSetupTimeoutMs: 5000, ...options },
    { registry, log: silentLogger(), findTunnel: async (id) => tunnels.get(id), ...(replicas === undefined ? {} : { replicas }) },
  )
  gateway.knowTunnels(tunnels.keys())
  const server: Server = createServer((_req, res) => res.writeHead(404).end())
  server.on('upgrade', (req, socket, head) => {
    if (AgentGateway.matches(req)) gateway.handleUpgrade(req, socket, head)
    else socket.destroy()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  const agents: SessionMux[] = []
  const connect: Rig['connect'] = (o = {}) =>
    new Promise((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        path: AGENT_CONNECT_PATH,
        agent: false,
        headers: {
          Connection: 'Upgrade',
          Upgrade: o.upgrade ?? AGENT_UPGRADE_TOKEN,
          Authorization: o.authorization ?? formatAgentAuthorization(o.tunnelId ?? TUNNEL.id, o.secret ?? SECRET),
          [agentHeaders.nodeId]: o.nodeId ?? 'node-a',
        },
      })
      req.on('upgrade', (res, socket: Socket, head: Buffer) => {
        const agent = new SessionMux(socket, { role: 'agent', streamWindowBytes: 65536, maxStreams: 10, pingIntervalMs: 60_000, pingTimeoutMs: 60_000, pingTimeoutMessage: 'no ping answer' })
        agents.push(agent)
        const controls: ControlMessage[] = []
        agent.on('control', (m: ControlMessage) => controls.push(m))
        if (head.length > 0) socket.unshift(head)
        resolve({ status: 101, welcome: parseWelcomeHeaders(res.headers), agent, controls })
      })
      req.on('response', (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body) as { error: { code: string } }).error.code }))
      })
      req.on('error', reject)
      req.end()
    })
  try {
    await body({ gateway, registry, tunnels, connect })
  } finally {
    gateway.close()
    registry.destroyAll()
    for (const a of agents) a.destroy()
    server.closeAllConnections()
    server.close()
  }
}

test('a valid key is answered 101 with the welcome; the session is registered and the agent told it is ready', async () => {
  await withGateway({}, async ({ registry, connect }) => {
    const r = await connect({ nodeId: 'node-7' })
    assert.equal(r.status, 101)
    const { welcome, controls } = r as Connected
    assert.equal(welcome.tunnelName, 'shop')
    assert.equal(welcome.orgName, 'acme')
    assert.equal(welcome.pingIntervalMs, 60_000)
    assert.equal(welcome.applicationLinkUrl, TUNNEL.applicationLinkUrl)
    await eventually(() => controls.some((m) => m.t === 'ready'), 'the agent hears ready')
    const [session] = registry.sessionsOf(TUNNEL.id)
    assert.equal(session?.info.sessionId, welcome.sessionId)
    assert.equal(session?.info.nodeId, 'node-7')
  })
})

test('with replicas, a new session is told which replicas it may dial', async () => {
  const replicas = [{ id: 'r1', url: 'https://r1.example.test' }, { id: 'r2', url: 'https://r2.example.test' }]
  await withGateway(
    {},
    async ({ connect }) => {
      const { controls } = (await connect()) as Connected
      await eventually(() => controls.some((m) => m.t === 'replicas'), 'the replica list arrives')
      assert.deepEqual(controls.find((m) => m.t === 'replicas'), { t: 'replicas', self: 'r1', replicas })
    },
    () => ({ self: 'r1', replicas }),
  )
})

test('each refusal has its status and code: wrong secret, unknown tunnel, malformed credential, other protocol version', async () => {
  await withGateway({}, async ({ registry, connect }) => {
    assert.deepEqual(await connect({ secret: randomBytes(32) }), { status: 401, code: 'TUN_ERR_KEY_REJECTED' })
    assert.deepEqual(await connect({ tunnelId: 'tunneltwo' }), { status: 404, code: 'TUN_ERR_TUNNEL_NOT_FOUND' })
    assert.deepEqual(await connect({ authorization: 'Basic dXNlcjpwYXNz' }), { status: 400, code: 'TUN_ERR_HANDSHAKE_BAD_REQUEST' })
    assert.deepEqual(await connect({ upgrade: 'apptunnel/1' }), { status: 426, code: 'TUN_ERR_HANDSHAKE_VERSION' })
    assert.equal(registry.size, 0)
  })
})

test('a source over its failure limit is told only that, yet the real key of a known tunnel still connects', async () => {
  await withGateway({ authFailures: { maxFailures: 2, windowMs: 60_000 } }, async ({ connect }) => {
    // Guessing ids: the real tunnel's record is never read, so it is not cached either.
    assert.equal((await connect({ tunnelId: 'tunnelthree' })).status, 404)
    assert.equal((await connect({ tunnelId: 'tunnelfour' })).status, 404)
    assert.deepEqual(await connect({ tunnelId: 'tunnelfive' }), { status: 429, code: 'TUN_ERR_HANDSHAKE_RATE_LIMITED' }, 'an unknown id costs no lookup')
    assert.deepEqual(await connect({ secret: randomBytes(32) }), { status: 429, code: 'TUN_ERR_HANDSHAKE_RATE_LIMITED' }, 'not told why it failed')
    assert.equal((await connect()).status, 101, 'a tunnel this replica knows is looked up, and its key verifies')
  })
})

test('a tunnel at its session limit refuses another session with TUN_ERR_SESSION_LIMIT', async () => {
  await withGateway({ maxSessionsPerTunnel: 1 }, async ({ registry, connect }) => {
    assert.equal((await connect()).status, 101)
    await eventually(() => registry.size === 1, 'registered')
    assert.deepEqual(await connect(), { status: 429, code: 'TUN_ERR_SESSION_LIMIT' })
  })
})

test('a tunnel deleted elsewhere: tunnelChanged() drops its cached record, and its key is refused at once', async () => {
  await withGateway({}, async ({ gateway, tunnels, connect }) => {
    assert.equal((await connect()).status, 101, 'the record is cached now')
    tunnels.delete(TUNNEL.id)
    gateway.tunnelChanged(TUNNEL.id, 'deleted')
    assert.deepEqual(await connect(), { status: 404, code: 'TUN_ERR_TUNNEL_NOT_FOUND' })
  })
})

test('after close() new agents are refused with TUN_ERR_SERVER_UNAVAILABLE (503), which they retry', async () => {
  await withGateway({}, async ({ gateway, connect }) => {
    gateway.close()
    assert.deepEqual(await connect(), { status: 503, code: 'TUN_ERR_SERVER_UNAVAILABLE' })
  })
})
