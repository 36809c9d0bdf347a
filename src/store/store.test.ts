import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import BetterSqlite3 from 'better-sqlite3'
import { isTunnelError } from '../errors/index.ts'
import { databaseTargets } from '../testing/test-databases.ts'
import {
  ApiTokenRepository,
  AuditRepository,
  ClusterNodeRepository,
  OrgRepository,
  TunnelPresenceRepository,
  TunnelRepository,
  openDatabase,
  type Database,
  type MigrationStep,
  type NewTunnel,
} from './index.ts'
import { migrationProvider } from './migrations/index.ts'

const targets = await databaseTargets()

function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function rejectsWithCode(code: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isTunnelError(err), `expected a TunnelError, got ${String(err)}`)
    assert.equal(err.code, code)
    return true
  }
}

for (const target of targets) {
  describe(`store on ${target.name}`, { skip: target.skip }, () => {
    let database: Database
    let orgs: OrgRepository
    let tokens: ApiTokenRepository
    let tunnels: TunnelRepository
    let audit: AuditRepository

    before(async () => {
      database = await target.open()
      orgs = new OrgRepository(database)
      tokens = new ApiTokenRepository(database)
      tunnels = new TunnelRepository(database)
      audit = new AuditRepository(database)
    })

    after(async () => {
      await database?.close()
      await target.dispose()
    })

    async function newOrg(): Promise<string> {
      const org = await orgs.create({ id: uniqueId('org'), name: 'Acme' })
      return org.id
    }

    function tunnelInput(orgId: string, name: string, maxPerOrg = 100): NewTunnel {
      return { id: uniqueId('t'), orgId, name, instanceUrl: 'https://example.test', secretHash: sha256(name), maxPerOrg }
    }

    // Runs first, while the database is still empty.
    test('migrations apply, re-opening is idempotent, first() follows creation order', async () => {
      assert.equal(database.dialect, target.name)
      assert.equal(await orgs.first(), undefined)

      const a = await orgs.create({ id: 'org-b-first', name: 'First' })
      await new Promise((r) => setTimeout(r, 5))
      await orgs.create({ id: 'org-a-second', name: 'Second' })

      const again = await target.open()
      try {
        assert.deepEqual(await new OrgRepository(again).first(), a)
      } finally {
        await again.close()
        await again.close()
      }
      assert.deepEqual(await orgs.get(a.id), a)
      assert.equal(await orgs.get('missing'), undefined)
    })

    test('api tokens are found by hash and touched', async () => {
      const orgId = await newOrg()
      const hash = sha256(uniqueId('secret'))
      const created = await tokens.create({ id: uniqueId('tok'), orgId, name: 'ci', tokenHash: hash })
      assert.equal(created.lastUsedAt, null)
      assert.deepEqual(await tokens.findByHash(hash), { id: created.id, orgId, name: 'ci' })
      assert.equal(await tokens.findByHash(sha256('nope')), undefined)
      await tokens.touch(created.id, '2030-01-01T00:00:00.000Z')
      await assert.rejects(
        tokens.create({ id: uniqueId('tok'), orgId, name: 'dup', tokenHash: hash }),
        'token_hash is unique',
      )
    })

    test('api tokens are listed per organization and deleted only within it', async () => {
      const orgId = await newOrg()
      const otherOrg = await newOrg()
      const a = await tokens.create({ id: uniqueId('tok'), orgId, name: 'a', tokenHash: sha256(uniqueId('s')) })
      const b = await tokens.create({ id: uniqueId('tok'), orgId, name: 'b', tokenHash: sha256(uniqueId('s')) })
      const foreign = await tokens.create({ id: uniqueId('tok'), orgId: otherOrg, name: 'x', tokenHash: sha256(uniqueId('s')) })
      await tokens.touch(b.id, '2030-01-01T00:00:00.000Z')
      const listed = await tokens.list(orgId)
      assert.deepEqual(listed.map((t) => t.name).sort(), ['a', 'b'])
      assert.equal(listed.find((t) => t.id === b.id)?.lastUsedAt, '2030-01-01T00:00:00.000Z')
      assert.equal(await tokens.delete(orgId, foreign.id), false, 'another organization\'s token is not deleted')
      assert.equal(await tokens.delete(orgId, a.id), true)
      assert.equal(await tokens.delete(orgId, a.id), false)
      assert.deepEqual((await tokens.list(orgId)).map((t) => t.id), [b.id])
      assert.equal((await tokens.list(otherOrg)).length, 1)
      const hashes = await tokens.listHashes()
      assert.ok(hashes.some((t) => t.id === b.id) && hashes.some((t) => t.id === foreign.id), 'every organization\'s hashes')
      assert.ok(!hashes.some((t) => t.id === a.id), 'not a deleted one')
      assert.match(hashes.find((t) => t.id === b.id)!.tokenHash, /^[0-9a-f]{64}$/)
    })

    test('tunnels: create, list, get, findById, count, delete', async () => {
      const orgId = await newOrg()
      const otherOrg = await newOrg()
      const first = await tunnels.create(tunnelInput(orgId, 'alpha'))
      const second = await tunnels.create({ ...tunnelInput(orgId, 'beta'), instanceUrl: null })
      await tunnels.create(tunnelInput(otherOrg, 'alpha'))

      assert.equal(first.orgId, orgId)
      assert.equal(first.firstConnectedAt, null)
      assert.equal(second.instanceUrl, null)
      assert.match(first.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

      const listed = await tunnels.list(orgId)
      const expected = [first, second].sort((x, y) => x.createdAt.localeCompare(y.createdAt) || x.id.localeCompare(y.id))
      assert.deepEqual(listed, expected)
      assert.deepEqual(await tunnels.get(orgId, first.id), first)
      assert.equal(await tunnels.get(otherOrg, first.id), undefined, 'get is scoped to the organization')
      assert.deepEqual(await tunnels.findById(first.id), first)
      assert.equal(await tunnels.countByOrg(orgId), 2)
      const ids = await tunnels.listIds()
      assert.ok(ids.includes(first.id) && ids.includes(second.id), 'listIds')
      assert.equal(ids.length, new Set(ids).size)

      assert.equal(await tunnels.delete(otherOrg, first.id), false)
      assert.equal(await tunnels.delete(orgId, first.id), true)
      assert.equal(await tunnels.delete(orgId, first.id), false)
      assert.equal(await tunnels.findById(first.id), undefined)
      assert.equal(await tunnels.countByOrg(orgId), 1)
      assert.ok(!(await tunnels.listIds()).includes(first.id))
    })

    test('a taken name is refused with TUN_ERR_TUNNEL_NAME_TAKEN', async () => {
      const orgId = await newOrg()
      await tunnels.create(tunnelInput(orgId, 'web'))
      await assert.rejects(tunnels.create(tunnelInput(orgId, 'web')), rejectsWithCode('TUN_ERR_TUNNEL_NAME_TAKEN'))
      assert.equal(await tunnels.countByOrg(orgId), 1)
    })

    test('the 101st tunnel is refused with TUN_ERR_TUNNEL_LIMIT_REACHED', async () => {
      const orgId = await newOrg()
      for (let i = 0; i < 100; i++) await tunnels.create(tunnelInput(orgId, `n${i}`))
      await assert.rejects(tunnels.create(tunnelInput(orgId, 'n100')), (err) => {
        rejectsWithCode('TUN_ERR_TUNNEL_LIMIT_REACHED')(err)
        assert.match((err as Error).message, /already has 100 tunnels \(the limit\); delete one/)
        return true
      })
      assert.equal(await tunnels.countByOrg(orgId), 100)
    })

    test('concurrent creates never exceed the limit', async () => {
      const orgId = await newOrg()
      const results = await Promise.allSettled(
        Array.from({ length: 25 }, (_, i) => tunnels.create(tunnelInput(orgId, `c${i}`, 10))),
      )
      const failures = results.filter((r) => r.status === 'rejected')
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 10)
      assert.equal(failures.length, 15)
      for (const f of failures) rejectsWithCode('TUN_ERR_TUNNEL_LIMIT_REACHED')(f.reason)
      assert.equal(await tunnels.countByOrg(orgId), 10)
    })

    test('concurrent creates of one name: exactly one wins', async () => {
      const orgId = await newOrg()
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => tunnels.create(tunnelInput(orgId, 'same'))))
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
      for (const r of results) if (r.status === 'rejected') rejectsWithCode('TUN_ERR_TUNNEL_NAME_TAKEN')(r.reason)
    })

    test('markConnected keeps the first connection time', async () => {
      const orgId = await newOrg()
      const t = await tunnels.create(tunnelInput(orgId, 'conn'))
      await tunnels.markConnected(t.id, '2030-01-01T00:00:00.000Z')
      await tunnels.markDisconnected(t.id, '2030-01-01T01:00:00.000Z')
      await tunnels.markConnected(t.id, '2030-01-02T00:00:00.000Z')
      const after = await tunnels.findById(t.id)
      assert.equal(after?.firstConnectedAt, '2030-01-01T00:00:00.000Z')
      assert.equal(after?.lastConnectedAt, '2030-01-02T00:00:00.000Z')
      assert.equal(after?.lastDisconnectedAt, '2030-01-01T01:00:00.000Z')
    })

    test('deleting an organization cascades to its tokens and tunnels, not its audit trail', async () => {
      const orgId = await newOrg()
      const hash = sha256(uniqueId('secret'))
      await tokens.create({ id: uniqueId('tok'), orgId, name: 'x', tokenHash: hash })
      const t = await tunnels.create(tunnelInput(orgId, 'gone'))
      await audit.record({ orgId, actor: 'admin', action: 'org.delete' })

      assert.equal(await orgs.delete(orgId), true)
      assert.equal(await orgs.get(orgId), undefined)
      assert.equal(await tokens.findByHash(hash), undefined)
      assert.equal(await tunnels.findById(t.id), undefined)
      assert.equal((await audit.list(orgId)).length, 1)
    })

    test('replicas: a node row carries its agent endpoint, set at register and moved by a heartbeat', async () => {
      const nodes = new ClusterNodeRepository(database)
      const id = uniqueId('replica')
      const at = new Date().toISOString()
      await nodes.register({ id, kind: 'server', address: '10.0.0.1:7946', startedAt: at, heartbeatAt: at })
      assert.equal((await nodes.get(id))!.agentEndpoint, null, 'none until the listener is up')
      const pin = Buffer.alloc(32, 1).toString('base64url')
      assert.equal(await nodes.heartbeat(id, at, { ok: true }, { url: 'https://r1.example', pin }), true)
      assert.deepEqual((await nodes.get(id))!.agentEndpoint, { url: 'https://r1.example', pin })
      await nodes.heartbeat(id, at, { ok: true })
      assert.deepEqual((await nodes.get(id))!.agentEndpoint, { url: 'https://r1.example', pin }, 'a heartbeat without one keeps it')
      await nodes.heartbeat(id, at, { ok: true }, { url: 'https://r1b.example' })
      assert.deepEqual((await nodes.get(id))!.agentEndpoint, { url: 'https://r1b.example' }, 'a CA-signed replica has no pin')
      await nodes.register({ id, kind: 'server', address: '10.0.0.1:7946', startedAt: at, heartbeatAt: at, agentEndpoint: null })
      assert.equal((await nodes.get(id))!.agentEndpoint, null)
      await nodes.remove(id)
    })

    test('tunnel presence: live replicas per tunnel, without this one, dead replicas ignored, a restart clears its rows', async () => {
      const nodes = new ClusterNodeRepository(database)
      const presence = new TunnelPresenceRepository(database)
      const now = Date.now()
      const iso = (ms: number): string => new Date(now + ms).toISOString()
      const [me, live, dead, agentNode] = ['me', 'live', 'dead', 'agent'].map((n) => uniqueId(n))
      await nodes.register({ id: me!, kind: 'server', address: 'a:1', startedAt: iso(0), heartbeatAt: iso(0) })
      await nodes.register({ id: live!, kind: 'server', address: 'b:1', startedAt: iso(0), heartbeatAt: iso(0) })
      await nodes.register({ id: dead!, kind: 'server', address: 'c:1', startedAt: iso(-60_000), heartbeatAt: iso(-60_000) })
      await nodes.register({ id: agentNode!, kind: 'agent', address: 'd:1', startedAt: iso(0), heartbeatAt: iso(0) })
      const [t1, t2, t3] = [uniqueId('t'), uniqueId('t'), uniqueId('t')]
      for (const [t, n] of [[t1, me], [t1, live], [t2, dead], [t2, live], [t3, agentNode], [t3, me]] as const) await presence.add(t!, n!, iso(0))
      await presence.add(t1!, live!, iso(10)) // a second add of the same pair is no error
      const since = iso(-15_000)
      const all = await presence.liveReplicas({ exceptNodeId: me!, liveSinceIso: since })
      assert.deepEqual(all.get(t1!), [live])
      assert.deepEqual(all.get(t2!), [live], 'the dead replica does not count')
      assert.equal(all.has(t3!), false, 'agent nodes and this replica do not count')
      assert.deepEqual([...(await presence.liveReplicas({ tunnelIds: [t2!], exceptNodeId: me!, liveSinceIso: since })).keys()], [t2])
      assert.equal((await presence.liveReplicas({ tunnelIds: [], exceptNodeId: me!, liveSinceIso: since })).size, 0)
      await presence.remove(t1!, live!)
      assert.equal((await presence.liveReplicas({ tunnelIds: [t1!], exceptNodeId: me!, liveSinceIso: since })).has(t1!), false)
      await presence.clearNode(live!)
      assert.equal((await presence.liveReplicas({ tunnelIds: [t2!], exceptNodeId: me!, liveSinceIso: since })).has(t2!), false)
      for (const n of [me, live, dead, agentNode]) await nodes.remove(n!)
      await presence.clearNode(me!)
    })

    test('audit events are recorded and listed newest first', async () => {
      const orgId = await newOrg()
      const first = await audit.record({
        orgId,
        actor: 'token:tok-1',
        action: 'tunnel.create',
        target: 'tunnel:abc',
        sourceAddress: '192.0.2.1',
        details: { name: 'web', limit: 10 },
      })
      assert.equal(typeof first.id, 'number')
      assert.deepEqual(first.details, { name: 'web', limit: 10 })
      await audit.record({ orgId, actor: 'token:tok-1', action: 'tunnel.delete' })
      await audit.record({ orgId, actor: 'token:tok-1', action: 'token.create' })
      await audit.record({ orgId: await newOrg(), actor: 'someone-else', action: 'tunnel.create' })

      const listed = await audit.list(orgId, { limit: 2 })
      assert.deepEqual(
        listed.map((e) => e.action),
        ['token.create', 'tunnel.delete'],
      )
      assert.equal(listed[0]?.target, null)
      assert.equal(listed[0]?.details, null)
      const all = await audit.list(orgId)
      assert.deepEqual(all.at(-1), first)
    })
  })
}

