import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startClusterNode, type ClusterNode, type ClusterNodeOptions } from '../cluster/index.ts'
import { silentLogger } from '../observability/index.ts'
import { ApiTokenRepository, AuditRepository, LinkedProductRepository, TunnelPresenceRepository, openDatabase, type Database } from '../store/index.ts'
import { eventually } from '../testing/eventually.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { openSessionPair, type SessionPair } from '../testing/session-pair.ts'
import { ApiTokenService } from './admin-api/api-token-service.ts'
import { AgentGateway } from './agent-gateway/agent-gateway.ts'
import { SessionRegistry } from './agent-gateway/session-registry.ts'
import { startClusterSync } from './cluster-sync.ts'
import { AccessPolicies } from './ingress/access-policies.ts'
import { IngressServer } from './ingress/ingress-server.ts'
import { HostRouter } from './ingress/host-router.ts'
import { OncePerInterval } from './ingress/once-per-interval.ts'
import { testClusterNodeOptions } from '../testing/cluster-options.ts'

// One replica's cluster sync, fed by a second cluster node standing for another replica: both on
// loopback over one SQLite file, with real sessions whose agent ends hear what the replica does.

checkNoLeakedHandles()

const nodeOptions = (nodeId: string): ClusterNodeOptions => testClusterNodeOptions(nodeId)

describe('cluster sync of a server replica', () => {
  let dir: string
  let database: Database
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apptunnel-cluster-sync-'))
    database = await openDatabase(join(dir, 'cluster.db'))
  })
  after(async () => {
    await database.close()
    await rm(dir, { recursive: true, force: true })
  })

  async function withReplicas(body: (rig: { here: ClusterNode; other: ClusterNode; registry: SessionRegistry; pairs: SessionPair[] }) => Promise<void>): Promise<void> {
    const log = silentLogger()
    const presence = new TunnelPresenceRepository(database)
    // What a crash of "here" left behind.
    await presence.add('leftbehind', 'replica-here', new Date().toISOString())
    const here = await startClusterNode(nodeOptions('replica-here'), { database, log })
    const other = await startClusterNode(nodeOptions('replica-other'), { database, log })
    const registry = new SessionRegistry()
    const access = new AccessPolicies(new LinkedProductRepository(database), { refreshMs: 60_000, log })
    await access.start()
    const sync = await startClusterSync({
      node: here,
      registry,
      gateway: new AgentGateway({ pingIntervalMs: 60_000, pingTimeoutMs: 60_000, drainTimeoutMs: 1000, maxStreamsPerSession: 10, sessionSetupTimeoutMs: 1000 }, { registry, log, findTunnel: async () => undefined }),
      apiTokens: new ApiTokenService({ tokens: new ApiTokenRepository(database), audit: new AuditRepository(database), log }, { auditOrgId: 'org' }),
      access,
      ingress: new IngressServer({
        registry,
        router: new HostRouter('example.test'),
        describeTunnel: async () => undefined,
        log,
        limits: {},
        timeouts: { headTimeoutMs: 1000, idleTimeoutMs: 1000, upgradedIdleTimeoutMs: 1000, upstreamResponseTimeoutMs: 1000, bodyTimeoutMs: 1000, bodyMinBytesPerSecond: 1 },
        maxStreamsPerSession: 10,
        proto: 'http',
        unsolicitedWarnings: new OncePerInterval(60_000),
      }),
      presence,
      log,
      forwardHeadTimeoutMs: 1000,
    })
    const pairs: SessionPair[] = []
    try {
      await eventually(() => here.status().links.some((l) => l.peerId === 'replica-other'), 'the replicas are linked')
      await body({ here, other, registry, pairs })
    } finally {
      await Promise.all(pairs.map((p) => p.close()))
      await sync.close()
      access.close()
      await other.close()
      await here.close()
    }
    assert.deepEqual(await database.db.selectFrom('tunnel_presence').selectAll().where('node_id', '=', 'replica-here').execute(), [], 'cleared on the way out')
  }

  test("what a crash left in this replica's presence rows is cleared at start, and what it held at stop", async () => {
    await withReplicas(async () => {
      const rows = await database.db.selectFrom('tunnel_presence').select('tunnel_id').where('node_id', '=', 'replica-here').execute()
      assert.deepEqual(rows, [])
      // A tunnel held here at the end: its row goes when the replica stops (checked by withReplicas).
      await new TunnelPresenceRepository(database).add('held', 'replica-here', new Date().toISOString())
    })
  })

  test("a tunnel deleted on another replica ends its sessions here, telling each agent why; other tunnels' stay", async () => {
    await withReplicas(async ({ other, registry, pairs }) => {
      pairs.push(await openSessionPair({ tunnelId: 'gone' }), await openSessionPair({ tunnelId: 'kept' }))
      for (const p of pairs) registry.add(p.session)
      other.publish('tunnel.changed', { tunnelId: 'gone', change: 'deleted' })
      await eventually(() => registry.sessionsOf('gone').length === 0, 'the deleted tunnel loses its sessions here')
      await eventually(() => pairs[0]!.agent.controls.some((m) => m.t === 'revoke'), 'its agent is told')
      assert.deepEqual(pairs[0]!.agent.controls.find((m) => m.t === 'revoke'), { t: 'revoke', code: 'TUN_ERR_TUNNEL_NOT_FOUND', reason: 'tunnel deleted' })
      assert.equal(registry.sessionsOf('kept').length, 1)
      other.publish('tunnel.changed', { tunnelId: 'kept', change: 'created' })
      await new Promise((r) => setTimeout(r, 200))
      assert.equal(registry.sessionsOf('kept').length, 1, 'a created tunnel ends nothing')
    })
  })

  test('when the list of replicas changes, every agent connected here is told the new list', async () => {
    await withReplicas(async ({ other, registry, pairs }) => {
      pairs.push(await openSessionPair({ tunnelId: 'atunnel' }))
      registry.add(pairs[0]!.session)
      other.setAgentEndpoint({ url: 'https://other.example.test' })
      await other.refreshMembership()
      await eventually(() => pairs[0]!.agent.controls.some((m) => m.t === 'replicas'), 'the agent hears the replicas', 5000)
      const heard = pairs[0]!.agent.controls.find((m) => m.t === 'replicas')
      assert.ok(heard !== undefined && heard.t === 'replicas')
      assert.equal(heard.self, 'replica-here')
      assert.ok(heard.replicas.some((r) => r.id === 'replica-other' && r.url === 'https://other.example.test'))
    })
  })
})
