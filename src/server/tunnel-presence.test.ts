import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { silentLogger } from '../observability/index.ts'
import { OrgRepository, TunnelPresenceRepository, TunnelRepository, type Database } from '../store/index.ts'
import { checkNoLeakedHandles } from '../testing/leak-check.ts'
import { openSessionPair, type SessionPair } from '../testing/session-pair.ts'
import { databaseTargets } from '../testing/test-databases.ts'
import { SessionRegistry } from './agent-gateway/session-registry.ts'
import { TunnelPresence } from './tunnel-presence.ts'

checkNoLeakedHandles()

for (const target of await databaseTargets()) {
  describe(`tunnel presence (${target.name})`, { skip: target.skip }, () => {
    let database: Database
    let tunnelId: string
    before(async () => {
      database = await target.open()
      const org = await new OrgRepository(database).create({ id: 'org-presence', name: 'presence' })
      const tunnel = await new TunnelRepository(database).create({ id: 'presencetunnel', orgId: org.id, name: 'presence', instanceUrl: null, secretHash: 'ab'.repeat(32), maxPerOrg: 10 })
      tunnelId = tunnel.id
    })
    after(async () => {
      await database.close()
      await target.dispose()
    })

    const rows = async (): Promise<string[]> =>
      (await database.db.selectFrom('tunnel_presence').select(['tunnel_id', 'node_id']).where('tunnel_id', '=', tunnelId).execute()).map((r) => `${r.tunnel_id}@${r.node_id}`)

    function rig(nodeId: string | undefined): { registry: SessionRegistry; presence: TunnelPresence } {
      const registry = new SessionRegistry()
      const presence = new TunnelPresence({ registry, tunnels: new TunnelRepository(database), presence: new TunnelPresenceRepository(database), nodeId: () => nodeId, log: silentLogger() })
      return { registry, presence }
    }

    test("a tunnel's first session marks it connected and adds this replica's row; its last one marks it disconnected and removes the row", async () => {
      const { registry, presence } = rig('replica-a')
      const pairs: SessionPair[] = []
      try {
        for (let i = 0; i < 2; i++) pairs.push(await openSessionPair({ tunnelId }))
        registry.add(pairs[0]!.session)
        registry.add(pairs[1]!.session)
        await presence.settled()
        const up = await new TunnelRepository(database).findById(tunnelId)
        assert.notEqual(up?.lastConnectedAt ?? null, null)
        assert.deepEqual(await rows(), [`${tunnelId}@replica-a`])
        pairs[0]!.session.destroy()
        await presence.settled()
        assert.deepEqual(await rows(), [`${tunnelId}@replica-a`], 'one session left')
        pairs[1]!.session.destroy()
        await presence.settled()
        assert.deepEqual(await rows(), [])
        const down = await new TunnelRepository(database).findById(tunnelId)
        assert.notEqual(down?.lastDisconnectedAt ?? null, null)
      } finally {
        await Promise.all(pairs.map((p) => p.close()))
      }
    })

    test('a quick down-and-up ends with the row present: each write writes what is true when it runs', async () => {
      const { registry, presence } = rig('replica-b')
      const pairs: SessionPair[] = []
      try {
        for (let i = 0; i < 6; i++) pairs.push(await openSessionPair({ tunnelId }))
        // Up, down, up, down, up, down, up — without waiting for any write.
        for (let i = 0; i < 3; i++) {
          registry.add(pairs[i]!.session)
          pairs[i]!.session.destroy()
        }
        registry.add(pairs[5]!.session)
        await presence.settled()
        assert.deepEqual((await rows()).filter((r) => r.endsWith('@replica-b')), [`${tunnelId}@replica-b`])
      } finally {
        await Promise.all(pairs.map((p) => p.close()))
        await presence.settled()
      }
    })

    test('a lone server (no cluster node) marks the tunnel connected but keeps no presence rows', async () => {
      const { registry, presence } = rig(undefined)
      const pair = await openSessionPair({ tunnelId })
      try {
        await database.db.deleteFrom('tunnel_presence').execute()
        await database.db.updateTable('tunnel').set({ last_connected_at: null }).execute()
        registry.add(pair.session)
        await presence.settled()
        assert.notEqual((await new TunnelRepository(database).findById(tunnelId))?.lastConnectedAt ?? null, null)
        assert.deepEqual(await rows(), [])
      } finally {
        await pair.close()
        await presence.settled()
      }
    })
  })
}
