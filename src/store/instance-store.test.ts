import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, test } from 'node:test'
import { databaseTargets } from '../testing/test-databases.ts'
import {
  InstanceKeyRepository,
  InstanceNodeRepository,
  type Database,
  type InstanceNodeReport,
  type NewInstanceKey,
} from './index.ts'

const targets = await databaseTargets()

function newKey(tunnelId: string, addedBy: string | null = 'cli on host-a'): NewInstanceKey {
  return {
    securityKey: `apptunnel-key.${tunnelId}.s3cr3t`,
    tunnelId,
    serverUrl: 'https://tunnel.example.test',
    addedAt: '2030-01-01T00:00:00.000Z',
    addedBy,
  }
}

function nodeReport(nodeId: string, overrides: Partial<InstanceNodeReport> = {}): InstanceNodeReport {
  return {
    nodeId,
    address: `${nodeId}.lan`,
    version: '0.1.0',
    startedAt: '2030-01-01T00:00:00.000Z',
    heartbeatAt: '2030-01-01T00:00:10.000Z',
    heartbeatMs: 2000,
    tunnelId: 'tun-1',
    status: 'CONNECTED',
    reason: '',
    code: null,
    statusSince: '2030-01-01T00:00:05.000Z',
    sessions: 3,
    sessionsWanted: 4,
    ...overrides,
  }
}

