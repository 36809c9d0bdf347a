import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { silentLogger } from '../observability/index.ts'
import { OrgRepository, TunnelPresenceRepository, TunnelRepository, openDatabase, type Database } from '../store/index.ts'
import { eventually } from '../testing/eventually.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { openSessionPair, type SessionPair } from '../testing/session-pair.ts'
import { AgentGateway } from './agent-gateway/agent-gateway.ts'
import { SessionRegistry } from './agent-gateway/session-registry.ts'
import { HostRouter } from './ingress/host-router.ts'
import { IngressServer } from './ingress/ingress-server.ts'
import { OncePerInterval } from './ingress/once-per-interval.ts'
import { serverClose, type Cleanup } from './server-drain.ts'
import { TunnelPresence } from './tunnel-presence.ts'

// The server's close over the real parts: a listening ingress, a gateway, agent sessions over
// loopback whose agent ends the tests script, the presence writer and an SQLite database.

checkNoLeakedHandles()

const TUNNEL = 'draintunnel'
const log = silentLogger()

interface Rig {
  database: Database
  registry: SessionRegistry
  ingress: IngressServer
  ingressPort: number
  /** what the database said, and how many sessions were left, when the first-made cleanup (the database's) ran */
  atDatabaseClose: { sessions: number; disconnectedAt: string | null; presenceRows: number } | undefined
  /** the cleanups' names, in the order they ran */
  ran: string[]
  close(drainTimeoutMs: number): () => Promise<void>
}

async function withRig(body: (rig: Rig) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'apptunnel-drain-'))
  const database = await openDatabase(join(dir, 'server.db'))
  const org = await new OrgRepository(database).create({ id: 'org-drain', name: 'drain' })
  await new TunnelRepository(database).create({ id: TUNNEL, orgId: org.id, name: 'drain', instanceUrl: null, secretHash: 'ab'.repeat(32), maxPerOrg: 10 })
  const registry = new SessionRegistry()
  const presence = new TunnelPresence({ registry, tunnels: new TunnelRepository(database), presence: new TunnelPresenceRepository(database), nodeId: () => 'replica-a', log })
  const gateway = new AgentGateway(
    { pingIntervalMs: 60_000, pingTimeoutMs: 60_000, drainTimeoutMs: 1000, maxStreamsPerSession: 10, sessionSetupTimeoutMs: 5000 },
    { registry, log, findTunnel: async () => undefined },
  )
  const ingress = new IngressServer({
    registry,
    router: new HostRouter('example.test'),
    describeTunnel: async () => undefined,
    log,
    limits: {},
    timeouts: { headTimeoutMs: 5000, idleTimeoutMs: 10_000, upgradedIdleTimeoutMs: 10_000, upstreamResponseTimeoutMs: 5000, bodyTimeoutMs: 5000, bodyMinBytesPerSecond: 1 },
    maxStreamsPerSession: 10,
    proto: 'http',
    unsolicitedWarnings: new OncePerInterval(60_000),
  })
  const { port: ingressPort } = await ingress.listen('127.0.0.1', 0)
  const rig: Rig = {
    database,
    registry,
    ingress,
    ingressPort,
    atDatabaseClose: undefined,
    ran: [],
    close(drainTimeoutMs) {
      const cleanups: Cleanup[] = [
        async () => {
          rig.ran.push('database')
          const tunnel = await new TunnelRepository(database).findById(TUNNEL)
          const rows = await database.db.selectFrom('tunnel_presence').select('node_id').where('tunnel_id', '=', TUNNEL).execute()
          rig.atDatabaseClose = { sessions: registry.size, disconnectedAt: tunnel?.lastDisconnectedAt ?? null, presenceRows: rows.length }
          await database.close()
        },
        () => void rig.ran.push('access log'),
        () => void rig.ran.push('https'),
      ]
      return serverClose({ ingress, gateway, registry, presence, cleanups }, { drainTimeoutMs, log })
    },
  }
  try {
    await body(rig)
  } finally {
    await ingress.close(0)
    gateway.close()
    registry.destroyAll()
    await presence.settled()
    if (rig.atDatabaseClose === undefined) await database.close()
    await rm(dir, { recursive: true, force: true })
  }
}

test('a request in flight when the server closes gets its answer: the ingress drains while the sessions are still live', async () => {
  await withRig(async (rig) => {
    const pair: SessionPair = await openSessionPair({ tunnelId: TUNNEL, drainTimeoutMs: 60_000 })
    const caller = connect(rig.ingressPort, '127.0.0.1')
    try {
      rig.registry.add(pair.session)
      await once(caller, 'connect')
      let got = ''
      caller.on('data', (chunk: Buffer) => (got += chunk.toString('latin1')))
      const events: string[] = []
      pair.agent.mux.on('goaway', () => events.push('goaway'))
      caller.write(`GET / HTTP/1.1\r\nHost: ${TUNNEL}.example.test\r\n\r\n`)
      const stream = await pair.agent.stream(0)

      const close = rig.close(5000)
      const closed = close()
      await eventually(() => !rig.ingress.listening, 'the ingress stops accepting')
      assert.equal(pair.session.isLive, true, 'sessions stay live while the ingress drains')
      stream.accept()
      stream.send('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      await eventually(() => got.endsWith('ok'), 'the caller gets its answer')
      events.push('answered')
      await closed
      assert.equal(close(), closed, 'close is idempotent')
      await close()

      assert.match(got, /^HTTP\/1\.1 200 OK\r\n/)
      assert.deepEqual(events, ['answered', 'goaway'], 'the session got GOAWAY only after the caller had its answer')
      assert.equal(pair.session.closed, true)
      assert.deepEqual(rig.ran, ['https', 'access log', 'database'], 'cleanups run newest first, each once')
      assert.deepEqual(rig.atDatabaseClose, { sessions: 0, disconnectedAt: rig.atDatabaseClose?.disconnectedAt, presenceRows: 0 })
      assert.notEqual(rig.atDatabaseClose?.disconnectedAt ?? null, null, "the tunnel's disconnection was written before the database closed")
    } finally {
      caller.destroy()
      await pair.close()
    }
  })
})

test('a session whose relays do not finish is cut once drainTimeoutMs has passed, and its presence written before the database closes', async () => {
  await withRig(async (rig) => {
    const pair = await openSessionPair({ tunnelId: TUNNEL, drainTimeoutMs: 60_000 })
    try {
      rig.registry.add(pair.session)
      // A relay the agent end never finishes, with no caller connection at the ingress.
      pair.session.openRelay('127.0.0.1', { data() {}, end() {}, lost() {}, writable() {} })
      await pair.agent.stream(0)
      await eventually(async () => (await rig.database.db.selectFrom('tunnel_presence').select('node_id').execute()).length === 1, 'the presence row is written')

      const startedAt = Date.now()
      await rig.close(300)()
      const tookMs = Date.now() - startedAt
      assert.ok(tookMs >= 280, `waited for the drain bound (${tookMs} ms)`)
      assert.ok(tookMs < 5000, `did not wait for the session's own 60 s drain (${tookMs} ms)`)
      assert.equal(pair.session.closed, true, 'the session was cut')
      assert.deepEqual(rig.ran, ['https', 'access log', 'database'])
      assert.equal(rig.atDatabaseClose?.sessions, 0)
      assert.equal(rig.atDatabaseClose?.presenceRows, 0, "this replica's presence row was removed before the database closed")
      assert.notEqual(rig.atDatabaseClose?.disconnectedAt ?? null, null)
    } finally {
      await pair.close()
    }
  })
})