for (const fresh of await databaseTargets()) {
  describe(`migrations of a fresh ${fresh.name} database`, { skip: fresh.skip }, () => {
    after(() => fresh.dispose())

    test('each migration is announced as it starts, numbered among those pending; a current schema announces none', async () => {
      const names = Object.keys(await migrationProvider(fresh.name).getMigrations()).sort()
      const steps: MigrationStep[] = []
      const first = await openDatabase(await fresh.url(), { onMigration: (s) => steps.push(s) })
      try {
        assert.deepEqual(first.migrated, names)
        assert.deepEqual(steps, names.map((name, i) => ({ name, index: i + 1, total: names.length })))
      } finally {
        await first.close()
      }
      steps.length = 0
      const again = await openDatabase(await fresh.url(), { onMigration: (s) => steps.push(s) })
      try {
        assert.deepEqual(again.migrated, [])
        assert.deepEqual(steps, [])
      } finally {
        await again.close()
      }
    })
  })
}

describe('openDatabase', () => {
  test('SQLite: creates parent directories and accepts :memory:', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-open-'))
    try {
      const nested = await openDatabase(join(dir, 'a', 'b', 'store.sqlite'))
      await nested.close()
      await nested.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    const memory = await openDatabase(':memory:')
    await memory.close()
  })

  test('a failing migration is TUN_ERR_STORE_MIGRATION_FAILED with its cause', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apptunnel-open-'))
    try {
      const path = join(dir, 'store.sqlite')
      // A table the first migration wants to create, left by something else.
      const foreign = new BetterSqlite3(path)
      foreign.exec('create table org (x integer)')
      foreign.close()
      await assert.rejects(openDatabase(path), (err) => {
        rejectsWithCode('TUN_ERR_STORE_MIGRATION_FAILED')(err)
        assert.match((err as Error).message, /0001-initial.*already exists/)
        assert.ok((err as Error).cause instanceof Error)
        return true
      })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('rejects an invalid schema name before connecting', async () => {
    await assert.rejects(
      openDatabase('postgres://u:hunter2@127.0.0.1:1/db', { schema: 'x"; drop' }),
      rejectsWithCode('TUN_ERR_CONFIG_INVALID'),
    )
  })

  test('an unreachable PostgreSQL is TUN_ERR_STORE_UNREACHABLE and the password is never shown', async () => {
    await assert.rejects(openDatabase('postgres://u:hunter2@127.0.0.1:1/db'), (err) => {
      rejectsWithCode('TUN_ERR_STORE_UNREACHABLE')(err)
      const message = (err as Error).message
      assert.match(message, /^cannot reach PostgreSQL at 127\.0\.0\.1:1: /)
      assert.doesNotMatch(message, /hunter2/)
      return true
    })
  })
})