for (const target of targets) {
  describe(`instance store on ${target.name}`, { skip: target.skip }, () => {
    let database: Database
    let keys: InstanceKeyRepository
    let nodes: InstanceNodeRepository

    before(async () => {
      database = await target.open()
      keys = new InstanceKeyRepository(database)
      nodes = new InstanceNodeRepository(database)
    })

    after(async () => {
      await database?.close()
      await target.dispose()
    })

    // The key table holds a single row, so every test starts without one.
    beforeEach(async () => {
      await keys.remove()
    })

    test('a key is added, read back and removed', async () => {
      assert.equal(await keys.get(), undefined)
      assert.deepEqual(await keys.add(newKey('tun-1')), { added: true })
      const expected = { ...newKey('tun-1'), tunnelName: null, connectedTo: null, applicationLinkUrl: null }
      assert.deepEqual(await keys.get(), expected)

      assert.deepEqual(await keys.remove(), expected)
      assert.equal(await keys.get(), undefined)
      assert.equal(await keys.remove(), undefined)
    })

    test('addedBy may be null', async () => {
      assert.deepEqual(await keys.add(newKey('tun-anon', null)), { added: true })
      assert.equal((await keys.get())?.addedBy, null)
    })

    test('a second key is refused and the existing one returned', async () => {
      await keys.add(newKey('tun-1'))
      await keys.recordServerNames('tun-1', { tunnelName: 'web', connectedTo: 'Acme' })
      const result = await keys.add(newKey('tun-2', 'cli on host-b'))
      assert.deepEqual(result, {
        added: false,
        existing: { ...newKey('tun-1'), tunnelName: 'web', connectedTo: 'Acme', applicationLinkUrl: null },
      })
      assert.equal((await keys.get())?.tunnelId, 'tun-1')
    })

    test('concurrent adds: exactly one wins and the others see it', async () => {
      const ids = Array.from({ length: 6 }, (_, i) => `tun-race-${i}`)
      const results = await Promise.all(ids.map((id) => keys.add(newKey(id))))
      const winners = ids.filter((_, i) => results[i]?.added === true)
      assert.equal(winners.length, 1)
      const stored = await keys.get()
      assert.equal(stored?.tunnelId, winners[0])
      for (const r of results) {
        if (!r.added) assert.deepEqual(r.existing, stored)
      }
    })

    test('recordServerNames applies to the current key only', async () => {
      await keys.add(newKey('tun-new'))
      await keys.recordServerNames('tun-old', { tunnelName: 'stale', connectedTo: 'Old Org' })
      let stored = await keys.get()
      assert.equal(stored?.tunnelName, null)
      assert.equal(stored?.connectedTo, null)

      await keys.recordServerNames('tun-new', { tunnelName: 'web', connectedTo: 'Acme', applicationLinkUrl: 'https://tun-new.tunnels.example.test/' })
      stored = await keys.get()
      assert.equal(stored?.tunnelName, 'web')
      assert.equal(stored?.connectedTo, 'Acme')
      assert.equal(stored?.applicationLinkUrl, 'https://tun-new.tunnels.example.test/')

      await keys.remove()
      await keys.recordServerNames('tun-new', { tunnelName: 'gone', connectedTo: 'Gone' })
      assert.equal(await keys.get(), undefined, 'names never create a key')
    })

    test('a node report is stored; a restart reuses the id and clears stoppedAt', async () => {
      await nodes.report(nodeReport('n-restart'))
      assert.deepEqual(await nodes.get('n-restart'), { ...nodeReport('n-restart'), stoppedAt: null })

      assert.equal(
        await nodes.markStopped('n-restart', '2030-01-01T00:01:00.000Z', {
          status: 'UNAVAILABLE',
          reason: 'node stopped',
          code: null,
          sessions: 0,
        }),
        true,
      )
      assert.equal((await nodes.get('n-restart'))?.stoppedAt, '2030-01-01T00:01:00.000Z')

      const restarted = nodeReport('n-restart', {
        address: '10.0.0.9',
        version: '0.2.0',
        startedAt: '2030-01-02T00:00:00.000Z',
        heartbeatAt: '2030-01-02T00:00:01.000Z',
        tunnelId: null,
        status: null,
        reason: 'no security key',
        code: 'TUN_ERR_NO_KEY',
        statusSince: '2030-01-02T00:00:00.000Z',
        sessions: 0,
        sessionsWanted: 0,
      })
      await nodes.report(restarted)
      assert.deepEqual(await nodes.get('n-restart'), { ...restarted, stoppedAt: null })
      assert.equal((await nodes.list()).filter((n) => n.nodeId === 'n-restart').length, 1)
    })

    test('markStopped sets the final status; statusSince moves only when the status changes', async () => {
      await nodes.report(nodeReport('n-stop'))
      assert.equal(
        await nodes.markStopped('n-stop', '2030-01-01T00:02:00.000Z', {
          status: 'CONNECTED',
          reason: 'draining',
          code: null,
          sessions: 1,
        }),
        true,
      )
      assert.deepEqual(await nodes.get('n-stop'), {
        ...nodeReport('n-stop'),
        heartbeatAt: '2030-01-01T00:02:00.000Z',
        stoppedAt: '2030-01-01T00:02:00.000Z',
        reason: 'draining',
        sessions: 1,
      })

      await nodes.markStopped('n-stop', '2030-01-01T00:03:00.000Z', {
        status: 'ERROR',
        reason: 'shut down',
        code: 'TUN_ERR_SHUTDOWN',
        sessions: 0,
      })
      assert.deepEqual(await nodes.get('n-stop'), {
        ...nodeReport('n-stop'),
        heartbeatAt: '2030-01-01T00:03:00.000Z',
        stoppedAt: '2030-01-01T00:03:00.000Z',
        status: 'ERROR',
        reason: 'shut down',
        code: 'TUN_ERR_SHUTDOWN',
        statusSince: '2030-01-01T00:03:00.000Z',
        sessions: 0,
      })

      // A null status compares equal to a null status, so statusSince stays put.
      await nodes.report(nodeReport('n-nokey', { tunnelId: null, status: null, reason: 'no key' }))
      await nodes.markStopped('n-nokey', '2030-01-01T00:04:00.000Z', { status: null, reason: 'no key', code: null, sessions: 0 })
      assert.equal((await nodes.get('n-nokey'))?.statusSince, nodeReport('n-nokey').statusSince)

      assert.equal(
        await nodes.markStopped('n-missing', '2030-01-01T00:04:00.000Z', { status: null, reason: '', code: null, sessions: 0 }),
        false,
      )
      assert.equal(await nodes.get('n-missing'), undefined)
    })

    test('list is ordered by node id; remove deletes one node', async () => {
      for (const id of ['z-node', 'a-node', 'm-node']) await nodes.report(nodeReport(id, { sessions: id.length }))
      const listed = (await nodes.list()).filter((n) => n.nodeId.endsWith('-node')).map((n) => n.nodeId)
      assert.deepEqual(listed, ['a-node', 'm-node', 'z-node'])
      const all = (await nodes.list()).map((n) => n.nodeId)
      assert.deepEqual(all, [...all].sort())
      assert.equal(typeof (await nodes.get('a-node'))?.sessions, 'number')

      assert.equal(await nodes.remove('m-node'), true)
      assert.equal(await nodes.remove('m-node'), false)
      assert.equal(await nodes.get('m-node'), undefined)
      assert.deepEqual(
        (await nodes.list()).filter((n) => n.nodeId.endsWith('-node')).map((n) => n.nodeId),
        ['a-node', 'z-node'],
      )
    })
  })
}
